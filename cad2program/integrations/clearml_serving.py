"""The preprocess module for a ClearML-Serving endpoint (engine `custom`), e.g. `cad_model`.

clearml-serving uploads this file, imports it by path in its inference container and, once per
process, creates `Preprocess()` and calls `load(<local copy of the endpoint's model>)`. Each request
then runs `preprocess` -> `process` -> `postprocess` with a fresh `state` dict and, when statistics
are collected, `collect_custom_statistics_fn` (the `update` of a dict sent to its statistics service).

Request and response: see `cad2program.server.contract` (the same as `cad2program serve`). A bad
request raises the contract's `RequestError`, a ValueError, which clearml-serving answers with HTTP 422
and ``"Error [<class '...RequestError'>] processing request: <what is wrong>"`` in `detail`; any
other exception is a server error (HTTP 500).

The file is imported standalone (not as part of the package), so it uses absolute imports and needs
cad2program installed in the container (``CLEARML_EXTRA_PYTHON_PACKAGES``). It does not import
clearml-serving.
"""

from __future__ import annotations

import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cad2program.errors import UserError
from cad2program.contract.program import Sheet
from cad2program.reading import Recognition, Recognizer
from cad2program.server.contract import build_response, parse_request

ENDPOINT_NAME = "cad_model"
# What `cad2program train` exports (and the tracker registers), in order of preference.
PREFERRED_MODEL_FILES = ("best_model.msgpack", "model.msgpack")
StatisticsCallback = Callable[[dict], None] | None


def find_model_file(local_file_name: str | Path | None, unpack_to: Path | None = None) -> Path:
    """The model file inside what clearml-serving downloaded: a `*.msgpack` file, a folder, or a zip.

    A registered folder arrives extracted (or as its zip); in a folder the file is `best_model.msgpack`,
    else `model.msgpack`, else the only `*.msgpack`. Raises UserError saying what was found instead.
    """
    if local_file_name is None:
        raise UserError("clearml-serving gave no model file: register the endpoint with a model "
                        "(--model-id, or --name/--project of a registered cad2program model)")
    path = Path(local_file_name)
    if not path.exists():
        raise UserError(f"{path}: the model file clearml-serving downloaded does not exist")
    if path.is_file() and zipfile.is_zipfile(path):
        folder = Path(tempfile.mkdtemp(prefix="cad2program-model-", dir=unpack_to))
        with zipfile.ZipFile(path) as archive:
            archive.extractall(folder)  # zipfile keeps members inside `folder` (it drops ".." and "/")
        path = folder
    if path.is_file():
        return path
    for name in PREFERRED_MODEL_FILES:
        found = sorted(path.rglob(name))
        if found:
            return found[0]
    candidates = sorted(path.rglob("*.msgpack"))
    if len(candidates) == 1:
        return candidates[0]
    listing = ", ".join(p.relative_to(path).as_posix() for p in sorted(path.rglob("*")) if p.is_file())[:500]
    what = "several *.msgpack files" if candidates else "no *.msgpack model file"
    raise UserError(f"{local_file_name}: {what} in the downloaded model (found: {listing or 'nothing'}); "
                    f"register the file that `cad2program train` exports ({' or '.join(PREFERRED_MODEL_FILES)})")


class Preprocess:
    """What clearml-serving's `custom` engine calls; one instance per serving process."""

    def __init__(self) -> None:
        # clearml-serving sets `model_endpoint` on the instance after creating it; nothing here needs it.
        self.recognizer: Recognizer | None = None
        self.model_file: Path | None = None
        # clearml-serving asks for thread safety; one JAX decode at a time also bounds memory per process
        self._lock = threading.Lock()

    def load(self, local_file_name: str | None) -> Recognizer:
        """Loads the model clearml-serving downloaded and compiles the decoder once, before any request."""
        self.model_file = find_model_file(local_file_name)
        self.recognizer = Recognizer.load(self.model_file)
        self._warm_up()
        return self.recognizer

    def preprocess(self, body: Any, state: dict, collect_custom_statistics_fn: StatisticsCallback = None
                   ) -> tuple[np.ndarray, Sheet | None]:
        """Request JSON -> (grey image, sheet or None); RequestError (-> HTTP 422) for a bad request."""
        image, sheet = parse_request(body)
        state["image_size"] = (int(image.shape[1]), int(image.shape[0]))
        return image, sheet

    def process(self, data: tuple[np.ndarray, Sheet | None], state: dict,
                collect_custom_statistics_fn: StatisticsCallback = None) -> Recognition:
        """Runs the model on the one drawing."""
        if self.recognizer is None:
            raise RuntimeError("the model is not loaded: clearml-serving did not call load() "
                               "(is a model attached to this endpoint?)")
        image, sheet = data
        started = time.perf_counter()
        with self._lock:
            recognition = self.recognizer.recognize([image], [sheet])[0]
        state["recognize_seconds"] = time.perf_counter() - started
        return recognition

    def postprocess(self, data: Recognition, state: dict,
                    collect_custom_statistics_fn: StatisticsCallback = None) -> dict:
        """Recognition -> response JSON; reports this request's statistics when asked to."""
        response = build_response(data)
        if collect_custom_statistics_fn is not None:
            collect_custom_statistics_fn(request_statistics(data, state))
        return response

    def _warm_up(self) -> None:
        """One blank page through the model: the first real request then finds the decoder compiled."""
        blank = np.full((self.recognizer.image_size, self.recognizer.image_size), 255, np.uint8)
        with self._lock:
            self.recognizer.recognize([blank], [Sheet(200, 200)])


def request_statistics(recognition: Recognition, state: dict) -> dict:
    """Values for clearml-serving's statistics (register them with `clearml-serving metrics add`).

    clearml-serving adds `_latency` (the whole request) itself.
    """
    confidences = recognition.confidences
    stats = {
        "primitives": len(recognition.primitives),
        "mean_confidence": round(float(np.mean(confidences)), 4) if confidences else 0.0,
        "valid": "true" if recognition.valid else "false",
    }
    if "recognize_seconds" in state:
        stats["recognize_seconds"] = round(state["recognize_seconds"], 4)
    if "image_size" in state:
        stats["image_pixels"] = state["image_size"][0] * state["image_size"][1]
    return stats
