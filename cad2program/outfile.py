"""Writing a command's output file safely: every `--out` goes through `OutputFile` or `write_output`.

What a path names decides how it is written:
- a regular file, or nothing yet: a temporary file in the same folder, flushed to disk (fsync) and
  renamed over the path (`os.replace`), so a reader sees the old file or the whole new one, never half;
  the temporary file is removed when the write fails. An existing file keeps its permissions.
- a device, a named pipe or a socket (`/dev/null`, `/dev/stdout`, a FIFO): opened and written in place,
  since renaming over it would replace the device node with a plain file;
- a symbolic link: the file it points to, by the two rules above (the link stays a link).
A folder, a missing parent folder, a path that cannot be written (read-only, /proc) or a full disk
(`/dev/full`) is an `OutputError` (a UserError: one line naming the path and why, no traceback).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from cad2program.errors import UserError


class OutputError(UserError):
    """An output path that cannot be written; the message names it and says why."""


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def output_problem(path: str | Path, what: str = "--out") -> str | None:
    """Why `path` cannot be an output file (checked before any work is done), or None."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        return f"{what} {path}: is a folder; give a file name"
    parent = target.parent
    if not parent.exists():
        return f"{what} {path}: the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{what} {path}: {parent} is not a folder"
    return None


def _is_special(path: Path) -> bool:
    """True for an existing device, pipe or socket: written in place, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class OutputFile:
    """A file being written to `path` (see the module docstring); `commit()` puts it in place, `abort()` drops it.

    As a context manager: committed when the block ends normally, aborted when it raises.
    """

    def __init__(self, path: str | Path, binary: bool = False, what: str = "--out"):
        self.path, self.what = Path(path), what
        problem = output_problem(self.path, what)
        if problem:
            raise OutputError(problem)
        # A link is followed to its file: that file is the one replaced, the link keeps pointing at it.
        self.target = self.path.resolve() if self.path.is_symlink() else self.path
        self.tmp: Path | None = None
        mode = "wb" if binary else "w"
        encoding = None if binary else "utf-8"
        try:
            if _is_special(self.target):
                self.stream: IO = open(self.target, mode, encoding=encoding)
            else:
                try:
                    self.stream = self._temporary(mode, encoding)
                except OSError as err:
                    raise OutputError(f"{what} {self.path}: cannot write it (no file can be made in "
                                      f"{self.target.parent}: {_why(err)})") from None
        except OSError as err:
            raise self._error(err) from None

    def _temporary(self, mode: str, encoding: str | None) -> IO:
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
        self.tmp = Path(name)
        try:
            os.fchmod(fd, self._final_mode())
            return os.fdopen(fd, mode, encoding=encoding)
        except BaseException:
            os.close(fd)
            self.tmp.unlink(missing_ok=True)
            raise

    def _final_mode(self) -> int:
        """The mode the file ends with: an existing file's, else what open() would give (0666 less the umask)."""
        try:
            return stat.S_IMODE(os.stat(self.target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            return 0o666 & ~umask

    def _error(self, err: OSError) -> OutputError:
        return OutputError(f"{self.what} {self.path}: cannot write it: {_why(err)}")

    def write(self, data) -> None:
        try:
            self.stream.write(data)
            if self.tmp is None:
                self.stream.flush()  # a pipe's reader sees each piece as it is written
        except OSError as err:
            self.abort()
            raise self._error(err) from None

    def commit(self) -> None:
        try:
            self.stream.flush()
            if self.tmp is not None:
                os.fsync(self.stream.fileno())  # on disk before the rename makes it visible
            self.stream.close()
            if self.tmp is not None:
                os.replace(self.tmp, self.target)
                self.tmp = None
        except OSError as err:
            self.abort()
            raise self._error(err) from None

    def abort(self) -> None:
        try:
            self.stream.close()
        except OSError:
            pass  # the write already failed; its error is the one reported
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None

    def __enter__(self) -> "OutputFile":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_output(path: str | Path, data: bytes | str, what: str = "--out") -> None:
    """Writes all of `data` to `path` safely (see the module docstring)."""
    with OutputFile(path, binary=isinstance(data, (bytes, bytearray)), what=what) as out:
        out.write(data)

