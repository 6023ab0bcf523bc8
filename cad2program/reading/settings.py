"""The tuned thresholds of what follows the model: one versioned configuration that travels with it.

Each value was chosen on held-out drawings, for one model (which drawings and what the alternatives
scored: `docs/thresholds.md`). `modelfile.export_model` stores them in the model file (under
"reading") and `modelfile.load_model` gives them back, so a model fine-tuned and re-calibrated on
other drawings carries its own; a model file without them (older exports, the packaged one before
version 1 of this record) reads with the defaults below, the values chosen for the packaged model.

The geometric tunables of measuring (band widths, search reaches: `refine/`) are the measurers'
own parameters, documented where they are used; what is here decides what is kept and which value
wins.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from cad2program.errors import UserError

SETTINGS_VERSION = 1


def _by_type(**values: float) -> Any:
    return dataclasses.field(default_factory=lambda: dict(values))


@dataclasses.dataclass(frozen=True)
class ReadingSettings:
    version: int = SETTINGS_VERSION
    # Measuring (`ink_rules.measured_on`): straight-edged primitives whose strokes lie on ink less
    # than this share, per type, are dropped; so is a closed polyline whose every side is shorter
    # than `arrowhead_sides` matching tolerances (an arrowhead the model took for an outline).
    min_ink_share: Mapping[str, float] = _by_type(line=0.5, rectangle=0.7, polyline=0.85)
    arrowhead_sides: float = 2.0
    # Last (`ink_rules.without_uninked_circles`): circles inked under this share of their round are dropped.
    circle_inked: float = 0.7
    # Finding the sheet from the numbers (`sizes.sheet_from_numbers`): candidate scales within this
    # share are one; a number counts for primitives within this many matching tolerances.
    scale_agreement: float = 0.03
    scale_text_reach: float = 8.0
    # Re-reading sizes (`Recognizer.reread_sizes`, `sizes.size_jobs`): how far the ink's measure
    # strays (pixels, per type), the model's weight against it, the scale disagreement past which
    # the readings stay, and what a number the OCR found near the primitive gains.
    ink_sigma_px: Mapping[str, float] = _by_type(rectangle=0.8, circle=0.3, arc=2.0)
    reading_weight: float = 0.3
    scale_slack: float = 0.25
    max_size_candidates: int = 41
    written_bonus: float = 8.0
    distance_weight: float = 0.25
    written_floor: float = 1.0
    plain_share_for_arcs: float = 0.5
    # The second look (`second_look`): a candidate is kept at this summed log-probability in the
    # first reading's place for it, a polyline drawn as a stroke of its own gaining the bonus.
    second_look_min_logprob: float = -17.5
    drawn_alone_bonus: float = 22.5
    # Repeats (`refine.circle_repeats`): a round of a found circle's radius inked this share of the
    # way round (on bare paper) is another circle; above 1, none is added.
    repeat_circle_inked: float = 0.95
    # Lone rounds (`refine.circle_repeats.lone_rounds`): a small round piece of ink on its own, inked
    # this share of the way round, is a circle the model did not see; above 1, none is added.
    lone_round_inked: float = 0.97

    def min_ink_share_of(self, primitive: Any) -> float:
        return self.min_ink_share.get(primitive.TYPE, 0.0)

    def ink_sigma_px_of(self, primitive: Any) -> float:
        return self.ink_sigma_px[primitive.TYPE]

    def to_json(self) -> dict:
        return {field.name: (dict(value) if isinstance(value, Mapping) else value)
                for field in dataclasses.fields(self) for value in [getattr(self, field.name)]}

    @classmethod
    def from_json(cls, obj: Any, where: str = "the model file") -> "ReadingSettings":
        """Settings as `to_json` wrote them; missing fields take their defaults (a record written by
        an older version). Raises UserError naming what is wrong."""
        if not isinstance(obj, dict):
            raise UserError(f"{where}: the reading settings are not a JSON object")
        version = obj.get("version", SETTINGS_VERSION)
        if version != SETTINGS_VERSION:
            raise UserError(f"{where}: reading settings version {version!r}; this version of cad2program "
                            f"reads version {SETTINGS_VERSION}")
        names = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - set(names))
        if unknown:
            raise UserError(f"{where}: unknown reading settings {', '.join(unknown)}")
        defaults = cls()
        values = {}
        for name, value in obj.items():
            default = getattr(defaults, name)
            if isinstance(default, Mapping):
                if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
                    raise UserError(f"{where}: reading setting {name} must map primitive types to numbers")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{where}: reading setting {name} must be a number, not {value!r}")
            values[name] = value
        return cls(**values)


DEFAULT_SETTINGS = ReadingSettings()
