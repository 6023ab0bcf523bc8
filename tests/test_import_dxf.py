"""`cad2program import-dxf`: DXF files (written here by ezdxf) become a dataset folder that `check` and
training accept; bad files cost one clear line each and the others are still imported."""

from __future__ import annotations

import json
import math

import ezdxf
import pytest

from cad2program.cli import main
from cad2program.contract.dataset import load_labels
from cad2program.dxf.importer import DxfError, polyline_shapes, read_dxf
from cad2program.dxf.drawings import split_into_crops
from cad2program.contract.program import Arc, Circle, Line, Rectangle


def _new():
    doc = ezdxf.new("R2010", setup=True)
    doc.units = ezdxf.units.MM
    return doc, doc.modelspace()


def _part(path, dimensions=True):
    doc, msp = _new()
    msp.add_lwpolyline([(0, 0), (80, 0), (80, 50), (0, 50)], close=True)
    msp.add_circle((20, 25), 6)
    msp.add_lwpolyline([(0, 60, 0), (30, 60, 0.5), (30, 70, 0), (0, 70, 0)], format="xyb")
    msp.add_line((20, 15), (20, 35), dxfattribs={"linetype": "CENTER"})
    msp.add_spline([(0, 0), (10, 10), (20, 0)])
    msp.add_text("PART 1")
    msp.add_line((5, 5), (5, 5))
    if dimensions:
        msp.add_linear_dim(base=(0, -10), p1=(0, 0), p2=(80, 0)).render()
        msp.add_diameter_dim(center=(20, 25), radius=6, angle=45).render()
    doc.saveas(path)
    return path


def _labels(folder):
    return [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()]


def test_a_part_maps_onto_the_contracts_primitives(tmp_path):
    content = read_dxf(_part(tmp_path / "part.dxf"))
    kinds = sorted(s.kind for s in content.shapes)
    # The bulged polyline: a line, an arc, a line; the closed quad: a rectangle.
    assert kinds == ["arc", "circle", "line", "line", "rectangle"]
    assert len(content.inks) == 1 and content.inks[0].pattern == "centre"
    assert {d.kind for d in content.dimensions} == {"linear", "diameter"}
    assert sorted(round(d.value, 3) for d in content.dimensions) == [12.0, 80.0]
    assert content.skipped == {"spline (no contract primitive)": 1, "text": 1, "zero-length entity": 1}


def test_bulge_becomes_an_arc_through_the_same_points():
    shapes = polyline_shapes([(0, 0, 0), (10, 0, 1.0), (10, 10, 0)], False, 1e-6, 1e9)
    assert [s.kind for s in shapes] == ["line", "arc"]
    x, y, r, start, end = shapes[1].values  # a half circle from (10, 0) to (10, 10), counter-clockwise
    assert (round(x, 6), round(y, 6), round(r, 6)) == (10, 5, 5)
    assert round(start, 6) == 270 and round(end, 6) == 90


def test_four_lines_closing_an_axis_aligned_outline_become_a_rectangle(tmp_path):
    doc, msp = _new()
    for a, b in [((0, 0), (40, 0)), ((40, 0), (40, 20)), ((40, 20), (0, 20)), ((0, 20), (0, 0))]:
        msp.add_line(a, b)
    msp.add_line((0, 30), (40, 30))
    doc.saveas(tmp_path / "quad.dxf")
    content = read_dxf(tmp_path / "quad.dxf")
    assert sorted(s.kind for s in content.shapes) == ["line", "rectangle"]
    assert next(s for s in content.shapes if s.kind == "rectangle").values == (0.0, 0.0, 40.0, 20.0)


def test_block_references_are_exploded_with_their_transform(tmp_path):
    doc, msp = _new()
    block = doc.blocks.new("HOLE")
    block.add_circle((0, 0), 3)
    msp.add_blockref("HOLE", (50, 40))
    msp.add_blockref("HOLE", (10, 10), dxfattribs={"xscale": 2, "yscale": 2})
    doc.saveas(tmp_path / "blocks.dxf")
    circles = sorted(s.values for s in read_dxf(tmp_path / "blocks.dxf").shapes)
    assert circles == [(10.0, 10.0, 6.0), (50.0, 40.0, 3.0)]


