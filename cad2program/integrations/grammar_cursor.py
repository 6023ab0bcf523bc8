"""The program grammar one token at a time, in numpy: for engines outside JAX (transformers, vLLM).

`decode.py` masks a whole batch inside its compiled loop; an engine that asks for a mask per
sequence and per step gets the same one from a `GrammarCursor`: the automaton's allowed tokens
(`decode.constrain`) less the value tokens above the sheet's limit on the state's axis
(`decode.bound_values`). Reads the tables from `tokenizer` directly, so an engine's worker process
that imports it loads neither JAX nor the model.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from cad2program.contract import tokenizer

VALUE_FIRST, VALUE_LAST = tokenizer.VALUE0, tokenizer.VALUE0 + tokenizer.MAX_VALUE
_IDS = np.arange(tokenizer.VOCAB_SIZE)
_VALUES = (_IDS >= VALUE_FIRST) & (_IDS <= VALUE_LAST)


class GrammarCursor:
    """One sequence's place in the grammar; `allowed()` -> the tokens it may write next (V,) bool.

    `limits`: `tokenizer.value_limits(sheet)`, the largest value token on x and on y (None: unbounded).
    """

    def __init__(self, limits: Sequence[int] | None = None):
        self.state = tokenizer.GRAMMAR_START
        self.limits = None if limits is None else (int(limits[0]), int(limits[1]))
        self.written = 0  # tokens advanced over (engines hand over the whole output so far)

    def allowed(self) -> np.ndarray:
        ok = tokenizer.GRAMMAR_TABLE[self.state] >= 0
        axis = int(tokenizer.GRAMMAR_AXES[self.state])
        if self.limits is not None and axis in (0, 1):
            ok = ok & ~(_VALUES & (_IDS > self.limits[axis]))
        return ok

    @property
    def window(self) -> int:
        """Value tokens on each side that count as near enough to the one chosen in this state."""
        return int(tokenizer.GRAMMAR_WINDOWS[self.state])

    def advance(self, token: int) -> None:
        """After `token` was written; a token the grammar refuses raises ValueError."""
        nxt = int(tokenizer.GRAMMAR_TABLE[self.state, int(token)])
        if nxt < 0:
            raise ValueError(f"token {token} is not allowed in grammar state {self.state}")
        self.state = nxt
        self.written += 1

    def catch_up(self, tokens: Sequence[int]) -> None:
        """Advances over the tokens of `tokens` (the whole output so far) not seen yet."""
        for token in tokens[self.written:]:
            self.advance(token)


def neighbourhood_logprob(token: int, window: int, ids: np.ndarray, logprobs: np.ndarray) -> float:
    """`decode.neighbourhood_logprob` from the log-probabilities an engine returned for one step.

    `ids`, `logprobs`: the token ids the engine scored at this step (the chosen one among them) and
    their log-probabilities. A value token's figure is the log of the summed probability of the value
    tokens within `window` of it: with every token scored, the JAX engine's figure; with only the
    likeliest ones, that figure from below (short by the neighbours left out, each less likely than
    every token scored).
    """
    # vLLM lists the chosen token first and again among the others: count each token once.
    ids, first = np.unique(np.asarray(ids), return_index=True)
    logprobs = np.asarray(logprobs, np.float64)[first]
    exact = float(logprobs[np.flatnonzero(ids == token)[0]])
    if window <= 0 or not VALUE_FIRST <= token <= VALUE_LAST:
        return exact
    near = (ids >= max(token - window, VALUE_FIRST)) & (ids <= min(token + window, VALUE_LAST))
    mass = float(np.exp(logprobs[near]).sum())
    return max(math.log(mass), exact) if mass > 0 else exact
