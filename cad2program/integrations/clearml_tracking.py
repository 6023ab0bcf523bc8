"""Experiment tracking with ClearML: hyper-parameters, scalars, sample images and model checkpoints.

The training loop talks to one `Tracker`. Two modes, chosen by `tracking_mode()`:

- live: ClearML server credentials are configured (``clearml.conf`` or ``CLEARML_API_ACCESS_KEY`` /
  ``CLEARML_API_SECRET_KEY``), so everything is reported to that server while training runs.
- offline (the default when nothing is configured, or when ``CLEARML_OFFLINE_MODE=1``): ClearML writes the
  run into a local session folder (``~/.clearml/cache/offline/<task id>/`` and a ``.zip`` next to it) and
  makes no network call; ``clearml-task --import-offline-session <zip>`` uploads it later.

A tracking failure never stops training: the first error of each kind is logged as a warning, the rest
are skipped. With ``enabled=False`` every method is a no-op and clearml is never imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

PlainValue = bool | int | float | str | None | list

_TRUE_WORDS = {"1", "true", "yes", "on"}
# ClearML reads these before ~/clearml.conf; when one is set, no other config file is used.
_CONFIG_FILE_VARIABLES = ("CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE")
_DEFAULT_CONFIG_FILES = ("trains.conf", "clearml.conf")
_ACCESS_KEY_IN_CONFIG = re.compile(r"""["']?access_key["']?\s*[:=]\s*["']?([^"'\s,}]+)""")
STAGING_FOLDER = "clearml_staging"
RUN_RECORD = "clearml.json"


def clearml_credentials_configured(environ: Mapping[str, str] | None = None, home: Path | None = None) -> bool:
    """Whether ClearML would find server credentials: in environment variables or in its config file.

    Mirrors ClearML's own lookup: an access/secret key pair (or auth token) in the environment, else
    ``access_key`` in the file named by ``CLEARML_CONFIG_FILE``, else in ``~/trains.conf`` / ``~/clearml.conf``.
    A host without credentials does not count: ClearML cannot report to it and would fail or retry.
    """
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME", "~")).expanduser() if home is None else home

    def variable(*names: str) -> str:
        return next((environ[name] for name in names if environ.get(name)), "")

    if variable("CLEARML_API_ACCESS_KEY", "TRAINS_API_ACCESS_KEY") and variable(
        "CLEARML_API_SECRET_KEY", "TRAINS_API_SECRET_KEY"
    ):
        return True
    if variable("CLEARML_AUTH_TOKEN"):
        return True
    explicit_file = variable(*_CONFIG_FILE_VARIABLES)
    config_files = [Path(os.path.expandvars(explicit_file)).expanduser()] if explicit_file else [
        home / name for name in _DEFAULT_CONFIG_FILES
    ]
    return any(_config_file_has_access_key(path) for path in config_files)


def _config_file_has_access_key(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return any(match.group(1) for match in _ACCESS_KEY_IN_CONFIG.finditer(text))


def tracking_mode(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """``"offline"`` when ``CLEARML_OFFLINE_MODE`` is set true or no credentials are configured, else ``"live"``."""
    environ = os.environ if environ is None else environ
    if environ.get("CLEARML_OFFLINE_MODE", "").strip().lower() in _TRUE_WORDS:
        return "offline"
    return "live" if clearml_credentials_configured(environ, home) else "offline"


def flatten_config(config: Any, prefix: str = "") -> dict[str, PlainValue]:
    """Nested dataclasses / mappings -> one flat dict of plain values, keys joined with ``/``.

    ``/`` is the separator ClearML itself uses for nested hyper-parameters, so the UI groups them the same way.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        items = ((field.name, getattr(config, field.name)) for field in dataclasses.fields(config))
    elif isinstance(config, Mapping):
        items = config.items()
    else:
        return {prefix or "value": _plain_value(config)}
    flat: dict[str, PlainValue] = {}
    for key, value in items:
        name = f"{prefix}/{key}" if prefix else str(key)
        if (dataclasses.is_dataclass(value) and not isinstance(value, type)) or isinstance(value, Mapping):
            flat.update(flatten_config(value, name))
        else:
            flat[name] = _plain_value(value)
    return flat


def _plain_value(value: Any) -> PlainValue:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain_value(value.value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [_plain_value(item) for item in value]
        return items if all(not isinstance(item, list) for item in items) else str(items)
    return str(value)  # paths, dtypes, anything else: readable text


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"an image must be uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _safe_file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


class Tracker:
    """Reports one training run to ClearML (live or offline); see the module docstring.

    Build it with `Tracker.start`; every method is safe to call in any state (disabled, failed, finished).
    """

    def __init__(self, task: Any = None, workdir: Path | None = None, offline: bool = False,
                 logger: Callable[[str], Any] = print) -> None:
        self._task = task
        self._workdir = workdir
        self._offline = offline
        self._log = logger
        self._warned: set[str] = set()
        self._model_ids: dict[str, str] = {}  # live mode: registry model reused per name
        self._finished = task is None
        self.parent_model: dict[str, Any] = {}  # a fine-tune's starting model (see `start`)

    # ----- construction -------------------------------------------------------------------------------------

    @classmethod
    def start(cls, config: Any, workdir: Path, project: str = "CADPrimitives", task_name: str | None = None,
              enabled: bool = True, logger: Callable[[str], Any] = print,
              parent_model: Mapping[str, Any] | None = None) -> Tracker:
        """Open a ClearML task for this run and record `config` as its hyper-parameters.

        `parent_model` (a fine-tune): what the run starts from (at least "name"; e.g. path, sha256, step).
        The task is then its own task in the same project, tagged "fine-tune", named after the parent by
        default, with the parent recorded as the "parent_model" parameter section and in the comment of
        every model it registers.

        Offline unless credentials are configured (see `tracking_mode`). Never raises: if ClearML cannot
        start, a warning is logged and the returned tracker does nothing.
        """
        workdir = Path(workdir)
        if not enabled:
            return cls(logger=logger)
        offline = tracking_mode() == "offline"
        flat_config = flatten_config(config)
        name = task_name or _default_task_name(flat_config, workdir)
        parent = {k: _plain_value(v) for k, v in (parent_model or {}).items()}
        if parent and not task_name:
            name = f"fine-tune of {parent.get('name', 'a model')} {time.strftime('%Y-%m-%d %H:%M:%S')}"
        task = None
        try:
            task = init_task(project, name, offline)
            task.connect(flat_config, name="config")
            if parent:
                task.connect(dict(parent), name="parent_model")
                task.add_tags(["fine-tune"])
        except Exception as error:  # tracking must never stop training
            logger(f"warning: ClearML tracking is off for this run, the task could not start: {error!r}")
            if task is not None:
                with contextlib.suppress(Exception):
                    task.close()
            return cls(logger=logger)
        tracker = cls(task=task, workdir=workdir, offline=offline, logger=logger)
        tracker.parent_model = parent
        where = f"offline session in {task.get_offline_mode_folder()}" if offline else "live reporting"
        logger(f"ClearML: task {task.id} ({where})")
        return tracker

    # ----- state --------------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True while reports go to ClearML (started, enabled, not finished)."""
        return self._task is not None and not self._finished

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def task_id(self) -> str | None:
        return None if self._task is None else self._task.id

    @property
    def offline_session_folder(self) -> Path | None:
        """Where ClearML writes this run's offline session (None when live or disabled)."""
        if self._task is None or not self._offline:
            return None
        return Path(self._task.get_offline_mode_folder())

    @property
    def offline_session_zip(self) -> Path | None:
        """The zip ClearML writes next to the session folder when the task closes."""
        folder = self.offline_session_folder
        return None if folder is None else folder.with_name(folder.name + ".zip")

    # ----- reporting ----------------------------------------------------------------------------------------

    def report_scalars(self, step: int, scalars: Mapping[str, float], title: str = "train") -> None:
        """One point per series at `step` (e.g. title "train": loss, lr; title "eval": one series per metric)."""
        if not self.active:
            return
        with self._guard(f"report_scalars({title})"):
            chart_logger = self._task.get_logger()
            for series, value in scalars.items():
                # ClearML converts with float(), which also takes numpy / JAX 0-d arrays
                chart_logger.report_scalar(title=title, series=str(series), value=value, iteration=int(step))

    def report_image(self, title: str, series: str, step: int, image: np.ndarray) -> None:
        """A debug sample: uint8 (H, W) or (H, W, 3) array (ClearML stores it as JPEG)."""
        if not self.active:
            return
        with self._guard(f"report_image({title}/{series})"):
            self._task.get_logger().report_image(title=title, series=series, iteration=int(step),
                                                 image=_check_image(image))

    def register_model(self, path: Path, name: str, best: bool = False, metadata: Mapping[str, Any] | None = None,
                       ) -> None:
        """Register a checkpoint (file, or folder which is zipped first) as a ClearML output model `name`.

        Registering the same name again replaces it (offline: one entry per name in the session; live: the same
        registry model gets new weights). `best` adds the tag "best"; `metadata` goes into the model's comment
        (and, live, its metadata table).
        """
        if not self.active:
            return
        with self._guard(f"register_model({name})"):
            extra = {"parent_model": self.parent_model} if self.parent_model else {}
            self._register_model(Path(path), name, best, {**extra, **dict(metadata or {})})

    def finish(self) -> None:
        """Close the task (flushes everything). Offline: print the session zip and the command that uploads it."""
        if not self.active:
            return
        self._finished = True
        with self._guard("finish"):
            self._task.close()
        if self._offline:
            self._announce_offline_session()
        if self._workdir is not None:
            shutil.rmtree(self._workdir / STAGING_FOLDER, ignore_errors=True)

    # ----- internals ----------------------------------------------------------------------------------------

    def _guard(self, what: str) -> _ReportGuard:
        return _ReportGuard(self, what)

    def _warn_once(self, what: str, error: BaseException) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        self._log(f"warning: ClearML {what} failed ({error!r}); training goes on, further such errors are not shown")

    def _register_model(self, path: Path, name: str, best: bool, metadata: dict[str, Any]) -> None:
        from clearml import OutputModel

        if not path.exists():
            raise FileNotFoundError(f"no checkpoint at {path}")
        weights, is_package = self._stage_weights(path, name)
        tags = ["best"] if best else []
        comment = json.dumps({"source": str(path), **metadata}, default=str, sort_keys=True)
        # live: overwrite the model registered under this name before; offline there is no registry to ask
        reuse_id = None if self._offline else self._model_ids.get(name)
        model = OutputModel(task=self._task, name=name, tags=tags, comment=comment, base_model_id=reuse_id)
        iteration = metadata.get("step")
        update_weights_offline_safe(model, weights, is_package=is_package,
                                    iteration=int(iteration) if iteration is not None else None)
        if self._offline:
            _keep_last_offline_model_entry(self._task, name)
            weights.unlink(missing_ok=True)  # the offline session holds its own copy now
        else:
            self._model_ids[name] = model.id
            for key, value in metadata.items():
                model.set_metadata(str(key), str(value))

    def _stage_weights(self, path: Path, name: str) -> tuple[Path, bool]:
        """A file named after the model (a zip for a folder), so two models never share a file name.

        ClearML's offline copy keeps the file's base name, and live upload names the remote file after it.
        """
        staging = self._workdir / STAGING_FOLDER
        staging.mkdir(parents=True, exist_ok=True)
        # live uploads run in the background, so each live registration keeps its own file until finish()
        stem = _safe_file_stem(name) if self._offline else f"{_safe_file_stem(name)}-{time.time_ns()}"
        if path.is_dir():
            staged = staging / f"{stem}.zip"
            _zip_folder(path, staged)
            return staged, True
        staged = staging / f"{stem}{path.suffix}"
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)  # no copy of a large checkpoint when the file system allows it
        except OSError:
            shutil.copyfile(path, staged)
        return staged, False

    def _announce_offline_session(self) -> None:
        folder, archive = self.offline_session_folder, self.offline_session_zip
        command = f"clearml-task --import-offline-session {archive}"
        python_command = f"python -c \"from clearml import Task; Task.import_offline_session('{archive}')\""
        self._log(f"ClearML offline session: {folder}\n"
                  f"  zip: {archive}{'' if archive.exists() else ' (missing: the task did not close cleanly)'}\n"
                  f"  upload it once a ClearML server is configured (clearml-init):\n    {command}\n"
                  f"  (same as: {python_command})")
        if self._workdir is not None:
            record = {"mode": "offline", "task_id": self.task_id, "session_folder": str(folder),
                      "session_zip": str(archive), "import_command": command}
            with self._guard("run record"):
                self._workdir.mkdir(parents=True, exist_ok=True)
                (self._workdir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")


class _ReportGuard:
    """Context manager: any exception inside becomes a once-per-kind warning on the tracker."""

    def __init__(self, tracker: Tracker, what: str) -> None:
        self._tracker, self._what = tracker, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> bool:
        if error is not None and isinstance(error, Exception):
            self._tracker._warn_once(self._what, error)
            return True  # swallowed: training goes on
        return False  # KeyboardInterrupt / SystemExit pass through


def _default_task_name(flat_config: Mapping[str, PlainValue], workdir: Path) -> str:
    label = next((str(flat_config[key]) for key in ("run_name", "name", "experiment") if flat_config.get(key)),
                 workdir.name or "train")
    return f"{label} {time.strftime('%Y-%m-%d %H:%M:%S')}"


def init_task(project: str, name: str, offline: bool) -> Any:
    from clearml import Task

    if offline:
        Task.set_offline(True)  # before Task.init: no server lookup, no network, no retries
    # ClearML forks a reporting subprocess by default on Linux; forking a process that already runs JAX's
    # threads can deadlock (JAX warns about it), and at close that subprocess made offline runs wait ~10 s.
    # Reporting from a thread of this process avoids both.
    Task._report_subprocess_enabled = False
    # Record requirements with `pip freeze` (about a second) rather than by parsing every Python file
    # under the working folder in a background thread, which took minutes of CPU beside training and
    # held up `Task.close` for as long.
    Task.force_requirements_env_freeze(force=True)
    return Task.init(
        project_name=project,
        task_name=name,
        # no framework hooks: we register checkpoints ourselves and no supported framework (torch, TF...) runs
        auto_connect_frameworks=False,
        # the CLI arguments are already inside `config`; the argparse hook would duplicate them
        auto_connect_arg_parser=False,
        # the resource monitor is a background thread sampling GPU/CPU every few seconds; not needed offline
        auto_resource_monitoring=not offline,
        # stdout/stderr capture would copy tqdm progress bars into the log; our warnings go through `logger`
        auto_connect_streams=False,
        reuse_last_task_id=False,  # every training run is a new experiment
    )


def _zip_folder(folder: Path, archive: Path) -> None:
    """Zip `folder`'s content (stored, not compressed: weights barely compress and size can be large)."""
    tmp = archive.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, arcname=file.relative_to(folder).as_posix())
    tmp.replace(archive)


def update_weights_offline_safe(model: Any, weights: Path, is_package: bool, iteration: int | None) -> str:
    """`OutputModel.update_weights` that also works in offline mode with clearml 2.1.12.

    The bug: offline, `OutputModel.id` invents an id ("offline-<uuid>"), so `update_weights` checks
    `self.published`, which reads `.locked` from the model's local placeholder (`DummyModel`, a plain
    backend-API `models.Model` record that has no `locked` field) -> AttributeError, before the method reaches
    its own offline branch (`_update_weights_offline`, which copies the file into the session's ``models/``
    folder and records it for `Task.import_offline_session`). A model created by this task was never
    published, so giving the placeholder ``locked = False`` is the truth and lets the normal public path run.
    Only done when the attribute is missing, so a fixed clearml is untouched.
    """
    placeholder = getattr(model, "_floating_data", None)
    if placeholder is not None and not hasattr(placeholder, "locked"):
        placeholder.locked = False
    # auto_delete_file=False: by default ClearML deletes the previous weights file of this model object
    return model.update_weights(weights_filename=str(weights), auto_delete_file=False, is_package=is_package,
                                iteration=iteration)


def _keep_last_offline_model_entry(task: Any, name: str) -> None:
    """Keep only the newest offline record of model `name`, so the import registers one model per name.

    Offline, each `update_weights` appends a record to the task's `_offline_output_models` (the list that
    `Task.close` writes to the session's task.json and `import_offline_session` replays).
    """
    entries = getattr(task, "_offline_output_models", None)
    if not entries:
        return
    newest = entries[-1]
    entries[:] = [entry for entry in entries[:-1] if entry.get("init", {}).get("name") != name] + [newest]
