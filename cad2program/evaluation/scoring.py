"""Scoring predictions against ground truth: shared/spec/drawings.md, section 5, in code.

Match rule, for one drawing with sheet W x H, tolerance t = 0.02 * max(W, H): a predicted and a true
primitive of the same type match when
- each of x, y, x1, y1, x2, y2, width, height, radius differs by at most t (a line also with its end
  points swapped);
- each arc angle differs by at most 5 degrees around the circle (359 and 2 are 3 degrees apart);
- polylines have the same `closed` flag and point count, and each point lies within t (Euclidean
  distance) of its partner, in order or reversed; closed ones also under any cyclic shift.

The *error* of a matching pair, used to choose among maximum matchings, is the sum over the compared
values of |difference| / t for coordinates and lengths, |angle difference| / 5 for arc angles, and
distance / t for polyline points; for lines and polylines, the smallest over the allowed pairings of
end points. Each term is at most 1 for a matching pair.

Size exactness counts the width/height/radius of matched truths, except those whose label says
`"annotated": false` (contract 1.1: the drawing gives no size for them). Geometry-only scoring
(`score(..., geometry_only=True)`, for drawings without dimensions) first turns rectangles and
polylines into their sides on both sides (`as_segments`) and scores no sizes.

Comparisons allow 1e-6 of float noise: values are on the 0.1 grid, so this only keeps 14.3 - 10.3
(= 4.000000000000002 in floats) within t = 4.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from cad2program.errors import UserError
from cad2program.contract.geometry import ANGLE_TOLERANCE, TOLERANCE_SHARE, as_segments, pair_error
from cad2program.contract.program import (Primitive, ProgramError, Sheet, TYPE_NAMES, primitives_from_json,
                                          program_problems)
from cad2program.contract.program_text import parse_program

_SIZE_EXACT = 0.05  # sizes are on the 0.1 grid: "equal to 0.1 mm" is a difference under half a step
SIZE_FIELDS = ("width", "height", "radius")

Item = tuple[Sequence[Primitive] | None, Sequence[Primitive], Sheet, str | None]


def match_primitives(pred: Sequence[Primitive], true: Sequence[Primitive],
                     sheet: Sheet) -> list[tuple[int, int]]:
    """A maximum matching of (pred index, true index) pairs; among those, the smallest total error.

    Solved as one assignment problem: a matching pair costs its error minus a constant larger than
    any sum of errors, a non-matching pair costs 0 and is dropped afterwards, so the solver first
    maximises the number of pairs, then minimises their total error.
    """
    from scipy.optimize import linear_sum_assignment

    if not pred or not true:
        return []
    errors = np.full((len(pred), len(true)), np.nan)
    for i, p in enumerate(pred):
        for j, q in enumerate(true):
            error = pair_error(p, q, sheet)
            if error is not None:
                errors[i, j] = error
    feasible = ~np.isnan(errors)
    if not feasible.any():
        return []
    big = float(np.nansum(errors)) + 1.0
    cost = np.where(feasible, errors - big, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if feasible[i, j])


def matched_flags(pred: Sequence[Primitive], true: Sequence[Primitive], sheet: Sheet) -> list[bool]:
    """For each predicted primitive, whether the scorer's matching pairs it with a true one."""
    matched = {i for i, _ in match_primitives(pred, true, sheet)}
    return [i in matched for i in range(len(pred))]


def _size_fields(primitive: Primitive) -> tuple[str, ...]:
    """The size fields a true primitive's annotations give: none when its label says "annotated": false."""
    if not primitive.annotated:
        return ()
    return tuple(name for name in SIZE_FIELDS if name in type(primitive).SIZE_FIELDS)


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


