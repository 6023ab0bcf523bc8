"""Decoding with vLLM's library mode (`vllm.LLM`): the drawing as `prompt_embeds`, the grammar kept.

`VllmDecoder` takes what the JAX engine's `decode.generate` takes (the images' projected features,
the prompts, the sheet limits) and returns the same (tokens, log-probabilities), so `Recognizer`
runs its whole pipeline around it unchanged (`Recognizer(engine=...)`): re-reading sizes, typing
segments and the second look still score with the JAX model.

- The model: a `prefix` model exported with `export_hf.export_hf`, loaded by vLLM from the folder.
- The prompt: projected image features then the prompt's token embeddings (`ImagePrefix`), sent as
  `prompt_embeds` (vLLM has no tokenizer for it: `skip_tokenizer_init`, ids in and out).
- The grammar: a custom logits processor (`vllm_grammar.GrammarLogitsProcessor`), the same masks
  as the JAX engine's; vLLM's structured output needs a text grammar and a tokenizer.
- Greedy and sampling (temperature, top-p) and the repetition penalty map onto `SamplingParams`.
  Beam search does not: vLLM 0.32's beam search (`LLM.beam_search`) raises NotImplementedError for
  prompt embeddings and builds its own sampling parameters, so no request can carry the grammar's
  limits to the logits processor; `--beam` with this engine is refused.
- Confidences: vLLM returns every token's log-probability at each step, after the grammar's mask
  (`VllmDecoder.logprobs`, `logprobs_mode="processed_logprobs"`), and a value's neighbourhood is summed over
  them as the JAX engine sums it (`grammar_cursor.neighbourhood_logprob`).

vLLM is imported only here and in `vllm_grammar`, when this engine is asked for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from cad2program.contract import tokenizer
from cad2program.errors import UserError
from cad2program.integrations.grammar_cursor import GrammarCursor, neighbourhood_logprob

# On a small CPU machine: every core for vLLM's OpenMP threads (it reserves one by default), a small
# key/value cache (GiB; the default, 4, is far more than 32 drawings of a few hundred tokens need),
# the engine in this process (no worker process to spawn, which also needs no `__main__` guard), and
# errors only in its log (without a tokenizer it logs a chat-template traceback as a warning at start).
# OpenMP threads neither pinned to cores nor spinning while they wait: on a 2-core machine shared with
# other jobs, vLLM's default (pinned, spinning) took 10.8 s a drawing at batch 1 and 323 ms at batch 32;
# unpinned and passive, 0.52 s and 17 ms (docs/vllm.md). Each is kept when already set; OpenMP reads
# its part when torch is first imported, which `VllmDecoder` does after setting them.
CPU_ENVIRONMENT = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
                   "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "ERROR",
                   "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_WAIT_POLICY": "PASSIVE"}

# A request asks `vllm_grammar.GrammarLogitsProcessor` (loaded by vLLM by this name) for the grammar
# with its sheet's value limits under this key of its extra arguments.
LIMITS_KEY = "cad2program_limits"
GRAMMAR_PROCESSOR = "cad2program.integrations.vllm_grammar:GrammarLogitsProcessor"

MIN_HEAD_DIM = 32  # vLLM 0.32's CPU attention refused head_dim 16 (the `tiny` config); 32 and up worked


def configure_environment(threads: str | None = None) -> None:
    """Sets `CPU_ENVIRONMENT` (what is not set already) and, given, the cores to pin threads to.
    Takes full effect only before torch and vLLM are first imported in the process."""
    for key, value in CPU_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if threads:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = threads


def context_length(info: dict) -> int:
    """Positions vLLM must hold for an exported folder's model (`read_info`): image tokens + max_len."""
    return info["num_image_tokens"] + info["config"]["model"]["max_len"]


def check_head_dim(folder: Path, info: dict) -> None:
    model = info["config"]["model"]
    head_dim = model["dec_width"] // model["dec_heads"]
    if head_dim < MIN_HEAD_DIM:
        raise UserError(f"{folder}: the decoder's heads are {head_dim} wide; vLLM's CPU attention "
                        f"needs at least {MIN_HEAD_DIM} (fewer heads of the same width would do)")


def refuse_beam(options) -> None:
    if options.method == "beam":
        raise UserError("beam search is not offered with the vllm engine (vLLM 0.32's beam search refuses "
                        "prompt embeddings and takes no custom logits processor): use the jax engine for --beam")


def _need_vllm():
    try:
        import vllm  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        raise UserError(f"the vllm engine needs vLLM and torch ({err}); see docs/vllm.md for the install") from None


