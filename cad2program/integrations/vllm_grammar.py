"""The program grammar as a vLLM logits processor (imported by vLLM's engine, in its own process).

vLLM's structured output (xgrammar, guidance) needs a tokenizer and a text grammar; this model's
language is a token automaton with per-sheet bounds (`tokenizer.grammar_table`, `value_limits`),
so a custom logits processor applies it: each request's `GrammarCursor` follows the tokens the
request wrote and masks what it may not write next, exactly as the JAX engine does. A request asks
for it with `SamplingParams.extra_args[LIMITS_KEY] = tokenizer.value_limits(sheet)`; requests
without that key are left alone. Needs torch and vLLM (the `vllm` extra).
"""

from __future__ import annotations

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from cad2program.integrations.grammar_cursor import GrammarCursor
from cad2program.integrations.vllm_engine import LIMITS_KEY


class _MaskRequest:
    """One request's mask: called with its output so far and its row of logits."""

    def __init__(self, limits):
        self.cursor = GrammarCursor(limits)

    def __call__(self, output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        self.cursor.catch_up(output_ids)
        allowed = torch.from_numpy(self.cursor.allowed()).to(logits.device)
        return logits.masked_fill(~allowed, float("-inf"))


class GrammarLogitsProcessor(AdapterLogitsProcessor):
    """Masks, for each request that carries sheet limits, the tokens its grammar state refuses."""

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams):
        limits = (sampling_params.extra_args or {}).get(LIMITS_KEY)
        if limits is not None and (len(limits) != 2 or not all(isinstance(v, int) for v in limits)):
            raise ValueError(f"{LIMITS_KEY} must be two token ids (tokenizer.value_limits), got {limits!r}")

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token is likeliest

    def new_req_logits_processor(self, params: SamplingParams):
        limits = (params.extra_args or {}).get(LIMITS_KEY)
        return None if limits is None else _MaskRequest(limits)