class _Tally:
    """Counts behind the metrics of one group of drawings (all, one style)."""

    def __init__(self):
        self.drawings = self.valid = self.exact_drawings = 0
        self.size_fields = self.size_exact = 0
        self.true: dict[str, int] = defaultdict(int)
        self.predicted: dict[str, int] = defaultdict(int)
        self.matched: dict[str, int] = defaultdict(int)

    def add(self, drawing: dict):
        self.drawings += 1
        self.valid += drawing["valid"]
        self.exact_drawings += drawing["exact"]
        self.size_fields += drawing["size_fields"]
        self.size_exact += drawing["size_exact"]
        for key in ("true", "predicted", "matched"):
            for type_name, count in drawing[key].items():
                getattr(self, key)[type_name] += count

    def report(self) -> dict:
        true, predicted, matched = (sum(d.values()) for d in (self.true, self.predicted, self.matched))
        out: dict[str, Any] = {"drawings": self.drawings}
        out.update(_prf(matched, predicted, true))
        out.update({
            "size_exactness": _ratio(self.size_exact, self.size_fields),
            "drawing_accuracy": _ratio(self.exact_drawings, self.drawings),
            "valid_rate": _ratio(self.valid, self.drawings),
            "true": true, "predicted": predicted, "matched": matched,
            "valid": self.valid, "exact_drawings": self.exact_drawings,
            "size_fields": self.size_fields, "size_fields_exact": self.size_exact,
        })
        out["per_type"] = {
            name: {**_prf(self.matched[name], self.predicted[name], self.true[name]),
                   "true": self.true[name], "predicted": self.predicted[name], "matched": self.matched[name]}
            for name in TYPE_NAMES if self.true[name] or self.predicted[name]}
        return out


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _prf(matched: int, predicted: int, true: int) -> dict:
    """Precision, recall, F1. With nothing predicted and nothing true all three are 1 (nothing to
    find, nothing invented); otherwise a zero denominator gives 0."""
    if predicted == 0 and true == 0:
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    precision = matched / predicted if predicted else 0.0
    recall = matched / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def score_drawing(pred: Sequence[Primitive] | None, true: Sequence[Primitive], sheet: Sheet,
                  geometry_only: bool = False) -> dict:
    """One drawing's counts: pairs, per-type true/predicted/matched, size fields, exactness, validity.

    `pred` None means the output did not parse: an empty prediction, not valid, never exact.
    `geometry_only`: both sides are compared as `as_segments` gives them and no size is scored (for
    drawings without dimensions), so a drawing is exact when every truth is matched and nothing is extra.
    """
    valid = pred is not None
    pred = list(pred or [])
    if geometry_only:
        pred, true = as_segments(pred), as_segments(true)
    pairs = match_primitives(pred, true, sheet)
    size_fields = size_exact = 0
    for i, j in pairs:
        for name in (() if geometry_only else _size_fields(true[j])):
            size_fields += 1
            size_exact += abs(getattr(pred[i], name) - getattr(true[j], name)) < _SIZE_EXACT
    counts: dict[str, dict[str, int]] = {"true": defaultdict(int), "predicted": defaultdict(int),
                                         "matched": defaultdict(int)}
    for p in true:
        counts["true"][p.TYPE] += 1
    for p in pred:
        counts["predicted"][p.TYPE] += 1
    for _, j in pairs:
        counts["matched"][true[j].TYPE] += 1
    exact = (valid and len(pairs) == len(true) == len(pred) and size_exact == size_fields)
    return {"pairs": pairs, "valid": valid, "exact": exact, "size_fields": size_fields,
            "size_exact": size_exact, **{k: dict(v) for k, v in counts.items()}}


def score(items: Iterable[Item], geometry_only: bool = False) -> dict:
    """Scores (prediction or None, truth, sheet, style or None) items -> a JSON-able report.

    `geometry_only` scores the drawings' geometry alone (see `score_drawing`): rectangles and polylines
    count as their sides, size exactness is None, and the report says `"geometry_only": true`.

    Overall: f1, precision, recall (micro-averaged over all primitives), size_exactness (share of
    width/height/radius fields of matched pairs equal to the truth to 0.1 mm), drawing_accuracy
    (every truth matched, nothing extra, all sizes exact, output valid), valid_rate, and the counts
    behind them; `per_type` the same F1/precision/recall for each type present; `per_style` the whole
    report for each style given (styles that are None are only in the overall figures). A ratio whose
    denominator is zero is None (null in JSON).
    """
    overall = _Tally()
    by_style: dict[str, _Tally] = {}
    for pred, true, sheet, style in items:
        drawing = score_drawing(pred, list(true), sheet, geometry_only)
        overall.add(drawing)
        if style is not None:
            by_style.setdefault(str(style), _Tally()).add(drawing)
    report = overall.report()
    report["per_style"] = {style: tally.report() for style, tally in sorted(by_style.items())}
    report["geometry_only"] = geometry_only
    report["tolerance"] = f"{TOLERANCE_SHARE} * max(W, H) on positions and lengths, {ANGLE_TOLERANCE:g} degrees on arc angles"
    return report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


SCORE_COLUMNS = f"{'F1':>8}{'precision':>11}{'recall':>8}{'size exact':>12}{'drawing acc':>13}{'valid':>8}"


def score_columns(row: dict) -> str:
    """One report row's F1, precision, recall, size exactness, drawing accuracy and valid rate, aligned
    under SCORE_COLUMNS (a style of `score`'s report, or a whole report)."""
    return (f"{_fixed(row['f1']):>8}{_fixed(row['precision']):>11}{_fixed(row['recall']):>8}"
            f"{_percent(row['size_exactness']):>12}{_percent(row['drawing_accuracy']):>13}"
            f"{_percent(row['valid_rate']):>8}")


