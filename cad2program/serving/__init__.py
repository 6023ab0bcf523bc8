"""Serving recognitions over HTTP: the shared request/response contract (`contract`) and the
ClearML-Serving preprocess module (`clearml_preprocess`)."""
