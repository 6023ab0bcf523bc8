"""The program grammar one token at a time, in numpy: for engines outside JAX (transformers, vLLM).

`decode.py` masks a whole batch inside its compiled loop; an engine that asks for a mask per
sequence and per step gets the same one from a `GrammarCursor`: the automaton's allowed tokens
(`decode.constrain`) less the value tokens above the sheet's limit on the state's axis
(`decode.bound_values`). Knows nothing about the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cad2program.decode import Grammar, default_grammar


class GrammarCursor:
    """One sequence's place in the grammar; `allowed()` -> the tokens it may write next (V,) bool."""

    def __init__(self, limits: Sequence[int] | None = None, grammar: Grammar | None = None):
        self.grammar = grammar or default_grammar()
        self.state = self.grammar.start_state
        self.limits = None if limits is None else (int(limits[0]), int(limits[1]))
        vocab = self.grammar.table.shape[1]
        ids = np.arange(vocab)
        self._values = (ids >= self.grammar.value_first) & (ids <= self.grammar.value_last)
        self._ids = ids
        self.written = 0  # tokens advanced over (engines hand over the whole output so far)

    def allowed(self) -> np.ndarray:
        ok = self.grammar.table[self.state] >= 0
        if self.limits is not None and self.grammar.axes is not None:
            axis = int(self.grammar.axes[self.state])
            if axis in (0, 1):
                ok = ok & ~(self._values & (self._ids > self.limits[axis]))
        return ok

    def advance(self, token: int) -> None:
        """After `token` was written; a token the grammar refuses raises ValueError."""
        nxt = int(self.grammar.table[self.state, int(token)])
        if nxt < 0:
            raise ValueError(f"token {token} is not allowed in grammar state {self.state}")
        self.state = nxt
        self.written += 1

    def catch_up(self, tokens: Sequence[int]) -> None:
        """Advances over the tokens of `tokens` (the whole output so far) not seen yet."""
        for token in tokens[self.written:]:
            self.advance(token)