def format_report_table(report: dict) -> str:
    """A readable text table of a `score` report: overall, per type, per style."""
    lines = [
        f"drawings {report['drawings']}   valid rate {_percent(report['valid_rate'])}   "
        f"drawing accuracy {_percent(report['drawing_accuracy'])}   "
        f"size exactness {_percent(report['size_exactness'])} "
        f"({report['size_fields_exact']}/{report['size_fields']} size fields)",
        "",
        f"{'':<12}{'F1':>8}{'precision':>11}{'recall':>8}{'true':>8}{'predicted':>11}{'matched':>9}",
    ]
    rows = [("all", report)] + list(report["per_type"].items())
    for name, row in rows:
        lines.append(f"{name:<12}{_fixed(row['f1']):>8}{_fixed(row['precision']):>11}{_fixed(row['recall']):>8}"
                     f"{row['true']:>8}{row['predicted']:>11}{row['matched']:>9}")
    if report.get("per_style"):
        lines += ["", f"{'style':<12}{'drawings':>9}{SCORE_COLUMNS}"]
        for style, row in report["per_style"].items():
            lines.append(f"{style:<12}{row['drawings']:>9}{score_columns(row)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def prediction_primitives(obj: dict, sheet: Sheet) -> tuple[list[Primitive] | None, str | None]:
    """A prediction line's primitives, or (None, why) when they do not parse or break the contract.

    The line holds either `primitives` (a JSON list, as in labels.jsonl) or `program` (program text,
    as the model writes it, parsed with `parse_program`); with both, `primitives` wins. The
    primitives are validated against the true sheet.
    """
    try:
        if "primitives" in obj:
            primitives = primitives_from_json(obj["primitives"])
        elif "program" in obj:
            if not isinstance(obj["program"], str):
                return None, f"'program' must be text, got {type(obj['program']).__name__}"
            primitives = parse_program(obj["program"])
        else:
            return None, "neither 'primitives' nor 'program'"
    except ProgramError as err:
        return None, str(err)
    problems = program_problems(primitives, sheet)
    if problems:
        return None, "; ".join(problems)
    return primitives, None


def _prediction_file(path: Path) -> Path:
    if path.is_dir():
        path = path / "labels.jsonl"
    if not path.is_file():
        raise UserError(f"prediction file {path} not found (expected a .jsonl file, one JSON object a line "
                        f"with 'image' and 'primitives' or 'program', or a folder holding labels.jsonl)")
    return path


def read_predictions(path: str | Path) -> tuple[dict[str, dict], list[str]]:
    """A prediction file -> ({image key: line object}, problems as 'file:line: why' text)."""
    path = _prediction_file(Path(path))
    predictions: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    problems: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                problems.append(f"{path.name}:{number}: bad JSON at column {err.colno}: {err.msg}")
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
                problems.append(f"{path.name}:{number}: expected a JSON object with an 'image' key")
                continue
            key = obj["image"]
            if key in predictions:
                problems.append(f"{path.name}:{number}: image {key!r} already predicted on line "
                                f"{first_line[key]}; this line is ignored")
                continue
            predictions[key] = obj
            first_line[key] = number
    return predictions, problems


def pair_predictions(pred_path: str | Path, truth_folder: str | Path
                     ) -> tuple[list[tuple[str, Item]], list[str]]:
    """Pairs a prediction file with a labelled folder by `image` key -> ([(key, item)], problems).

    Every good truth line gives one item; a missing or invalid prediction gives None (empty and not
    valid). Bad truth lines, bad prediction lines and predictions for unknown images are problems.
    """
    from cad2program.contract.dataset import load_labels

    predictions, problems = read_predictions(pred_path)
    truths, truth_problems = load_labels(truth_folder, check_images=False)
    problems = [f"truth {p}" for p in truth_problems] + problems
    items = []
    for record in truths:
        obj = predictions.get(record.image_key)
        if obj is None:
            pred = None
            problems.append(f"no prediction for {record.image_key!r}: scored as empty and invalid")
        else:
            pred, why = prediction_primitives(obj, record.sheet)
            if why:
                problems.append(f"prediction for {record.image_key!r} is invalid: {why}")
        items.append((record.image_key, (pred, record.primitives, record.sheet, record.extra.get("style"))))
    known = {record.image_key for record in truths}
    problems += [f"prediction for {key!r}: no such image in the truth (ignored)"
                 for key in predictions if key not in known]
    return items, problems


def score_files(pred_jsonl: str | Path, truth_folder: str | Path, geometry_only: bool = False) -> dict:
    """Scores a prediction file against a labelled folder (see `pair_predictions`) -> `score` report
    plus `problems`: every line and image that did not score normally, with why."""
    items, problems = pair_predictions(pred_jsonl, truth_folder)
    report = score((item for _, item in items), geometry_only)
    report["problems"] = problems
    return report
