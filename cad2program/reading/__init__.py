"""Reading a drawing: the model, then measuring on the ink and the numbers written on it.

- `recognizer`: `Recognizer`, a loaded model and the model's side of reading (decoding, re-reading);
- `pipeline`: the stages that follow the model, over one context per drawing, and their runners;
- `recognition`: a drawing's result and its confidences; `settings`: the tuned thresholds;
- `ink_rules`, `sizes`, `second_look`: what the stages do with the ink, the sizes and a second reading.
"""

from cad2program.reading.pipeline import STAGES, Drawing, Look, Stage, run_stages, run_stages_async, stages_for
from cad2program.reading.recognition import Recognition, fit_confidence_power, infer_sheet
from cad2program.reading.recognizer import BATCH_BUCKETS, Recognizer
from cad2program.reading.settings import DEFAULT_SETTINGS, ReadingSettings

__all__ = ["BATCH_BUCKETS", "DEFAULT_SETTINGS", "Drawing", "Look", "ReadingSettings", "Recognition", "Recognizer",
           "STAGES", "Stage", "fit_confidence_power", "infer_sheet", "run_stages", "run_stages_async", "stages_for"]
