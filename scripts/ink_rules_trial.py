"""Scores the battery with other values of the recognizer's two ink rules, to decide them on dev halves.

    python3 scripts/ink_rules_trial.py LINE RECTANGLE POLYLINE ARROWHEAD_SIDES [eval_battery.py arguments]
    python3 scripts/ink_rules_trial.py 0.8 0.95 0.95 3.75 --no-own --report trial.json

The four numbers replace `recognizer.MIN_INK_SHARE` (per type) and `recognizer.ARROWHEAD_SIDES` for
this run only; the rest is `scripts/eval_battery.py` (dev halves unless --half test). The values that
`scripts/derive_thresholds.py` suggests are checked this way before they replace the shipped ones.
"""

import runpy
import sys
from pathlib import Path

from cad2program import recognizer
from cad2program.program import Line, Polyline, Rectangle

if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    try:
        line, rectangle, polyline, sides = map(float, sys.argv[1:5])
    except ValueError as err:
        sys.exit(f"ink_rules_trial.py: the first four arguments must be numbers ({err})\n\n{__doc__}")
    recognizer.MIN_INK_SHARE.clear()
    recognizer.MIN_INK_SHARE.update({Line: line, Rectangle: rectangle, Polyline: polyline})
    recognizer.ARROWHEAD_SIDES = sides
    script = Path(__file__).with_name("eval_battery.py")
    sys.argv = [str(script)] + sys.argv[5:]
    runpy.run_path(str(script), run_name="__main__")
