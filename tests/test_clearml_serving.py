"""The ClearML-Serving preprocess module, driven the way clearml-serving drives it (no ClearML mock).

clearml-serving (1.3.x, `serving/preprocess_service.py` and `model_request_processor.py`) imports the
uploaded file by path, creates `Preprocess()`, sets `model_endpoint` on it, calls `load(<model file>)`
once, and per request calls preprocess -> process -> postprocess with a fresh `state` dict and, when
statistics are on, `custom_stats.update` as the callback. An exception from preprocess becomes HTTP 422
when it is a ValueError (the message goes into `detail`), HTTP 500 otherwise (`serving/main.py`); the
messages themselves come from the shared contract (`cad2program.server.contract`).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cad2program.errors import UserError
from cad2program.contract.program import Sheet, primitives_from_json
from cad2program.contract.program_text import parse_program
from cad2program.synth import GeneratorConfig, make_example

MODULE_FILE = Path(__file__).resolve().parents[1] / "cad2program" / "integrations" / "clearml_serving.py"


def import_like_clearml_serving(path: Path):
    """How clearml-serving imports a single-file preprocess artifact."""
    spec = importlib.util.spec_from_file_location("Preprocess", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StatisticsRecorder:
    """Stands in for clearml-serving's `custom_stats.update`, keeping every call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, values: dict) -> None:
        self.calls.append(dict(values))


