"""Generating programs: greedy, sampling and beam search, each one compiled `lax.while_loop`.

Every method works on a whole batch at once with the model's key/value cache, stops each sequence at
its end token (the loop ends when all have), and masks the logits with the program grammar's automaton
(`tokenizer.grammar_table`), so that every output parses. The engine knows nothing about what tokens
mean: it is given the grammar as a table and the end/pad token ids.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

NEG_INF = -1e30


class JitModel:
    """A model's graphdef and the tree structure of its parameters: the one static argument of the jitted
    functions here, which take the parameters as a flat list of arrays (`for_jit`).

    jit hashes its static arguments and flattens the others at every call: a `cpu`-model graphdef takes
    about 0.6 ms to hash and its `nnx.State` longer to flatten, about 2 ms of overhead on each of the ~30
    calls that reading one drawing makes. Hashed once here, flattened once per parameters in `for_jit`."""

    __slots__ = ("graphdef", "treedef", "_hash")

    def __init__(self, graphdef, treedef):
        self.graphdef, self.treedef, self._hash = graphdef, treedef, hash((graphdef, treedef))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, JitModel) and self._hash == other._hash
                                 and self.graphdef == other.graphdef and self.treedef == other.treedef)

    def merge(self, leaves) -> nnx.Module:
        return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, leaves))


_RECENT_MODELS: dict[int, tuple] = {}  # id(params) -> (graphdef, params, JitModel, leaves), the last few
_RECENT_LIMIT = 4
_RECENT_LOCK = threading.Lock()  # a server's threads may pass models at once


def for_jit(model_or_split) -> tuple[JitModel, list]:
    """A DrawingReader or its `nnx.split` pair -> (JitModel, the parameters' leaves). The pair of the last
    few parameter States passed is kept, so passing the same split again costs a dictionary lookup (a
    State is taken as unchanged while it is the same object: jax arrays cannot change in place)."""
    graphdef, params = model_or_split if isinstance(model_or_split, tuple) else nnx.split(model_or_split)
    with _RECENT_LOCK:
        recent = _RECENT_MODELS.get(id(params))
        if recent is None or recent[0] is not graphdef or recent[1] is not params:
            leaves, treedef = jax.tree.flatten(params)
            recent = (graphdef, params, JitModel(graphdef, treedef), leaves)
            while len(_RECENT_MODELS) >= _RECENT_LIMIT:
                _RECENT_MODELS.pop(next(iter(_RECENT_MODELS)))
            _RECENT_MODELS[id(params)] = recent
    return recent[2], recent[3]


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    method: str = "greedy"  # "greedy", "sample" or "beam"
    max_new_tokens: int = 200
    beam_width: int = 4
    temperature: float = 1.0  # sampling only
    top_p: float = 1.0  # sampling only: nucleus size
    repetition_penalty: float = 1.0  # > 1 discourages tokens already written (CTRL-style)
    constrained: bool = True  # mask tokens that would leave the grammar

    def __post_init__(self):
        if self.method not in ("greedy", "sample", "beam"):
            raise ValueError(f"method must be greedy, sample or beam, got {self.method!r}")
        if self.beam_width < 1 or self.max_new_tokens < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid decoding options: {self}")


@dataclasses.dataclass(frozen=True)
class Grammar:
    """The decoding engine's view of the language: a transition table and three token ids."""

    table: np.ndarray  # (states, vocab) int32: next state, -1 where the token is not allowed
    start_state: int
    eos: int
    pad: int
    # Optional bounds: axes[state] says which limit (0 or 1; -1 none) applies to the value tokens
    # (ids value_first..value_last, contiguous, in increasing value) allowed in that state.
    axes: np.ndarray | None = None
    value_first: int = 0
    value_last: int = -1
    # Optional: windows[state] = how many neighbouring value tokens on each side count as "near enough"
    # to the value token chosen in that state (0: the token alone). The log-probabilities `generate`
    # returns for value tokens are then those of their whole neighbourhood: with the matching
    # tolerance as the window, the chance that the value is within tolerance, not that it is exact.
    windows: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# Small helpers, each on plain arrays
# ----------------------------------------------------------------------------------------------


def constrain(logits, states, table):
    """Masks tokens the automaton refuses in each sequence's state. logits (N, V), states (N,)."""
    return jnp.where(table[states] >= 0, logits, NEG_INF)


def bound_values(logits, states, grammar: "Grammar", limits):
    """Masks value tokens above each sequence's limit for the state's axis. limits (N, 2) token ids."""
    if limits is None or grammar.axes is None:
        return logits
    axis = jnp.asarray(grammar.axes)[states]  # (N,)
    limit = jnp.where(axis == 0, limits[:, 0], jnp.where(axis == 1, limits[:, 1], grammar.value_last))
    ids = jnp.arange(logits.shape[-1])[None, :]
    too_big = (ids > limit[:, None]) & (ids >= grammar.value_first) & (ids <= grammar.value_last)
    return jnp.where(too_big, NEG_INF, logits)


def penalize_repeats(logits, seen, penalty: float):
    """Divides positive / multiplies negative logits of tokens already written (seen (N, V) bool)."""
    if penalty == 1.0:
        return logits
    penalized = jnp.where(logits > 0, logits / penalty, logits * penalty)
    return jnp.where(seen, penalized, logits)


def nucleus(logits, top_p: float):
    """Keeps the smallest set of tokens whose probability reaches top_p."""
    if top_p >= 1.0:
        return logits
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    # The threshold is the logit of the last token needed to reach top_p.
    cutoff_index = jnp.sum(cumulative < top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_logits, cutoff_index, axis=-1)
    return jnp.where(logits < cutoff, NEG_INF, logits)


def neighbourhood_logprob(log_probs, tokens, states, grammar: "Grammar"):
    """Log-probability of each chosen token, or of its value neighbourhood (see `Grammar.windows`).

    log_probs (N, V), tokens and states (N,): the state each token was chosen in.
    """
    exact = jnp.take_along_axis(log_probs, tokens[:, None], axis=1)[:, 0]
    if grammar.windows is None:
        return exact
    window = jnp.asarray(grammar.windows)[states]  # (N,)
    values = jnp.exp(log_probs[:, grammar.value_first:grammar.value_last + 1])  # (N, M)
    cumulative = jnp.pad(jnp.cumsum(values, axis=-1), ((0, 0), (1, 0)))  # (N, M + 1), a 0 in front
    offset = tokens - grammar.value_first
    count = values.shape[1]
    low, high = jnp.clip(offset - window, 0, count - 1), jnp.clip(offset + window, 0, count - 1)
    mass = (jnp.take_along_axis(cumulative, high[:, None] + 1, axis=1)
            - jnp.take_along_axis(cumulative, low[:, None], axis=1))[:, 0]
    is_value = (window > 0) & (offset >= 0) & (offset < count)
    # float32 sums of many small terms can dip below the token's own probability: never report less.
    return jnp.where(is_value, jnp.maximum(jnp.log(jnp.maximum(mass, 1e-30)), exact), exact)


def advance(states, tokens, table, done, pad):
    """Next automaton states; finished sequences stay put and write padding."""
    tokens = jnp.where(done, pad, tokens)
    return jnp.where(done, states, table[states, tokens]), tokens


def prefill(model, memory, prompts, max_new_tokens: int):
    """A cache sized for the prompt plus `max_new_tokens`, filled with the prompt; returns (logits, cache)."""
    length = max_new_tokens + prompts.shape[1] + (memory.shape[1] if model.cfg.fusion == "prefix" else 0)
    return model.prefill_cache(memory, prompts, model.init_cache(prompts.shape[0], length))


def next_token_logits(logits, states, seen, options: "DecodeOptions", grammar: "Grammar", limits):
    """The raw logits after the repetition penalty and, when constrained, the grammar and sheet masks."""
    logits = penalize_repeats(logits, seen, options.repetition_penalty)
    if options.constrained:
        logits = bound_values(constrain(logits, states, jnp.asarray(grammar.table)), states, grammar, limits)
    return logits


def _tile(x, k: int):
    """(B, ...) -> (B * K, ...), each row repeated k times consecutively."""
    return jnp.repeat(x, k, axis=0)


def _select_beams(x, parents, batch: int, width: int):
    """Gathers rows of a (B * K, ...) array by parent beam indices (B, K)."""
    x = x.reshape((batch, width) + x.shape[1:])
    idx = parents.reshape(parents.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1).reshape((batch * width,) + x.shape[2:])


# ----------------------------------------------------------------------------------------------
# Greedy and sampling
# ----------------------------------------------------------------------------------------------


def _greedy_or_sample(model, memory, prompts, rng, options: DecodeOptions, grammar: Grammar, limits):
    batch = prompts.shape[0]
    table = jnp.asarray(grammar.table)
    length = options.max_new_tokens
    logits, cache = prefill(model, memory, prompts, length)

    def cond(carry):
        step, _, _, _, _, done, _, _, _ = carry
        return (step < length) & ~jnp.all(done)

    def body(carry):
        step, tokens, logprobs, logits, cache, done, states, seen, rng = carry
        logits = next_token_logits(logits, states, seen, options, grammar, limits)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        if options.method == "sample":
            rng, key = jax.random.split(rng)
            token = jax.random.categorical(key, nucleus(logits / options.temperature, options.top_p))
        else:
            token = jnp.argmax(logits, axis=-1)
        token_logprob = jnp.where(done, 0.0, neighbourhood_logprob(log_probs, token, states, grammar))
        states, token = advance(states, token, table, done, grammar.pad)
        tokens = tokens.at[:, step].set(token)
        logprobs = logprobs.at[:, step].set(token_logprob)
        seen = seen.at[jnp.arange(batch), token].set(True)
        done = done | (token == grammar.eos)
        logits, cache = model.extend_cache(token, cache)
        return step + 1, tokens, logprobs, logits, cache, done, states, seen, rng

    carry = (jnp.zeros((), jnp.int32), jnp.full((batch, length), grammar.pad, jnp.int32),
             jnp.zeros((batch, length), jnp.float32), logits, cache, jnp.zeros(batch, bool),
             jnp.full(batch, grammar.start_state, jnp.int32), jnp.zeros((batch, logits.shape[-1]), bool), rng)
    _, tokens, logprobs, *_ = jax.lax.while_loop(cond, body, carry)
    return tokens, logprobs


# ----------------------------------------------------------------------------------------------
# Beam search
# ----------------------------------------------------------------------------------------------


def _beam_search(model, memory, prompts, options: DecodeOptions, grammar: Grammar, limits):
    batch, width, length = prompts.shape[0], options.beam_width, options.max_new_tokens
    table = jnp.asarray(grammar.table)
    logits, cache = prefill(model, memory, prompts, length)
    # Every beam starts from the same prefilled state; only beam 0 is alive at the first step.
    logits = _tile(logits, width)
    limits = None if limits is None else _tile(limits, width)
    cache = jax.tree_util.tree_map(lambda x: _tile(x, width) if x.ndim > 0 else x, cache)
    scores = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (width - 1)), (batch, 1))  # (B, K)
    vocab = logits.shape[-1]
    pad_only = jnp.full((vocab,), NEG_INF).at[grammar.pad].set(0.0)

    def cond(carry):
        step, _, _, _, _, _, done, _, _ = carry
        return (step < length) & ~jnp.all(done)

    def body(carry):
        step, tokens, logprobs, logits, cache, scores, done, states, seen = carry
        logits = next_token_logits(logits, states, seen, options, grammar, limits)
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        # A finished beam can only be continued by padding, at no cost: it keeps its score.
        log_probs = jnp.where(done[:, None], pad_only, log_probs)
        candidates = (scores[:, :, None] + log_probs.reshape(batch, width, vocab)).reshape(batch, -1)
        scores, flat = jax.lax.top_k(candidates, width)  # (B, K)
        parents, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        select = functools.partial(_select_beams, parents=parents, batch=batch, width=width)
        token = token.reshape(-1)
        tokens, logprobs, states, done, seen = map(select, (tokens, logprobs, states, done, seen))
        chosen_logprob = neighbourhood_logprob(select(log_probs), token, states, grammar)
        cache = {**cache, "layers": jax.tree_util.tree_map(select, cache["layers"])}
        states, token = advance(states, token, table, done, grammar.pad)
        tokens = tokens.at[:, step].set(token)
        logprobs = logprobs.at[:, step].set(jnp.where(done, 0.0, chosen_logprob))
        seen = seen.at[jnp.arange(batch * width), token].set(True)
        done = done | (token == grammar.eos)
        logits, cache = model.extend_cache(token, cache)
        return step + 1, tokens, logprobs, logits, cache, scores, done, states, seen

    n = batch * width
    carry = (jnp.zeros((), jnp.int32), jnp.full((n, length), grammar.pad, jnp.int32),
             jnp.zeros((n, length), jnp.float32), logits, cache, scores, jnp.zeros(n, bool),
             jnp.full(n, grammar.start_state, jnp.int32), jnp.zeros((n, vocab), bool))
    _, tokens, logprobs, _, _, scores, *_ = jax.lax.while_loop(cond, body, carry)
    best = jnp.argmax(scores, axis=1)  # (B,)
    pick = lambda x: jnp.take_along_axis(x.reshape(batch, width, -1), best[:, None, None], axis=1)[:, 0]
    return pick(tokens), pick(logprobs)


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("jit_model", "options", "token_ids"))
def _generate(jit_model, leaves, memory, prompts, rng, table, axes, windows, limits, options: DecodeOptions,
              token_ids):
    model = jit_model.merge(leaves)
    start_state, eos, pad, value_first, value_last = token_ids
    grammar = Grammar(table=table, start_state=start_state, eos=eos, pad=pad, axes=axes,
                      value_first=value_first, value_last=value_last, windows=windows)
    if options.method == "beam":
        return _beam_search(model, memory, prompts, options, grammar, limits)
    return _greedy_or_sample(model, memory, prompts, rng, options, grammar, limits)


