"""Training: the input pipeline, the train/eval steps and loop, and speed measurements."""