def serve(preprocess, body, statistics=None) -> dict:
    """One request, as `ModelRequestProcessor._process_request` runs it for the `custom` engine."""
    state: dict = {}
    data = preprocess.preprocess(body, state, statistics)
    result = preprocess.process(data, state, statistics)
    return preprocess.postprocess(result, state, statistics)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A tiny model file with random weights, in the format `cad2program train` exports.

    The weights are drawn with numpy onto the model's abstract shapes: initialising the model for real
    takes seconds of small JAX ops, and serving does not care where the numbers came from.
    """
    import jax
    from flax import nnx

    from cad2program.model.configs import tiny
    from cad2program.model.modelfile import build_model, export_model

    config = tiny()
    _, state = nnx.split(nnx.eval_shape(lambda: build_model(config)))
    rng = np.random.default_rng(0)
    weights = jax.tree_util.tree_map(lambda leaf: (0.05 * rng.standard_normal(leaf.shape)).astype(leaf.dtype),
                                     nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, weights)
    return export_model(tmp_path_factory.mktemp("model") / "best-1234.msgpack", config, state)


@pytest.fixture(scope="module")
def module():
    return import_like_clearml_serving(MODULE_FILE)


@pytest.fixture(scope="module")
def endpoint(module, model_file):
    preprocess = module.Preprocess()
    preprocess.model_endpoint = object()  # clearml-serving sets its ModelEndpoint here
    preprocess.load(str(model_file))
    # The random tiny model's primitives lie anywhere: re-measuring would drop those off the ink, and
    # these tests check the response's form on real items (refinement has its own tests).
    preprocess.recognizer.refine = False
    return preprocess


@pytest.fixture(scope="module")
def drawing():
    example = make_example(0, 0, GeneratorConfig(long_side_px=256))
    return example, png_bytes(example.image)


# ----- good requests ----------------------------------------------------------------------------------------


def test_a_drawing_gives_primitives_a_parsable_program_and_statistics(endpoint, drawing):
    example, png = drawing
    statistics = StatisticsRecorder()
    response = serve(endpoint, {"data": b64(png), "sheet": example.sheet.to_json()}, statistics)

    assert set(response) == {"primitives", "program", "sheet", "valid", "problems"}
    assert response["sheet"] == example.sheet.to_json()
    # the random tiny model writes primitives until its length limit: the checks below see real items
    assert isinstance(response["primitives"], list) and response["primitives"]
    for primitive in response["primitives"]:
        assert primitive["type"] in {"line", "rectangle", "circle", "arc", "polyline"}
        assert 0.0 <= primitive["confidence"] <= 1.0
    # the program text and the JSON list say the same thing
    without_confidence = [{k: v for k, v in p.items() if k != "confidence"} for p in response["primitives"]]
    assert parse_program(response["program"]) == primitives_from_json(without_confidence)
    assert isinstance(response["valid"], bool) and isinstance(response["problems"], list)

    assert len(statistics.calls) == 1
    stats = statistics.calls[0]
    assert stats["primitives"] == len(response["primitives"])
    assert stats["valid"] == ("true" if response["valid"] else "false")
    assert 0.0 <= stats["mean_confidence"] <= 1.0
    assert stats["recognize_seconds"] > 0
    height, width = example.image.shape[:2]
    assert stats["image_pixels"] == width * height


def test_same_request_same_answer_with_statistics_off(endpoint, drawing):
    example, png = drawing
    body = {"data": b64(png), "sheet": example.sheet.to_json()}
    # collect_custom_statistics_fn is None when clearml-serving does not sample this request
    assert serve(endpoint, body, None) == serve(endpoint, body, StatisticsRecorder())


def test_without_a_sheet_it_is_inferred_from_the_aspect_ratio(endpoint):
    page = np.full((100, 200), 255, np.uint8)
    response = serve(endpoint, {"data": b64(png_bytes(page))})
    assert response["sheet"] == {"width": 297, "height": 148}


def test_data_url_wrapped_base64_and_jpeg_are_accepted(endpoint, drawing):
    example, png = drawing
    wrapped = "\n".join(b64(png)[i:i + 76] for i in range(0, len(b64(png)), 76))  # as `base64` writes it
    plain = serve(endpoint, {"data": b64(png), "sheet": example.sheet.to_json()})
    assert serve(endpoint, {"data": wrapped, "sheet": example.sheet.to_json()}) == plain
    assert serve(endpoint, {"data": "data:image/png;base64," + b64(png), "sheet": example.sheet.to_json()}) == plain
    buffer = io.BytesIO()
    Image.fromarray(example.image).save(buffer, "JPEG", quality=90)
    assert isinstance(serve(endpoint, {"data": b64(buffer.getvalue())})["primitives"], list)


# ----- bad requests: ValueError (HTTP 422 in clearml-serving) whose message says what is wrong ---------------


def _bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (10_000, 5_001), 1).save(buffer, "PNG")  # 50,010,000 pixels in about 16 kB
    return buffer.getvalue()


BLANK_PNG = png_bytes(np.full((40, 60), 255, np.uint8))
BAD_REQUESTS = {
    "list body": ([{"data": "x"}], "the request must be a JSON object"),
    "string body": ("iVBORw0KGgo=", "the request must be a JSON object"),
    "raw bytes body": (b"\x89PNG\r\n", "raw bytes (send the image base64-encoded in a JSON body)"),
    "no data": ({"sheet": {"width": 200, "height": 100}}, "missing 'data'"),
    "empty data": ({"data": ""}, "'data' is empty"),
    "data not a string": ({"data": [1, 2]}, "'data' must be a string"),
    "bad base64 character": ({"data": "iVBOR$w0KGgo="},
                             "'data' is not valid base64 (character '$' at position 5 is outside"),
    "cut base64": ({"data": b64(BLANK_PNG)[:-3]}, "is not a multiple of 4: the text is cut off"),
    "non-ascii base64": ({"data": "iVBORé"}, "'data' is not valid base64: non-ASCII character 'é'"),
    "not an image": ({"data": b64(b"%PDF-1.7 not a drawing")}, "not an image Pillow can read"),
    "truncated png": ({"data": b64(BLANK_PNG[: len(BLANK_PNG) // 2])}, "cannot decode (truncated or corrupt"),
    "decompression bomb": ({"data": b64(_bomb_png())}, "10000 x 5001 pixels is over the limit"),
    "sheet not an object": ({"data": b64(BLANK_PNG), "sheet": [200, 100]}, "bad 'sheet'"),
    "sheet without height": ({"data": b64(BLANK_PNG), "sheet": {"width": 200}}, "missing field height"),
    "sheet side a string": ({"data": b64(BLANK_PNG), "sheet": {"width": "200", "height": 100}},
                            "sheet.width: expected a number"),
    "negative sheet": ({"data": b64(BLANK_PNG), "sheet": {"width": -200, "height": 100}}, "must be > 0"),
    "sheet out of scope": ({"data": b64(BLANK_PNG), "sheet": {"width": 900, "height": 600}},
                           "sheet width 900 mm is outside 50..500 mm"),
    "misspelt key": ({"data": b64(BLANK_PNG), "sheets": {"width": 200, "height": 100}}, "unknown key 'sheets'"),
}


@pytest.mark.parametrize("body, message", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_are_refused_with_a_clear_message(endpoint, body, message):
    from cad2program.server.contract import RequestError

    statistics = StatisticsRecorder()
    with pytest.raises(RequestError) as caught:
        serve(endpoint, body, statistics)
    assert isinstance(caught.value, ValueError)  # what clearml-serving turns into HTTP 422 with the message
    assert message in str(caught.value)
    assert statistics.calls == []  # a refused request never reaches the statistics


# ----- loading what clearml-serving downloaded ------------------------------------------------------------------


def test_loads_a_registered_folder_extracted_or_zipped(module, model_file, tmp_path):
    folder = tmp_path / "workdir"
    folder.mkdir()
    (folder / "best_model.msgpack").write_bytes(model_file.read_bytes())
    (folder / "model.msgpack").write_bytes(b"an older export")
    (folder / "notes.txt").write_text("training notes")
    assert module.find_model_file(folder) == folder / "best_model.msgpack"

    archive = tmp_path / "best.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(folder / "best_model.msgpack", "run/best_model.msgpack")
    found = module.find_model_file(archive, unpack_to=tmp_path)
    assert found.name == "best_model.msgpack" and found.read_bytes() == model_file.read_bytes()


def test_model_problems_say_what_was_found(module, tmp_path):
    with pytest.raises(UserError, match="gave no model file"):
        module.Preprocess().load(None)  # an endpoint added without a model
    (tmp_path / "weights.bin").write_bytes(b"...")
    with pytest.raises(UserError, match=r"no \*\.msgpack model file .*found: weights\.bin"):
        module.find_model_file(tmp_path)
    foreign = tmp_path / "foreign.msgpack"
    foreign.write_bytes(b"\x81\xa1a\x01")  # valid msgpack, not a cad2program model
    with pytest.raises(UserError, match="cannot read this model file"):
        module.Preprocess().load(foreign)


def test_process_without_a_loaded_model_is_a_server_error(module):
    with pytest.raises(RuntimeError, match="model is not loaded"):
        module.Preprocess().process((np.full((10, 10), 255, np.uint8), Sheet(100, 100)), {})