def generate(model_or_split, images, prompts, grammar: Grammar, options: DecodeOptions = DecodeOptions(),
             rng=None, limits=None, memory=None) -> tuple[np.ndarray, np.ndarray]:
    """Programs for a batch. images (B, S, S, 1), prompts (B, P) -> tokens, token log-probs (B, L).

    A value token's log-prob is that of its neighbourhood when the grammar has `windows`.

    `model_or_split` is a DrawingReader or its `nnx.split(model)` pair (cheaper to pass repeatedly).
    `limits` (B, 2): the largest value token id allowed on each axis (keeps coordinates on the sheet).
    `memory`: the images already through `embed_image` (then `images` is not used).
    """
    jit_model, leaves = for_jit(model_or_split)
    rng = jax.random.key(0) if rng is None else rng
    use_limits = limits is not None and grammar.axes is not None
    if memory is None:
        memory = _embed(jit_model, leaves, jnp.asarray(images))
    tokens, logprobs = _generate(
        jit_model, leaves, memory, jnp.asarray(prompts, jnp.int32), rng, jnp.asarray(grammar.table),
        jnp.asarray(grammar.axes) if use_limits else None,
        None if grammar.windows is None else jnp.asarray(grammar.windows),
        jnp.asarray(limits, jnp.int32) if use_limits else None, options,
        (grammar.start_state, grammar.eos, grammar.pad, grammar.value_first, grammar.value_last))
    return np.asarray(tokens), np.asarray(logprobs)