def test_layer_linetype_makes_a_centre_line(tmp_path):
    doc, msp = _new()
    doc.layers.add("AXES", linetype="CENTER")
    msp.add_line((0, 0), (50, 0), dxfattribs={"layer": "AXES"})
    msp.add_circle((25, 0), 10)
    doc.saveas(tmp_path / "axes.dxf")
    content = read_dxf(tmp_path / "axes.dxf")
    assert [s.kind for s in content.shapes] == ["circle"] and len(content.inks) == 1


def test_crops_hold_whole_primitives_and_at_most_twelve(tmp_path):
    doc, msp = _new()
    for k in range(30):
        msp.add_circle((k * 10, (k % 5) * 10), 3)
    doc.saveas(tmp_path / "many.dxf")
    content = read_dxf(tmp_path / "many.dxf")
    crops = split_into_crops(content.shapes)
    assert all(len(c) <= 12 for c in crops)
    assert sorted(i for c in crops for i in c) == list(range(30))  # every primitive in exactly one crop


def test_import_writes_a_folder_that_check_accepts(tmp_path, capsys):
    _part(tmp_path / "part.dxf")
    _part(tmp_path / "plain.dxf", dimensions=False)
    out = tmp_path / "ds"
    assert main(["import-dxf", str(tmp_path / "part.dxf"), str(tmp_path / "plain.dxf"), "--out", str(out),
                 "--styles", "clean,scan"]) == 0
    report = capsys.readouterr().out
    assert "part.dxf: 2 drawings" in report and "1 spline (no contract primitive)" in report
    lines = _labels(out)
    assert len(lines) == 4 and {line["style"] for line in lines} == {"clean", "scan"}
    assert main(["check", str(out)]) == 0
    records, problems = load_labels(out)
    assert not problems
    with_dims = [r for r in records if r.extra["source"].endswith("part.dxf")][0]
    types = sorted(p.TYPE for p in with_dims.primitives)
    assert types == ["arc", "circle", "line", "line", "rectangle"]
    circle = next(p for p in with_dims.primitives if isinstance(p, Circle))
    rectangle = next(p for p in with_dims.primitives if isinstance(p, Rectangle))
    # The file's diameter dimension writes the circle's size; its one linear dimension only the width,
    # so the rectangle's height is written nowhere: "annotated": false.
    assert circle.annotated and circle.radius == 6 and not rectangle.annotated
    assert "\u00d812" in with_dims.extra["annotations"] and "80" in with_dims.extra["annotations"]
    plain = [r for r in records if r.extra["source"].endswith("plain.dxf")][0]
    assert plain.extra.get("annotations")  # the file had none: the generator's dimensions were added
    for record in records:  # every primitive lies on its sheet, inside the contract's scope
        assert not record.sheet.in_scope_problems()
        assert all(not p.problems(record.sheet) for p in record.primitives)


def test_file_dimension_values_survive_a_drafting_scale(tmp_path):
    doc, msp = _new()
    msp.add_lwpolyline([(0, 0), (2000, 0), (2000, 1000), (0, 1000)], close=True)  # 2 m: drawn at 1:10
    msp.add_linear_dim(base=(0, -200), p1=(0, 0), p2=(2000, 0)).render()
    doc.saveas(tmp_path / "big.dxf")
    out = tmp_path / "ds"
    assert main(["import-dxf", str(tmp_path / "big.dxf"), "--out", str(out), "--styles", "clean"]) == 0
    line = _labels(out)[0]
    assert line["scale"] == 0.1
    assert line["primitives"][0]["width"] == 200 and line["annotations"] == ["200"]


