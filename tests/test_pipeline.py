"""The pipeline after the model: declared stages, one context per drawing, two runners that agree."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from cad2program.errors import UserError
from cad2program.contract.program import Sheet
from cad2program.reading import (STAGES, DEFAULT_SETTINGS, Drawing, ReadingSettings, Recognizer, run_stages_async,
                                 stages_for)
from cad2program.reading import pipeline
from cad2program.refine import Ink
from cad2program.synth import GeneratorConfig, make_example

pytest_plugins = ["tiny_model"]


@dataclasses.dataclass
class Switches:
    refine: bool = True
    read_text: bool = True
    second_look: bool = True


def test_the_stages_follow_the_switches():
    names = [s.name for s in stages_for(Switches())]
    assert names == [s.name for s in STAGES]
    assert [s.name for s in stages_for(Switches(refine=False))] == ["read"]
    no_text = [s.name for s in stages_for(Switches(read_text=False))]
    assert "read numbers" not in no_text and "find sheet" not in no_text and "measure" in no_text
    one_look = [s.name for s in stages_for(Switches(second_look=False))]
    assert "read second" not in one_look and one_look[-4:] == ["drop uninked circles", "join lines to arcs",
                                                               "repeat circles", "find lone rounds"]
    assert [s.name for s in stages_for(Switches(), until="erase found")][-1] == "drop repeats"
    with pytest.raises(ValueError, match="no stage"):
        stages_for(Switches(), until="no such stage")


def _drawings():
    out = []
    for seed in (35, 36, 37):
        example = make_example(seed, 0, GeneratorConfig(long_side_px=256, part_share=0.0))
        out.append((example.image, example.sheet if seed != 36 else None))
    return out


def _run_async(recognizer, drawing):
    async def on_pool(function, *args):
        return function(*args)

    async def decode(prepared, sheet):
        return recognizer.recognize_prepared(prepared[None], [sheet])[0]

    asyncio.run(run_stages_async(recognizer, drawing, recognizer.stages, on_pool, on_pool, decode))
    return drawing


def test_both_runners_give_the_same_answer_with_and_without_a_sheet(tiny_model, monkeypatch):
    recognizer = Recognizer.load(tiny_model, max_batch=1)
    # The numbers "read" on every drawing, and a sheet "found" from them where none was given: the
    # drawing is then read again on it, in both runners.
    monkeypatch.setattr(recognizer, "written_on", lambda image, ink=None: ())
    found = Sheet(250, 180)
    monkeypatch.setattr(pipeline, "sheet_from_numbers", lambda *args, **kw: found)
    for image, sheet in _drawings():
        [batch] = recognizer.read([image], [sheet])
        single = _run_async(recognizer, Drawing.of(image, sheet, recognizer.image_size))
        assert batch.sheet == single.sheet == (sheet or found)
        assert batch.sheet_found == single.sheet_found == (sheet is None)
        assert batch.result.program == single.result.program
        assert batch.result.confidences == single.result.confidences


def test_each_image_ink_is_computed_once(tiny_model, monkeypatch):
    recognizer = Recognizer.load(tiny_model)
    monkeypatch.setattr(recognizer, "written_on", lambda image, ink=None: None)
    calls = []
    original = Ink.of.__func__

    def counted(cls, image):
        calls.append(image.shape)
        return original(cls, image)

    monkeypatch.setattr(Ink, "of", classmethod(counted))
    image, sheet = _drawings()[0]
    [drawing] = recognizer.read([image], [sheet])
    assert drawing.second is not None
    assert len(calls) <= 2  # the first look's image and the second look's, at most once each


def test_a_model_file_carries_its_reading_settings(tmp_path):
    from flax import nnx

    from cad2program.model.configs import tiny
    from cad2program.model.modelfile import build_model, export_model

    config = tiny()
    state = nnx.state(build_model(config))
    changed = dataclasses.replace(DEFAULT_SETTINGS, second_look_min_logprob=-3.0,
                                  min_ink_share={"line": 0.9, "rectangle": 0.7, "polyline": 0.85})
    path = export_model(tmp_path / "m.msgpack", config, state, {"reading": changed.to_json()})
    assert Recognizer.load(path).settings == changed
    plain = export_model(tmp_path / "plain.msgpack", config, state)
    assert Recognizer.load(plain).settings == DEFAULT_SETTINGS  # older files read with the defaults
    assert ReadingSettings.from_json({"reading_weight": 0.5}).reading_weight == 0.5
    for bad, message in (({"reading_weight": "high"}, "must be a number"), ({"nope": 1}, "unknown reading settings"),
                         ({"version": 99}, "version 99"), ({"ink_sigma_px": 2}, "map primitive types")):
        with pytest.raises(UserError, match=message):
            ReadingSettings.from_json(bad)


def test_a_stricter_ink_share_drops_a_line_the_ink_shows_too_little_of():
    from cad2program.contract.program import Line
    from cad2program.reading.ink_rules import measured_on
    from cad2program.reading.recognition import Recognition

    sheet = Sheet(100, 100)
    image = np.full((400, 400), 255, np.uint8)
    for x in range(40, 360, 64):  # a dashed stroke at y=50 mm: 10 mm dashes, 6 mm gaps
        image[200:203, x:x + 40] = 0
    seen = Recognition(sheet, [Line(10, 49.5, 90, 49.5)], [0.9], valid=True)
    kept, sizes = measured_on(image, seen)
    assert 0.55 < sizes[0]["ink_share"] < 0.75 and len(kept.primitives) == 1  # the default 0.5 keeps it...
    strict = dataclasses.replace(DEFAULT_SETTINGS, min_ink_share={"line": 0.8})
    assert measured_on(image, seen, settings=strict)[0].primitives == []  # ...a stricter share does not
