"""Scores the battery with other values of the recognizer's two ink rules, to decide them on dev halves.

    python3 scripts/ink_rules_trial.py LINE RECTANGLE POLYLINE ARROWHEAD_SIDES [eval_battery.py arguments]
    python3 scripts/ink_rules_trial.py 0.8 0.95 0.95 3.75 --no-own --report trial.json

The four numbers replace `ReadingSettings.min_ink_share` (per type) and `.arrowhead_sides` for
this run only; the rest is `scripts/eval_battery.py` (dev halves unless --half test). The values that
`scripts/derive_thresholds.py` suggests are checked this way before they replace the shipped ones.
"""

import dataclasses
import runpy
import sys
from pathlib import Path

import cad2program.reading.recognizer as recognizer_module

if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    try:
        line, rectangle, polyline, sides = map(float, sys.argv[1:5])
    except ValueError as err:
        sys.exit(f"ink_rules_trial.py: the first four arguments must be numbers ({err})\n\n{__doc__}")
    # The settings a model file without its own reads with (the packaged one), for this process only.
    recognizer_module.DEFAULT_SETTINGS = dataclasses.replace(
        recognizer_module.DEFAULT_SETTINGS, min_ink_share={"line": line, "rectangle": rectangle, "polyline": polyline},
        arrowhead_sides=sides)
    script = Path(__file__).with_name("eval_battery.py")
    sys.argv = [str(script)] + sys.argv[5:]
    runpy.run_path(str(script), run_name="__main__")