def test_bad_files_get_one_line_each_and_the_others_are_imported(tmp_path, capsys):
    good = _part(tmp_path / "good.dxf")
    dwg = tmp_path / "drawing.dwg"
    dwg.write_bytes(b"AC1032" + bytes(200))
    corrupt = tmp_path / "corrupt.dxf"
    corrupt.write_text("  0\nSECTION\n  2\nENTITIES\n garbage\n")
    empty = tmp_path / "empty.dxf"
    _new()[0].saveas(empty)
    binary = tmp_path / "binary.dxf"
    binary.write_bytes(b"AutoCAD Binary DXF\r\n\x1a\x00" + bytes(50))
    only_text = tmp_path / "text.dxf"
    doc, msp = _new()
    msp.add_text("NOTES")
    msp.add_line((0, 0), (1e12, 0))
    doc.saveas(only_text)
    out = tmp_path / "ds"
    paths = [str(p) for p in (dwg, corrupt, good, empty, binary, only_text, tmp_path / "missing.dxf")]
    assert main(["import-dxf", *paths, "--out", str(out), "--styles", "clean"]) == 1
    report = capsys.readouterr().out
    failed = [line for line in report.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 6
    assert any("DWG files are not read" in line and "ODA File Converter" in line for line in failed)
    assert any("corrupt.dxf: not a readable DXF file" in line for line in failed)
    assert any("binary.dxf: not a readable DXF file" in line for line in failed)
    assert any("modelspace is empty" in line for line in failed)
    assert any("text.dxf: nothing the contract can hold" in line and "absurd coordinates" in line for line in failed)
    assert any("missing.dxf: file not found" in line for line in failed)
    assert len(_labels(out)) == 1 and "good.dxf" in _labels(out)[0]["source"]


def test_a_binary_dxf_is_read(tmp_path):
    doc, msp = _new()
    msp.add_circle((10, 10), 4)
    doc.saveas(tmp_path / "b.dxf", fmt="bin")
    assert (tmp_path / "b.dxf").read_bytes().startswith(b"AutoCAD Binary DXF")
    assert [s.kind for s in read_dxf(tmp_path / "b.dxf").shapes] == ["circle"]


def test_a_damaged_file_is_read_in_recover_mode(tmp_path):
    path = _part(tmp_path / "part.dxf", dimensions=False)
    text = path.read_text()
    # Cut short (a truncated copy): the normal reader gives up, recover mode still reads the entities.
    path.write_text(text[: int(len(text) * 0.9)])
    with pytest.raises(ezdxf.DXFStructureError):
        ezdxf.readfile(path)
    content = read_dxf(path)
    assert sorted(s.kind for s in content.shapes) == ["arc", "circle", "line", "line", "rectangle"]
    assert "recover mode" in content.notes[0]


def test_mirrored_arc_keeps_its_ink(tmp_path):
    doc, msp = _new()
    msp.add_arc((10, 0), 5, 0, 90, dxfattribs={"extrusion": (0, 0, -1)})
    doc.saveas(tmp_path / "mirror.dxf")
    (shape,) = read_dxf(tmp_path / "mirror.dxf").shapes
    x, y, r, start, end = shape.values
    # Seen from below, OCS x is world -x: the quarter from (15, 0) to (10, 5) lands at (-15, 0)..(-10, 5).
    assert (x, y, r) == (-10, 0, 5) and (start, end) == (90, 180)


def test_dxf_error_is_a_user_error():
    with pytest.raises(DxfError):
        read_dxf("/nonexistent/file.dxf")
    assert math.isclose(Arc(0, 0, 1, 0, 90).radius, 1) and Line(0, 0, 1, 1)


def _imported_parts(tmp_path):
    for k in range(3):
        _part(tmp_path / f"part{k}.dxf", dimensions=k % 2 == 0)
    out = tmp_path / "ds"
    assert main(["import-dxf", str(tmp_path), "--out", str(out), "--styles", "clean,photo"]) == 0
    return out


def test_training_data_source_takes_an_imported_folder(tmp_path):
    from cad2program.model.configs import tiny
    from cad2program.training.train import data_source

    out = _imported_parts(tmp_path)
    messages = []
    examples, eval_set = data_source(tiny(), out, messages.append)
    assert len(examples) + len(eval_set.images) == 6  # three files, two styles each, none refused
    assert any("5 drawings for training, 1 held out" in m for m in messages)


@pytest.mark.slow
def test_training_reads_an_imported_folder(tmp_path):
    from cad2program.model.configs import tiny
    from cad2program.training.train import train_and_evaluate

    out = _imported_parts(tmp_path)
    config = tiny().replace(steps=2, eval_every=2, checkpoint_every=2, eval_examples=2)
    messages = []
    summary = train_and_evaluate(config, tmp_path / "run", data_dir=out, progress=False, log=messages.append)
    assert summary["step"] == 2 and (tmp_path / "run" / "model.msgpack").exists()
    assert any("data: " in m and "drawings for training" in m for m in messages)


def test_not_annotated_primitives_round_trip_and_count_for_matching_only():
    from cad2program.contract.program import ProgramError, Sheet, primitive_from_json
    from cad2program.evaluation.scoring import score_drawing

    label = {"type": "circle", "x": 30, "y": 40, "radius": 5, "annotated": False}
    circle = primitive_from_json(label)
    assert not circle.annotated and circle.to_json() == label
    assert circle == Circle(30, 40, 5) and primitive_from_json({**label, "annotated": True}).annotated
    with pytest.raises(ProgramError, match="'annotated' must be true or false"):
        primitive_from_json({**label, "annotated": "no"})
    near = [Circle(30, 40, 5.5)]  # matched (within 2% of 100 mm), size not exact
    scored = score_drawing(near, [circle], Sheet(100, 100))
    assert len(scored["pairs"]) == 1 and scored["size_fields"] == 0 and scored["exact"]
    assert score_drawing(near, [Circle(30, 40, 5)], Sheet(100, 100))["size_fields"] == 1


@pytest.mark.slow  # a tiny training run: a minute of CPU (several on a busy machine)
def test_a_run_stopped_early_registers_the_model_it_stopped_with(tmp_path):
    from cad2program.model.configs import tiny
    from cad2program.training.train import train_and_evaluate

    class Recorder:  # the tracker's interface, recording what the training loop registers
        def __init__(self):
            self.models = []

        def register_model(self, path, name, best=False, metadata=None):
            self.models.append((name, path.exists(), dict(metadata or {})))

        def report_scalars(self, *args, **kwargs):
            pass

        def report_image(self, *args, **kwargs):
            pass

    tracker = Recorder()
    config = tiny().replace(steps=6, eval_every=1000, checkpoint_every=1000, eval_examples=0)
    train_and_evaluate(config, tmp_path, progress=False, log=lambda *_: None, stop_at_step=2, tracker=tracker)
    assert tracker.models == [("latest", True, {"step": 2})]


def test_half_arcs_of_one_circle_become_a_circle_and_touching_arcs_one_arc(tmp_path):
    doc, msp = _new()
    msp.add_arc((20, 20), 10, 0, 180)  # a circle drawn as two half arcs, as CAD libraries often do
    msp.add_arc((20, 20), 10, 180, 0)
    msp.add_arc((60, 20), 5, 300, 30)  # two arcs meeting at 30 degrees: one arc from 300 to 60
    msp.add_arc((60, 20), 5, 30, 60)
    msp.add_arc((90, 20), 5, 0, 90)  # apart: left alone
    msp.add_arc((90, 20), 5, 180, 270)
    doc.saveas(tmp_path / "arcs.dxf")
    shapes = sorted((s.kind, tuple(round(v, 6) for v in s.values)) for s in read_dxf(tmp_path / "arcs.dxf").shapes)
    assert shapes == [("arc", (60, 20, 5, 300, 60)), ("arc", (90, 20, 5, 0, 90)), ("arc", (90, 20, 5, 180, 270)),
                      ("circle", (20, 20, 10))]