@functools.partial(jax.jit, static_argnames=("jit_model",))
def _full_logits_at(jit_model, leaves, memory, tokens, position):
    model = jit_model.merge(leaves)
    logits, _ = model.decode_full(memory, tokens)
    return jax.lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False)


@functools.partial(jax.jit, static_argnames=("jit_model",))
def scored_continuations(jit_model, leaves, memory, sequence, starts, continuations, lengths):
    """memory (1, N, D), sequence (1, P) right-padded, starts (K,), continuations (K, C) -> (K,) summed
    log-probs of each continuation written over the sequence from its start on."""
    model = jit_model.merge(leaves)
    offset = memory.shape[1] if model.cfg.fusion == "prefix" else 0
    # One prefill of the whole sequence: causal attention makes its first `start` positions the cache
    # of every prefix, which `branch_logits` shows each row.
    _, cache = model.prefill_cache(memory, sequence, model.init_cache(1, offset + sequence.shape[1]))
    # Each row: the token before its start, then its continuation but the last; the logits after
    # each are those of the continuation's tokens.
    before = sequence[0, starts - 1][:, None]
    logits = model.branch_logits(jnp.concatenate([before, continuations[:, :-1]], axis=1), offset + starts - 1, cache)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (K, C, V)
    picked = jnp.take_along_axis(log_probs, continuations[:, :, None], axis=2)[:, :, 0]
    return jnp.sum(jnp.where(jnp.arange(continuations.shape[1])[None, :] < lengths[:, None], picked, 0.0), axis=1)


