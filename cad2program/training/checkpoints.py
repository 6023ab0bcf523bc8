"""Checkpoints of a training run (Orbax): parameters, optimizer state and the run's metadata, so that
the same command resumes exactly. Orbax is imported when a run makes its manager."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import jax

from cad2program.errors import UserError


class _UnretrievedFutures:
    """A logging filter that drops asyncio's 'exception was never retrieved' records."""

    def filter(self, record) -> bool:
        return "never retrieved" not in record.getMessage()


@contextlib.contextmanager
def _stderr_muted():
    """Sends file descriptor 2 to /dev/null for the block (what native threads print there, too)."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _let_failed_reads_finish(seconds: float = 0.5) -> None:
    """A failed Orbax read leaves TensorStore futures behind: as they finish they print an 'Event loop is
    closed' traceback each, and asyncio logs a page of spec for each when it is collected. Called with
    stderr muted: waits for them, collects them, with asyncio's log of them filtered out."""
    import gc
    import logging

    quiet = _UnretrievedFutures()
    logging.getLogger("asyncio").addFilter(quiet)
    try:
        time.sleep(seconds)
        gc.collect()
    finally:
        logging.getLogger("asyncio").removeFilter(quiet)


class Checkpoints:
    """Orbax checkpoints of {params, opt_state} plus JSON metadata (step, data position, RNG, config)."""

    def __init__(self, directory: Path, keep: int = 2):
        import orbax.checkpoint as ocp
        self._ocp = ocp
        self.directory = directory.absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params, opt_state, meta: dict):
        ocp = self._ocp
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
            meta=ocp.args.JsonSave(meta)))

    def restore(self, step: int, params, opt_state):
        ocp = self._ocp
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, {"params": params, "opt_state": opt_state})
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        return restored["state"]["params"], restored["state"]["opt_state"], restored["meta"]

    def restore_latest(self, params, opt_state, log: Callable) -> tuple | None:
        """The newest checkpoint that reads back whole -> (params, opt_state, meta); None when there is none.

        One that cannot be read (a truncated or corrupted file, say after a disk filled up) is moved
        aside to `unreadable_checkpoints/` beside the folder, with a one-line warning, and the one before
        it is tried: a run resumes from its last intact checkpoint instead of stopping on a TensorStore
        traceback. UserError when checkpoints exist and none reads back."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            with _stderr_muted():
                try:
                    return self.restore(step, params, opt_state)
                except Exception as err:  # TensorStore, JSON and Orbax errors alike: the files are not whole
                    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
                    del err
                    _let_failed_reads_finish()
            aside = self.set_aside(step)
            log(f"warning: checkpoint {step} in {self.directory} cannot be read ({reason}); moved to "
                f"{aside}, resuming from the one before it")
        if steps:
            raise UserError(f"{self.directory}: no checkpoint reads back (each was moved to "
                            f"{self.directory.parent / 'unreadable_checkpoints'}); start again in a new workdir")
        return None

    def set_aside(self, step: int) -> Path:
        """Moves checkpoint `step` out of the manager's folder, so that a new save of that step can be made."""
        import shutil

        aside = self.directory.parent / "unreadable_checkpoints" / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.directory / str(step)), str(aside))
        self.manager.reload()
        return aside

    def wait(self):
        self.manager.wait_until_finished()

    def close(self):
        self.manager.close()
