"""Output files are written safely (cad2program/outfile.py): through devices, pipes and links, atomically
over regular files, with a one-line error (exit status 2, no traceback) for what cannot be written."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from cad2program.cli import main
from cad2program.outfile import OutputError, OutputFile, write_output
from tiny_model import tiny_model  # noqa: F401  (fixture)

PROGRAM = "circle(x=30, y=20, radius=5)\nline(x1=5, y1=5, x2=60, y2=5)\n"


def device(path, minor: int):
    """A character device node in the test's folder: 3 is /dev/null's minor number, 7 /dev/full's."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


def render(capsys, program_file, out) -> tuple[int, str, str]:
    code = main(["render", str(program_file), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def program_file(tmp_path):
    path = tmp_path / "part.txt"
    path.write_text(PROGRAM)
    return path


@pytest.fixture
def image(tmp_path):
    from PIL import Image, ImageDraw

    path = tmp_path / "part.png"
    picture = Image.new("L", (120, 80), 255)
    ImageDraw.Draw(picture).rectangle((20, 20, 90, 60), outline=0, width=2)
    picture.save(path)
    return path


def predict(capsys, image, out, *extra) -> tuple[int, str, str]:
    code = main(["predict", str(image), "--out", str(out), "--batch-size", "1", *map(str, extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_regular_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    with OutputFile(target) as out:
        out.write("new ")
        assert target.read_text() == "old"  # nothing visible until the end
        out.write("text")
    assert target.read_text() == "new text" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with OutputFile(target) as out:
            out.write("half")
            raise RuntimeError("the run failed")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_predict_writes_through_a_device_and_leaves_it_a_device(capsys, tmp_path, image, tiny_model):
    null = device(tmp_path / "null", 3)
    code, _, err = predict(capsys, image, null, "--model", tiny_model, "--format", "jsonl")
    assert code == 0, err
    assert stat.S_ISCHR(os.stat(null).st_mode)  # before: renamed over, it became a regular file
    assert leftovers(tmp_path) == []


def test_predict_writes_through_a_symlink_to_its_file(capsys, tmp_path, image, tiny_model):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    code, _, err = predict(capsys, image, link, "--model", tiny_model)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)  # before: the link was replaced by a file
    assert '"image"' in real.read_text()


def test_predict_writes_into_a_named_pipe(capsys, tmp_path, image, tiny_model):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    code, _, err = predict(capsys, image, fifo, "--model", tiny_model, "--format", "jsonl")
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and b'"image"' in received[0]


def test_predict_refuses_a_folder_and_leaves_no_temporary(capsys, tmp_path, image, tiny_model):
    folder = tmp_path / "results"
    folder.mkdir()
    code, _, err = predict(capsys, image, folder, "--model", tiny_model, "--format", "jsonl")
    assert code == 2 and f"--out {folder}: is a folder" in err and "Traceback" not in err
    assert not (tmp_path / "results.tmp").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("out, why", [("/proc/version", "cannot write it"),
                                      ("/proc/no-such-dir/x.jsonl", "does not exist")])
def test_predict_gives_a_clear_error_for_what_cannot_be_written(capsys, image, tiny_model, out, why):
    code, _, err = predict(capsys, image, out, "--model", tiny_model, "--format", "jsonl")
    assert code == 2 and why in err and out in err and "Traceback" not in err


def test_a_full_device_is_a_clear_error(capsys, tmp_path, program_file):
    full = device(tmp_path / "full", 7)
    code, _, err = render(capsys, program_file, full.with_name("full"))  # no suffix: refused as a format
    assert code == 2 and "unknown format" in err
    with pytest.raises(OutputError, match="No space left on device"):
        write_output(full, b"x" * 100_000)
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_render_writes_atomically_and_through_links(capsys, tmp_path, program_file):
    real = tmp_path / "drawing.svg"
    link = tmp_path / "latest.svg"
    link.symlink_to(real)
    code, out, err = render(capsys, program_file, link)
    assert code == 0, err
    assert link.is_symlink() and real.read_text().lstrip().startswith("<")
    assert leftovers(tmp_path) == []


def test_render_refuses_a_folder_and_a_path_under_a_file(capsys, tmp_path, program_file):
    folder = tmp_path / "x.svg"
    folder.mkdir()
    code, _, err = render(capsys, program_file, folder)
    assert code == 2 and "is a folder" in err
    code, _, err = render(capsys, program_file, program_file / "x.svg")
    assert code == 2 and "is not a folder" in err and "Traceback" not in err


def test_render_to_proc_is_a_clear_error(capsys, program_file):
    code, _, err = render(capsys, program_file, "/proc/version.svg")
    assert code == 2 and "/proc/version.svg" in err and "Traceback" not in err