CONTINUATION_ROWS = (4, 8, 16, 32, 64, 128, 256)  # continuations per call, padded up to one of these
SEQUENCE_BUCKET = 64  # the re-read sequence is padded to a multiple of this (or max_len)


def _padded_length(length: int, bucket: int, max_len: int) -> int:
    return min(-(-length // bucket) * bucket, max_len)


def continuation_logprobs(model_or_split, memory, sequence: list[int], starts: list[int],
                          continuations: list[list[int]], pad: int, max_len: int, width: int,
                          bucket: int = SEQUENCE_BUCKET) -> np.ndarray:
    """log p(continuation | sequence[:start], image) for many short continuations of one sequence.

    `memory` (1, N, D): the image through `embed_images`. Continuation k replaces `sequence` from
    `starts[k]` on (0 < start <= len(sequence)); each is at most `width` tokens. The sequence runs
    through the decoder once, into a cache that every continuation extends from its own start
    (a few tokens each). Shapes are padded (the sequence to a multiple of `bucket`, the
    continuations to CONTINUATION_ROWS rows of `width`) so that only a few are ever compiled.
    """
    if not continuations:
        return np.zeros(0, np.float32)
    jit_model, leaves = for_jit(model_or_split)
    padded = np.full((1, _padded_length(len(sequence), bucket, max_len)), pad, np.int32)
    padded[0, :len(sequence)] = sequence
    out = []
    for first in range(0, len(continuations), CONTINUATION_ROWS[-1]):
        chunk = continuations[first:first + CONTINUATION_ROWS[-1]]
        rows = next(r for r in CONTINUATION_ROWS if r >= len(chunk))
        grid = np.full((rows, width), pad, np.int32)
        for i, c in enumerate(chunk):
            grid[i, :len(c)] = c
        lengths = np.array([len(c) for c in chunk] + [0] * (rows - len(chunk)), np.int32)
        row_starts = np.array(list(starts[first:first + len(chunk)]) + [1] * (rows - len(chunk)), np.int32)
        scores = scored_continuations(jit_model, leaves, jnp.asarray(memory), jnp.asarray(padded),
                                        jnp.asarray(row_starts), jnp.asarray(grid), jnp.asarray(lengths))
        out.append(np.asarray(scores)[:len(chunk)])
    return np.concatenate(out)


def warm_up_continuations(model_or_split, memory, pad: int, max_len: int, width: int,
                          bucket: int = SEQUENCE_BUCKET) -> int:
    """Compiles every shape `continuation_logprobs` pads to (sequence buckets x CONTINUATION_ROWS), so
    that a server's first requests do not pay for it; -> the number of shapes."""
    lengths = sorted({_padded_length(n, bucket, max_len) for n in range(1, max_len + 1)})
    for length in lengths:
        for rows in CONTINUATION_ROWS:
            continuation_logprobs(model_or_split, memory, [pad] * length, [1] * rows, [[pad]] * rows, pad,
                                  max_len, width, bucket)
    return len(lengths) * len(CONTINUATION_ROWS)


def embed_images(model_or_split, images) -> jax.Array:
    """The images through the model's encoder: what `generate(memory=...)` and `continuation_logprobs` take."""
    jit_model, leaves = for_jit(model_or_split)
    return _embed(jit_model, leaves, jnp.asarray(images))


@functools.partial(jax.jit, static_argnames=("jit_model",))
def _embed(jit_model, leaves, images):
    return jit_model.merge(leaves).embed_image(images)


def generate_uncached(model_or_split, images, prompts, grammar: Grammar, max_new_tokens: int = 200,
                      bucket: int = 16, limits=None, memory=None) -> np.ndarray:
    """Greedy decoding without a cache: re-runs the decoder on the whole prefix for every token.

    The reference that cached decoding must equal token for token, and the baseline of `bench`. The
    prefix is padded up to a multiple of `bucket` so that only a few lengths are compiled (causal
    attention makes the padding invisible to the positions that count).
    """
    jit_model, leaves = for_jit(model_or_split)
    if memory is None:
        memory = _embed(jit_model, leaves, jnp.asarray(images))
    prompts = np.asarray(prompts, np.int32)
    batch, prompt_len = prompts.shape
    tokens = np.full((batch, prompt_len + max_new_tokens), grammar.pad, np.int32)
    tokens[:, :prompt_len] = prompts
    states = np.full(batch, grammar.start_state, np.int64)
    done = np.zeros(batch, bool)
    for step in range(max_new_tokens):
        position = prompt_len + step - 1  # logits here predict token prompt_len + step
        width = min(-(-(position + 1) // bucket) * bucket, tokens.shape[1])
        logits = np.asarray(_full_logits_at(jit_model, leaves, memory, jnp.asarray(tokens[:, :width]), position))
        logits = np.where(grammar.table[states] >= 0, logits, NEG_INF)
        logits = np.asarray(bound_values(jnp.asarray(logits), jnp.asarray(states), grammar,
                                         None if limits is None else jnp.asarray(limits)))
        token = np.where(done, grammar.pad, logits.argmax(-1))
        states = np.where(done, states, grammar.table[states, token])
        tokens[:, prompt_len + step] = token
        done |= token == grammar.eos
        if done.all():
            break
    return tokens[:, prompt_len:]


def default_grammar() -> Grammar:
    """The program language's grammar (imported here lazily so the engine stays tokenizer-agnostic)."""
    from cad2program.contract import tokenizer
    return _default_grammar(tokenizer)


@functools.lru_cache(maxsize=1)
def _default_grammar(tokenizer: Any) -> Grammar:
    table, start = tokenizer.grammar_table()
    return Grammar(table=table, start_state=start, eos=tokenizer.EOS, pad=tokenizer.PAD, axes=tokenizer.GRAMMAR_AXES,
                   value_first=tokenizer.VALUE0, value_last=tokenizer.VALUE0 + tokenizer.MAX_VALUE,
                   windows=tokenizer.GRAMMAR_WINDOWS)
