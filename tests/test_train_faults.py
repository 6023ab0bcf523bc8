"""Faults in training: a truncated latest checkpoint is skipped with a one-line warning and the one before
it used; after a resume the logs hold each step once; a run interrupted (at a checkpoint, in the middle
of writing one, or between two) and resumed ends with the parameters of a run that never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from cad2program.model.configs import tiny

# Six steps, a checkpoint every two; no evaluation (its decoding would compile for longer than training).
CONFIG = dict(steps=6, eval_every=1000, checkpoint_every=2, log_every=1, eval_examples=0)


def train(workdir: Path, log=None, **overrides) -> dict:
    from cad2program.training.train import train_and_evaluate

    stop = overrides.pop("stop_at_step", None)
    config = tiny().replace(**{**CONFIG, **overrides})
    return train_and_evaluate(config, workdir, progress=False, log=log or (lambda *_: None), stop_at_step=stop)


def final_parameters(workdir: Path) -> list[np.ndarray]:
    from flax import nnx

    from cad2program.model.modelfile import load_model

    _, model, _ = load_model(workdir / "model.msgpack")
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(nnx.state(model))]


def logged_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def losses(workdir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (workdir / "train_log.jsonl").read_text().splitlines())}


def assert_same_parameters(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The run that was never interrupted."""
    workdir = tmp_path_factory.mktemp("straight")
    train(workdir)
    return workdir


def truncate_arrays(checkpoint: Path) -> None:
    """Cuts every array file of an Orbax checkpoint in half, as a full disk or a bad copy would."""
    files = [p for p in (checkpoint / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for path in files:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_latest_checkpoint_is_skipped_and_the_run_ends_as_if_never_stopped(tmp_path, straight, capfd):
    workdir = tmp_path / "faulty"
    train(workdir, stop_at_step=4)  # checkpoints 2 and 4
    # The run went on past its checkpoint at 4 before it died: steps 5 and 6 are in the log, and a
    # checkpoint of step 6 was half written (Orbax writes into a temporary folder and renames it).
    with open(workdir / "train_log.jsonl", "a") as log:
        log.write(json.dumps({"step": 5, "loss": 9.0}) + "\n" + json.dumps({"step": 6, "loss": 9.0}) + "\n")
        log.write('{"step": 7, "lo')  # cut off mid-line
    half = workdir / "checkpoints" / "6.orbax-checkpoint-tmp-1700000000000000"
    (half / "state").mkdir(parents=True)
    (half / "state" / "_METADATA").write_text('{"tree_metadata": {')
    truncate_arrays(workdir / "checkpoints" / "4")

    said = []
    capfd.readouterr()
    summary = train(workdir, log=said.append)
    assert summary["step"] == 6
    printed = capfd.readouterr().err
    assert "Traceback" not in printed and "TensorStore" not in printed, printed[-2000:]
    warnings = [line for line in said if line.startswith("warning:")]
    assert len(warnings) == 1 and "checkpoint 4" in warnings[0] and "cannot be read" in warnings[0]
    assert "\n" not in warnings[0] and "Traceback" not in warnings[0]
    assert any(line.startswith("resume: step 2") for line in said)
    assert [p.name.split("-")[0] for p in (workdir / "unreadable_checkpoints").iterdir()] == ["4"]
    assert (workdir / "checkpoints" / "6" / "commit_success.txt").exists()  # saved again, whole
    assert logged_steps(workdir / "train_log.jsonl") == [1, 2, 3, 4, 5, 6]  # each step once
    assert losses(workdir) == pytest.approx(losses(straight), abs=1e-6)
    assert_same_parameters(final_parameters(workdir), final_parameters(straight))


def test_stopped_at_a_checkpoint_and_resumed_ends_the_same(tmp_path, straight):
    workdir = tmp_path / "stopped"
    train(workdir, stop_at_step=2)
    train(workdir, stop_at_step=5)  # between two checkpoints: the interrupted run saves where it is
    train(workdir)
    assert logged_steps(workdir / "train_log.jsonl") == [1, 2, 3, 4, 5, 6]
    assert_same_parameters(final_parameters(workdir), final_parameters(straight))


def test_logs_keep_the_steps_up_to_the_checkpoint_resumed_from(tmp_path):
    from cad2program.training.train import drop_log_lines_after

    log = tmp_path / "eval_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "f1": 0.5}) + "\n" for s in (25, 50, 75)) + '{"step": 10')
    drop_log_lines_after(log, 50)
    assert logged_steps(log) == [25, 50]


def test_no_checkpoint_that_reads_back_is_a_clear_error(tmp_path):
    from cad2program.errors import UserError

    workdir = tmp_path / "ruined"
    train(workdir, stop_at_step=2, steps=2)
    truncate_arrays(workdir / "checkpoints" / "2")
    with pytest.raises(UserError, match="no checkpoint reads back"):
        train(workdir, steps=2)


# ----------------------------------------------------------------------------------------------
# SIGKILL of a real training process
# ----------------------------------------------------------------------------------------------

TRAIN_SCRIPT = """
import sys
from cad2program.model.configs import tiny
from cad2program.training.train import train_and_evaluate
config = tiny().replace(**{config!r})
train_and_evaluate(config, sys.argv[1], progress=False, log=lambda *_: None)
"""


def kill_when(workdir: Path, ready, limit_s: float = 300) -> bool:
    """Runs the training script in a subprocess and SIGKILLs it once `ready(workdir)`; False if it finished first."""
    script = TRAIN_SCRIPT.format(config=CONFIG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script, str(workdir)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if ready(workdir):
                process.send_signal(signal.SIGKILL)
                process.wait(30)
                return True
            time.sleep(0.001)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def committed(step: int):
    return lambda workdir: (workdir / "checkpoints" / str(step) / "commit_success.txt").exists()


def writing(step: int):
    """Orbax writes a checkpoint in a temporary folder (STEP.orbax-checkpoint-tmp-*) and renames it, then
    writes commit_success.txt: any moment before that file is mid-write."""
    def ready(workdir):
        folder = workdir / "checkpoints"
        started = folder.is_dir() and any(p.name.split(".")[0] == str(step) for p in folder.iterdir())
        return started and not (folder / str(step) / "commit_success.txt").exists()
    return ready


def logged(step: int):
    def ready(workdir):
        path = workdir / "train_log.jsonl"
        return path.exists() and f'"step": {step},' in path.read_text()
    return ready


@pytest.mark.slow
@pytest.mark.parametrize("when", ["right after checkpoint 2", "while writing checkpoint 4", "at step 3"])
def test_sigkill_then_resume_ends_with_the_uninterrupted_parameters(tmp_path, straight, when):
    ready = {"right after checkpoint 2": committed(2), "while writing checkpoint 4": writing(4),
             "at step 3": logged(3)}[when]
    workdir = tmp_path / "killed"
    if not kill_when(workdir, ready):
        pytest.skip(f"the run finished before it could be killed {when}")
    train(workdir)
    assert logged_steps(workdir / "train_log.jsonl") == [1, 2, 3, 4, 5, 6]
    assert_same_parameters(final_parameters(workdir), final_parameters(straight))
