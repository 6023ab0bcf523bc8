"""From images to programs with a trained model: the model's side of reading a drawing.

`Recognizer` holds a loaded model, its decoding options, its reading settings and the switches of
the pipeline; `recognize` runs the pipeline (`pipeline.STAGES`) over any number of images. Its other
methods are the model's work that stages call: decoding a batch (`recognize_prepared`) and passes
over tokens already written (`reread_sizes`, `with_segment_types`, `scored_candidates`).
`predict`, `eval`, the server and the ClearML-Serving module all read through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cad2program.contract import tokenizer
from cad2program.reading.ocr import TEXT_FINDERS, written_numbers
from cad2program.model.configs import TrainConfig
from cad2program.model.decode import (DecodeOptions, continuation_logprobs, default_grammar, embed_images, generate,
                                      warm_up_continuations)
from cad2program.errors import UserError
from cad2program.model.network import DrawingReader
from cad2program.model.modelfile import DEFAULT_MODEL, load_model
from cad2program.contract.program import Line, Primitive, Sheet
from cad2program.contract.program_text import reading_order
from cad2program.reading.ink_rules import segment_of, segment_variants
from cad2program.reading.pipeline import Drawing, Stage, run_stages, stages_for
from cad2program.reading.recognition import Recognition, programs_from_tokens
from cad2program.reading.settings import DEFAULT_SETTINGS, ReadingSettings
from cad2program.reading.sizes import SIZE_TOKENS, size_jobs, with_size

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # batches are padded up to one of these: few compilations
# A second look's candidates are scored at the narrowest of these widths that fits the longest of them:
# the pass costs about as much per token slot as per token, and most candidates (a line, a circle, a
# rectangle) are under 16 tokens, a polyline of up to 30 points 64. (Each width is compiled for every
# sequence and row bucket: two widths keep a server's warm-up short.)
CANDIDATE_WIDTHS = (16, 64)
CANDIDATE_TOKENS = CANDIDATE_WIDTHS[-1]
SEGMENT_TOKENS = 8  # a two-point polyline (7 tokens with the one after it) fits: a narrow width costs little


class Recognizer:
    """A loaded model plus decoding options; `recognize` takes any number of images."""

    def __init__(self, config: TrainConfig, model: DrawingReader | tuple, options: DecodeOptions | None = None,
                 max_batch: int = 32, info: dict | None = None, refine: bool = True, read_text: bool = True,
                 second_look: bool = True, text_finder: str = "ink", engine=None,
                 settings: ReadingSettings | None = None):
        """`model`: a DrawingReader, or its `nnx.split` pair (as training holds it).

        `engine`: None decodes with JAX (`decode.generate`); else an object whose
        `generate(memory, sheets, options, limits)` returns what `decode.generate` does, as
        `vllm_engine.VllmDecoder` (the encoder and every re-reading still run on `model`).

        `refine`: `recognize` re-measures the primitives on the full-resolution image (`cad2program/refine/`);
        `read_text`: and weighs the numbers an OCR engine reads on it when reading sizes again
        (`ocr.py`), its text found by `text_finder` (one of `ocr.TEXT_FINDERS`);
        `second_look`: and reads what the found primitives leave unexplained again (`second_look.py`).
        `settings`: the pipeline's thresholds (default: those stored in the model file, `info["reading"]`,
        else `reading.settings.DEFAULT_SETTINGS`).
        """
        if text_finder not in TEXT_FINDERS:
            raise UserError(f"unknown text finder {text_finder!r}: one of {', '.join(TEXT_FINDERS)}")
        self.config, self.options, self.max_batch = config, options or DecodeOptions(), max_batch
        self.refine, self.read_text, self.second_look = refine, read_text, second_look
        self.text_finder = text_finder
        self.options = dataclasses.replace(self.options, max_new_tokens=min(
            self.options.max_new_tokens, config.model.max_len - tokenizer.PROMPT_LENGTH))
        self.split = model if isinstance(model, tuple) else nnx.split(model)
        self.grammar = default_grammar()
        self.info = info or {}
        self.engine = engine
        if settings is None:
            stored = self.info.get("reading")
            settings = DEFAULT_SETTINGS if stored is None else ReadingSettings.from_json(stored)
        self.settings = settings

    def close(self) -> None:
        """Ends the decoding engine's worker, when it has one (vLLM)."""
        if self.engine is not None:
            self.engine.close()

    @classmethod
    def load(cls, path: Path | str | None = None, options: DecodeOptions | None = None, **kw) -> "Recognizer":
        if path is None:
            if not DEFAULT_MODEL.exists():
                raise UserError(f"the default model is missing from the package ({DEFAULT_MODEL}); "
                                f"reinstall, or pass --model")
            path = DEFAULT_MODEL
        config, model, extra = load_model(Path(path))
        return cls(config, model, options, info=extra, **kw)

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    def written_on(self, image: np.ndarray, ink: np.ndarray | None = None):
        """The numbers written on an image as this recognizer reads them (`annotations.written_numbers`
        with its text finder; `ink`: the image's `ink_mask` at its own size, when the caller has it);
        None when it reads no text, or no OCR engine is installed."""
        return written_numbers(image, self.text_finder, ink) if self.read_text else None

    @property
    def stages(self) -> list[Stage]:
        """The pipeline's stages this recognizer runs (`pipeline.stages_for` its switches)."""
        return stages_for(self)

    def recognize(self, images: Sequence[np.ndarray], sheets: Sequence[Sheet | None] | None = None,
                  rng=None, written: Sequence | None = None, stages: Sequence[Stage] | None = None
                  ) -> list[Recognition]:
        """Reads drawings: each image (its sheet given, or None to infer it) through the pipeline,
        `max_batch` at a time. `written`: the numbers already read on each image
        (`annotations.written_numbers`), when the caller has them; read here otherwise. `stages`:
        those to run (default: `self.stages`)."""
        return [d.result for d in self.read(images, sheets, rng, written, stages)]

    def read(self, images: Sequence[np.ndarray], sheets: Sequence[Sheet | None] | None = None,
             rng=None, written: Sequence | None = None, stages: Sequence[Stage] | None = None) -> list[Drawing]:
        """`recognize`, returning each drawing's whole context (`pipeline.Drawing`)."""
        sheets = list(sheets) if sheets is not None else [None] * len(images)
        stages = self.stages if stages is None else stages
        out: list[Drawing] = []
        for start in range(0, len(images), self.max_batch):
            batch = range(start, min(start + self.max_batch, len(images)))
            drawings = [Drawing.of(images[k], sheets[k], self.image_size) for k in batch]
            if written is not None:
                for k, drawing in zip(batch, drawings):
                    drawing.written, drawing.numbers_read = written[k], True
            run_stages(self, drawings, stages, rng)
            out += drawings
        return out

    def scored_candidates(self, first: Recognition, new: Sequence[tuple[Primitive, float]]
                          ) -> list[tuple[Primitive, float, float]]:
        """(primitive, confidence) pairs -> (primitive, confidence, `_slot_logprobs` in the first reading):
        the log-probability of each candidate's tokens where the program's reading order puts it."""
        if not new or first.tokens is None or first.memory is None:
            return []
        scores = self._slot_logprobs(first, [p for p, _ in new])
        return [(p, c, float(score)) for (p, c), score in zip(new, scores)]

    def with_segment_types(self, recognition: Recognition) -> Recognition:
        """The recognition with each straight segment the model wrote (a line, or a two-point open
        polyline: the two are drawn alike) typed as whichever of the two the model finds likelier in
        its place, for the segment as measured.

        The model chooses a type before any coordinate: a short stroke begun as a polyline ends as a
        two-point one once traced, and a segment begun as a line stays one. Scored again with both ends
        known (each type in both point orders, followed by the token the model wrote next, which is
        where a polyline ends), the type follows the whole reading. On 600 held-out generated
        drawings (the README's `/tmp/heldout`, `/tmp/heldout2`, `/tmp/heldout3`) this matched 4 more
        of their 3,958 primitives."""
        segments = [(k, segment_of(p) or p) for k, p in enumerate(recognition.primitives)
                    if isinstance(p, Line) or segment_of(p) is not None]
        if not segments or recognition.tokens is None or recognition.memory is None or \
                len(recognition.spans) != len(recognition.primitives):
            return recognition
        starts, continuations = [], []
        for k, segment in segments:
            start, end = recognition.spans[k]
            after = [int(recognition.tokens[end])] if end < len(recognition.tokens) else []
            for variant in segment_variants(segment):
                starts.append(start)
                continuations.append(tokenizer.encode_primitive(variant, recognition.sheet) + after)
        scores = self.scored_continuations(recognition, starts, continuations, SEGMENT_TOKENS)
        scores = scores.reshape(len(segments), 2, 2)  # (segment, line or polyline, point order)
        as_line, as_polyline = np.logaddexp(scores[..., 0], scores[..., 1]).T  # (segments,) each
        primitives = list(recognition.primitives)
        for (k, segment), line, polyline in zip(segments, as_line, as_polyline):
            primitives[k] = segment if line >= polyline else segment_variants(segment)[2]
        return dataclasses.replace(recognition, primitives=primitives)

    def scored_continuations(self, recognition: Recognition, starts: Sequence[int],
                               continuations: Sequence[list[int]], width: int) -> np.ndarray:
        """log p(continuation k | the image, the model's tokens before `starts[k]`) for each k, from one
        pass over the recognition's tokens; `starts` count from the first token after the prompt."""
        prompt = tokenizer.encode_prompt(recognition.sheet)
        sequence = prompt + [int(t) for t in recognition.tokens]
        return continuation_logprobs(self.split, jnp.asarray(recognition.memory)[None], sequence,
                                     [len(prompt) + start for start in starts], list(continuations),
                                     tokenizer.PAD, self.config.model.max_len, width=width)

    def _slot_logprobs(self, recognition: Recognition, candidates: Sequence[Primitive]) -> np.ndarray:
        """log p(candidate's tokens | the image, what the model wrote before the candidate's place in
        reading order) for each candidate, from one pass over the recognition's tokens; -inf for a
        candidate longer than CANDIDATE_TOKENS (a polyline of over 30 points)."""
        written = sorted(zip(recognition.spans, recognition.primitives), key=lambda pair: pair[0])
        end = len(recognition.tokens)  # where the model wrote its end token
        starts, continuations, fits = [], [], []
        for candidate in candidates:
            key = reading_order(candidate)
            slot = next((a for (a, _), p in written if reading_order(p) > key), end)
            tokens = tokenizer.encode_primitive(candidate, recognition.sheet)
            fits.append(len(tokens) <= CANDIDATE_TOKENS)
            starts.append(slot)
            continuations.append(tokens[:CANDIDATE_TOKENS])
        width = next(w for w in CANDIDATE_WIDTHS if w >= max(map(len, continuations)))
        return np.where(fits, self.scored_continuations(recognition, starts, continuations, width), -np.inf)

    def warm_up_rereading(self) -> int:
        """Compiles what `reread_sizes`, `with_segment_types` and the second look's scoring run, for
        every shape they can take; -> the number of shapes."""
        blank = np.zeros((1, self.image_size, self.image_size, 1), np.float32)
        memory = embed_images(self.split, blank)
        widths = (SIZE_TOKENS, SEGMENT_TOKENS) + (CANDIDATE_WIDTHS if self.second_look else ())
        return sum(warm_up_continuations(self.split, memory, tokenizer.PAD, self.config.model.max_len, width=width)
                   for width in widths)

    def reread_sizes(self, prepared: np.ndarray, recognitions: list[Recognition],
                     measured: list[list[dict]]) -> list[Recognition]:
        """Each measured size read again, with the ink's evidence beside the model's.

        The model reads digits at its input size (glyphs a few pixels tall), the ink's measurement
        (`measure_primitives`) is precise to about a pixel of the full image but knows nothing of the
        0.1 mm the drafter wrote. For every value on the 0.1 mm grid within 3 `settings.ink_sigma_px` of the
        ink's size, the model scores the value's digits after what it wrote before them
        (`decode.continuation_logprobs`), the ink scores how far the value lies from its measurement
        (Gaussian, `settings.ink_sigma_px`), and the most likely value under both wins: the geometry says
        roughly how big, the glyphs say which value exactly. Drawings whose readings and ink disagree
        on the scale are left alone (`sizes.size_jobs`).
        """
        jobs = [(d, k, job) for d, (r, sizes) in enumerate(zip(recognitions, measured))
                for k, job in enumerate(size_jobs(r, sizes, self.settings)) if job]
        if not jobs:
            return recognitions
        missing = sorted({d for d, _, _ in jobs if recognitions[d].memory is None})
        embedded = dict(zip(missing, embed_images(self.split, prepared[missing]))) if missing else {}
        best: dict[tuple[int, int, str], float] = {}
        for d in sorted({d for d, _, _ in jobs}):  # one call per drawing: all its sizes' candidates
            r = recognitions[d]
            sequence = tokenizer.encode_prompt(r.sheet) + [int(t) for t in r.tokens]
            rows = [(k, field, len(sequence) - len(r.tokens) + start, candidate)
                    for dd, k, fields in jobs if dd == d for field, start, candidates in fields
                    for candidate in candidates]
            memory = r.memory if r.memory is not None else embedded[d]
            scores = continuation_logprobs(self.split, jnp.asarray(memory)[None], sequence,
                                           [start for _, _, start, _ in rows],
                                           [digits for *_, (_, digits, _) in rows], tokenizer.PAD,
                                           self.config.model.max_len, width=SIZE_TOKENS)
            top: dict[tuple[int, str], float] = {}
            for (k, field, _, (value, _, prior)), score in zip(rows, scores):
                posterior = self.settings.reading_weight * score + prior
                if posterior > top.get((k, field), -np.inf):  # the most likely under both
                    top[k, field], best[d, k, field] = posterior, value
        out = [dataclasses.replace(r, primitives=list(r.primitives)) for r in recognitions]
        for (d, k, field), value in best.items():
            out[d].primitives[k] = with_size(out[d].primitives[k], field, value, out[d].sheet)
        return out

    def recognize_prepared(self, batch_images: np.ndarray, sheets: Sequence[Sheet], rng=None) -> list[Recognition]:
        """Images already through `prepare_image` (B, S, S, 1); pads the batch to a bucket size."""
        n = len(batch_images)
        size = next((b for b in BATCH_BUCKETS if b >= n), n)
        prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int32)
        limits = np.array([tokenizer.value_limits(s) for s in sheets], np.int32)
        if size > n:
            batch_images = np.concatenate([batch_images, np.zeros((size - n,) + batch_images.shape[1:],
                                                                  batch_images.dtype)])
            prompts = np.concatenate([prompts, np.repeat(prompts[:1], size - n, axis=0)])
            limits = np.concatenate([limits, np.repeat(limits[:1], size - n, axis=0)])
        memory = embed_images(self.split, batch_images)
        if self.engine is not None:
            tokens, logprobs = self.engine.generate(np.asarray(memory[:n]), sheets, self.options, limits[:n])
        else:
            tokens, logprobs = generate(self.split, None, prompts, self.grammar, self.options, rng, limits,
                                        memory=memory)
        found = programs_from_tokens(tokens[:n], logprobs[:n], sheets, self.info.get("confidence_power", 1.0))
        return [dataclasses.replace(r, memory=m) for r, m in zip(found, memory[:n])]