class VllmDecoder:
    """vLLM's engine over an exported folder (`export_hf`); `close()` shuts it down."""

    def __init__(self, folder: Path | str, max_batch: int = 32, seed: int = 0, threads: str | None = None,
                 compiled: bool = True, logprobs: int | None = -1):
        """`threads`: the cores to pin vLLM's OpenMP threads to ('0-1'; default: none). `compiled`:
        torch.compile the model (faster decoding, a minute more to start) or run it eagerly.
        `logprobs`: the log-probabilities vLLM returns at each step: -1 every token's (a value's
        confidence counts its neighbours, as the JAX engine's does), N the N likeliest (cheaper;
        confidences from below), None none (confidences 1)."""
        self.logprobs = logprobs
        configure_environment(threads)
        _need_vllm()
        from vllm import LLM

        from cad2program.integrations.hf_export import ImagePrefix, read_info

        self.folder = Path(folder)
        self.info = read_info(self.folder)
        check_head_dim(self.folder, self.info)
        self.prefix = ImagePrefix(self.folder)
        self.max_new_tokens = int(self.info["max_new_tokens"])
        self.llm = LLM(model=str(self.folder), skip_tokenizer_init=True, enable_prompt_embeds=True,
                       dtype="float32", max_model_len=context_length(self.info),
                       max_num_seqs=max_batch, logits_processors=[GRAMMAR_PROCESSOR],
                       logprobs_mode="processed_logprobs", max_logprobs=-1, seed=seed, generation_config="vllm",
                       enforce_eager=not compiled)

    @classmethod
    def from_model(cls, model_path: Path | str | None, **kw) -> "VllmDecoder":
        """Exports a prefix model file to a temporary folder and starts vLLM on it."""
        from cad2program.integrations.hf_export import export_hf

        folder = tempfile.TemporaryDirectory(prefix="cad2program-hf-")
        try:
            export_hf(model_path, folder.name)
            decoder = cls(folder.name, **kw)
        except BaseException:
            folder.cleanup()
            raise
        decoder._exported = folder  # removed by close()
        return decoder

    def sampling_params(self, limits: Sequence[int] | None, options, max_new_tokens: int):
        from vllm import SamplingParams

        refuse_beam(options)
        sample = options.method == "sample"
        extra = {LIMITS_KEY: [int(limits[0]), int(limits[1])]} if options.constrained and limits is not None else {}
        return SamplingParams(temperature=options.temperature if sample else 0.0,
                              top_p=options.top_p if sample else 1.0,
                              repetition_penalty=options.repetition_penalty, max_tokens=max_new_tokens,
                              stop_token_ids=[tokenizer.EOS], logprobs=self.logprobs, flat_logprobs=True,
                              detokenize=False,
                              extra_args=extra)

    def generate(self, memory: np.ndarray, sheets: Sequence, options, limits: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """memory (B, N, D) from the image encoder -> tokens, log-probs (B, max_new_tokens), as
        `decode.generate` returns them (padding after the end token, its log-prob 0)."""
        import torch

        length = min(options.max_new_tokens, self.max_new_tokens)
        embeds = self.prefix.prompt_embeds(memory, sheets)
        limits = [None] * len(sheets) if limits is None else limits
        prompts = [{"prompt_embeds": torch.from_numpy(np.ascontiguousarray(e))} for e in embeds]
        params = [self.sampling_params(lim, options, length) for lim in limits]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        completions = []
        for output in outputs:
            completion = output.outputs[0]
            steps = None if completion.logprobs is None else [
                _step_logprobs(completion.logprobs, step) for step in range(len(completion.token_ids))]
            completions.append((list(completion.token_ids), steps))
        return tokens_and_logprobs(completions, limits, length, options.constrained)

    def close(self) -> None:
        """Shuts vLLM's engine down (a worker process of it, when multiprocessing is on, would otherwise
        keep the interpreter from exiting) and removes a folder `from_model` exported."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
        exported, self._exported = getattr(self, "_exported", None), None
        if exported is not None:
            exported.cleanup()


def tokens_and_logprobs(completions: Sequence[tuple[list[int], list | None]], limits: Sequence, length: int,
                        constrained: bool) -> tuple[np.ndarray, np.ndarray]:
    """What `decode.generate` returns, from each drawing's (token ids, per step the (ids, log-probs)
    vLLM scored, or None): (B, length) tokens padded after the end token, and each token's
    log-probability summed over its value's neighbourhood as the JAX engine sums it."""
    tokens = np.full((len(completions), length), tokenizer.PAD, np.int32)
    logprobs = np.zeros((len(completions), length), np.float32)
    for row, ((token_ids, steps), lim) in enumerate(zip(completions, limits)):
        cursor = GrammarCursor(lim)
        for step, token in enumerate(token_ids[:length]):
            tokens[row, step] = token
            if steps is not None:
                window = cursor.window if constrained else 0
                logprobs[row, step] = neighbourhood_logprob(token, window, *steps[step])
            if token == tokenizer.EOS:
                break
            if constrained:
                cursor.advance(token)
    return tokens, logprobs


def _step_logprobs(logprobs, step: int) -> tuple[list[int], list[float]]:
    """(token ids, log-probabilities) vLLM returned for one step, flat (`flat_logprobs`) or as dicts."""
    if hasattr(logprobs, "start_indices"):
        a, b = logprobs.start_indices[step], logprobs.end_indices[step]
        return logprobs.token_ids[a:b], logprobs.logprobs[a:b]
    row = logprobs[step] or {}
    return list(row), [lp.logprob for lp in row.values()]
