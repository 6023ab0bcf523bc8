"""The drawing reader: a Vision Transformer encoder and an autoregressive program decoder (Flax NNX).

    image (B, S, S, 1) -> [conv stem] -> patches -> ViT encoder -> MLP projector -> memory (B, N, D)
    prompt + program tokens (B, T) -> decoder (causal self-attention, fused with the memory) -> logits

Two ways of fusing the image into the decoder, chosen by `ModelConfig.fusion`:
- `cross_attention`: every decoder block has causal self-attention over the program and
  cross-attention to the memory (cheapest on a CPU: image tokens go through no decoder MLP);
- `prefix`: the memory is a prefix of the decoder's input sequence (CAD2Program, LLaVA). The decoder
  is then exactly a Llama block stack (RMSNorm, rotary positions, SwiGLU, no biases), so exporting it to
  the Hugging Face Llama layout for vLLM's `prompt_embeds` is a renaming of weights.
The decoder blocks are Llama blocks in both modes; cross-attention is an extra sub-layer.

Decoding uses an explicit key/value cache passed in and out as a pytree, so the whole generation loop
can live inside one `lax.while_loop` (see `decode.py`): `prefill_cache` runs the prompt,
`extend_cache` runs one token. This module knows nothing about tokenization beyond the vocabulary size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Cache = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    image_size: int = 256  # square input side in pixels; drawings are padded to it, never stretched
    stem_channels: tuple[int, ...] = ()  # 3x3 stride-2 convs before the patch embedding (a hybrid ViT)
    patch_size: int = 16  # total stride from input pixels to image tokens, stem included
    enc_width: int = 192
    enc_depth: int = 4
    enc_heads: int = 3
    enc_mlp_dim: int = 768
    dec_width: int = 192
    dec_depth: int = 3
    dec_heads: int = 3
    dec_mlp_dim: int = 512
    fusion: str = "cross_attention"  # or "prefix"
    max_len: int = 256  # decoder token positions (prompt + program)
    rope_theta: float = 10_000.0
    dtype: str = "float32"  # compute dtype; parameters stay float32
    keypoint_classes: int = 0  # > 0: a per-patch classification head on the encoder (training aid)

    def __post_init__(self):
        if self.fusion not in ("cross_attention", "prefix"):
            raise ValueError(f"fusion must be 'cross_attention' or 'prefix', got {self.fusion!r}")
        stem_stride = 2 ** len(self.stem_channels)
        if self.patch_size % stem_stride or self.image_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of the stem stride {stem_stride} "
                             f"and divide image_size {self.image_size}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_image_tokens(self) -> int:
        return self.num_patches + 1  # + the class token

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------


def heads_first(x):
    """(B, T, H, Dh) -> (B, H, T, Dh): the layout batched matmuls read without copying."""
    return x.transpose(0, 2, 1, 3)


def attention(q, k, v, mask):
    """Scaled dot-product attention. q (B, T, H, Dh), k/v (B, H, S, Dh) heads-first, mask -> (B, H, T, S).

    Keys and values are kept heads-first (caches and image memory too), so that a decoding step does
    not transpose the whole cache to multiply one query with it.
    """
    logits = jnp.einsum("bhtd,bhsd->bhts", heads_first(q), k) / math.sqrt(q.shape[-1])
    logits = jnp.where(mask, logits.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhts,bhsd->bthd", weights, v)  # (B, T, H, Dh)


def branch_attention(q, k, v, cache):
    """Attention of rows that share a cached prefix. q (K, T, H, Dh), own k/v (K, H, T, Dh) heads-first;
    cache k/v (1, H, S, Dh), of which row k sees the first cache["visible"][k] positions -> (K, T, H, Dh).

    The same as writing each row into its own copy of the cache, without the copies: the softmax runs
    over the shared keys and the row's own (causal) keys together.
    """
    scale = 1 / math.sqrt(q.shape[-1])
    shared = jnp.einsum("bthd,hsd->bhts", q, cache["k"][0]).astype(jnp.float32) * scale  # (K, H, T, S)
    own = jnp.einsum("bhtd,bhsd->bhts", heads_first(q), k).astype(jnp.float32) * scale  # (K, H, T, T)
    seen = jnp.arange(shared.shape[-1])[None, :] < cache["visible"][:, None]  # (K, S)
    shared = jnp.where(seen[:, None, None, :], shared, jnp.finfo(jnp.float32).min)
    causal = jnp.tril(jnp.ones((own.shape[-1],) * 2, bool))
    own = jnp.where(causal, own, jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(jnp.concatenate([shared, own], axis=-1), axis=-1).astype(v.dtype)
    s = shared.shape[-1]
    return (jnp.einsum("bhts,hsd->bthd", weights[..., :s], cache["v"][0])
            + jnp.einsum("bhts,bhsd->bthd", weights[..., s:], v))


def rotary(x, positions, theta: float):
    """Rotary position embedding (Llama's half-split layout). x (B, T, H, Dh), positions (T,) or (B, T)."""
    half = x.shape[-1] // 2
    freqs = 1.0 / theta ** (jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions[..., None].astype(jnp.float32) * freqs  # (T, half) or (B, T, half)
    if angles.ndim == 2:
        angles = angles[None]
    sin, cos = jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]  # (B|1, T, 1, half)
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def _linear(d_in, d_out, cfg: ModelConfig, rngs, bias=False):
    return nnx.Linear(d_in, d_out, use_bias=bias, dtype=cfg.compute_dtype, rngs=rngs)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------


class PatchEmbedding(nnx.Module):
    """Optional conv stem (glyph strokes are learned faster by convolutions), then non-overlapping patches."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.stem = nnx.List([])
        channels = 1
        for out_channels in cfg.stem_channels:
            self.stem.append(nnx.Conv(channels, out_channels, (3, 3), strides=2, padding="SAME",
                                      dtype=cfg.compute_dtype, rngs=rngs))
            channels = out_channels
        patch = cfg.patch_size // 2 ** len(cfg.stem_channels)
        self.patch = nnx.Conv(channels, cfg.enc_width, (patch, patch), strides=patch, padding="VALID",
                              dtype=cfg.compute_dtype, rngs=rngs)

    def __call__(self, images):  # (B, S, S, 1) -> (B, N, D)
        x = images
        for conv in self.stem:
            # XLA's CPU convolution is slow for many input channels; the same sums as one matmul over
            # gathered 3x3 windows run ~1.6x faster (fwd+bwd). The 1-channel first layer is faster as is.
            x = jax.nn.gelu(conv(x) if conv.in_features == 1 else conv_3x3_stride_2(x, conv))
        x = patchify_matmul(x, self.patch)  # (B, S/p, S/p, D)
        return x.reshape(x.shape[0], -1, x.shape[-1])


def conv_3x3_stride_2(x, conv: nnx.Conv):
    """`conv(x)` for a 3x3, stride-2, SAME convolution on even sizes, as one matmul. x (B, H, W, C)."""
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # SAME at stride 2 pads one row/column after
    rows, cols = (x.shape[1] - 1) // 2, (x.shape[2] - 1) // 2
    windows = jnp.concatenate([x[:, i:i + 2 * rows:2, j:j + 2 * cols:2, :] for i in range(3) for j in range(3)],
                              axis=-1)  # (B, H/2, W/2, 9C), in the kernel's (row, column, channel) order
    return _dense_with_conv_weights(windows, conv)


def patchify_matmul(x, conv: nnx.Conv):
    """`conv(x)` for a non-overlapping patch convolution (kernel = stride, VALID) as reshape + matmul."""
    b, h, w, c = x.shape
    k = conv.kernel_size[0]
    x = x.reshape(b, h // k, k, w // k, k, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // k, w // k, k * k * c)
    return _dense_with_conv_weights(x, conv)


def _dense_with_conv_weights(windows, conv: nnx.Conv):
    """windows (..., kh*kw*C) in the kernel's (row, column, channel) order @ the conv's kernel, + bias."""
    kernel = conv.kernel[...]
    out = windows @ kernel.reshape(-1, kernel.shape[-1]).astype(windows.dtype)
    return out + conv.bias[...].astype(out.dtype) if conv.bias is not None else out


class EncoderBlock(nnx.Module):
    """Pre-norm ViT block: bidirectional self-attention and a GELU MLP."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d = cfg.enc_width
        self.heads = cfg.enc_heads
        self.norm1 = nnx.LayerNorm(d, dtype=cfg.compute_dtype, rngs=rngs)
        self.qkv = _linear(d, 3 * d, cfg, rngs, bias=True)
        self.out = _linear(d, d, cfg, rngs, bias=True)
        self.norm2 = nnx.LayerNorm(d, dtype=cfg.compute_dtype, rngs=rngs)
        self.mlp_in = _linear(d, cfg.enc_mlp_dim, cfg, rngs, bias=True)
        self.mlp_out = _linear(cfg.enc_mlp_dim, d, cfg, rngs, bias=True)

    def __call__(self, x):  # (B, N, D)
        b, n, d = x.shape
        q, k, v = jnp.split(self.qkv(self.norm1(x)).reshape(b, n, 3 * self.heads, d // self.heads), 3, axis=2)
        x = x + self.out(attention(q, heads_first(k), heads_first(v), True).reshape(b, n, d))
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm2(x))))


def sincos_2d(grid: int, width: int) -> jax.Array:
    """(1 + grid * grid, width): a zero row for the class token, then sine/cosine of (row, column)."""
    quarter = width // 4
    omega = 1.0 / 10_000 ** (jnp.arange(quarter, dtype=jnp.float32) / quarter)
    rows, cols = jnp.meshgrid(jnp.arange(grid, dtype=jnp.float32), jnp.arange(grid, dtype=jnp.float32),
                              indexing="ij")
    angles_r, angles_c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega
    table = jnp.concatenate([jnp.sin(angles_r), jnp.cos(angles_r), jnp.sin(angles_c), jnp.cos(angles_c)], axis=1)
    table = jnp.pad(table, ((1, 0), (0, width - 4 * quarter)))
    return table


class ImageEncoder(nnx.Module):
    """ViT: patches + class token + learned position embeddings -> pre-norm blocks -> LayerNorm."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.embed = PatchEmbedding(cfg, rngs)
        init = nnx.initializers.normal(0.02)
        self.cls = nnx.Param(init(rngs.params(), (1, 1, cfg.enc_width)))
        # Learned, but started from 2-D sine/cosine embeddings: every patch knows its row and column
        # from the first step, and positions are what the decoder must read off (MAE and big_vision
        # use the same table, there frozen).
        self.pos = nnx.Param(sincos_2d(cfg.image_size // cfg.patch_size, cfg.enc_width)[None])
        self.blocks = nnx.List([EncoderBlock(cfg, rngs) for _ in range(cfg.enc_depth)])
        self.norm = nnx.LayerNorm(cfg.enc_width, dtype=cfg.compute_dtype, rngs=rngs)
        self.dtype = cfg.compute_dtype

    def __call__(self, images):  # (B, S, S, 1) -> (B, N + 1, D)
        x = self.embed(images.astype(self.dtype))
        cls = jnp.broadcast_to(self.cls[...], (x.shape[0], 1, x.shape[-1])).astype(x.dtype)
        x = jnp.concatenate([cls, x], axis=1) + self.pos[...].astype(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class Projector(nnx.Module):
    """MLP from encoder features to the decoder's width (LLaVA's connector)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.fc1 = _linear(cfg.enc_width, cfg.dec_width, cfg, rngs, bias=True)
        self.fc2 = _linear(cfg.dec_width, cfg.dec_width, cfg, rngs, bias=True)

    def __call__(self, x):
        return self.fc2(jax.nn.gelu(self.fc1(x)))


# ----------------------------------------------------------------------------------------------
# Decoder (Llama blocks)
# ----------------------------------------------------------------------------------------------


class SelfAttention(nnx.Module):
    """Causal multi-head self-attention with rotary positions and an optional key/value cache."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d = cfg.dec_width
        self.heads, self.head_dim, self.theta = cfg.dec_heads, d // cfg.dec_heads, cfg.rope_theta
        self.q_proj = _linear(d, d, cfg, rngs)
        self.k_proj = _linear(d, d, cfg, rngs)
        self.v_proj = _linear(d, d, cfg, rngs)
        self.o_proj = _linear(d, d, cfg, rngs)

    def __call__(self, x, positions, cache: Cache | None = None):
        """x (B, T, D), positions (T,) absolute; with a cache, keys are written at `positions`."""
        b, t, d = x.shape
        shape = (b, t, self.heads, self.head_dim)
        q = rotary(self.q_proj(x).reshape(shape), positions, self.theta)
        k = heads_first(rotary(self.k_proj(x).reshape(shape), positions, self.theta))  # (B, H, T, Dh)
        v = heads_first(self.v_proj(x).reshape(shape))
        if cache is not None and "visible" in cache:  # branches of one sequence (`branch_logits`)
            return self.o_proj(branch_attention(q, k, v, cache).reshape(b, t, d)), cache
        if cache is None:
            mask = positions[None, :] <= positions[:, None]  # (T, T)
        else:
            start = positions[0]
            k = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (0, 0, start, 0))
            v = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (0, 0, start, 0))
            cache = {"k": k, "v": v}
            mask = jnp.arange(k.shape[2])[None, :] <= positions[:, None]  # (T, S): written keys only
        out = attention(q, k, v, mask[None, None])
        return self.o_proj(out.reshape(b, t, d)), cache


class CrossAttention(nnx.Module):
    """Attention from program tokens to the image memory; the memory's keys/values are computed once."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d = cfg.dec_width
        self.heads, self.head_dim = cfg.dec_heads, d // cfg.dec_heads
        self.q_proj = _linear(d, d, cfg, rngs)
        self.k_proj = _linear(d, d, cfg, rngs)
        self.v_proj = _linear(d, d, cfg, rngs)
        self.o_proj = _linear(d, d, cfg, rngs)

    def memory_kv(self, memory):  # (B, N, D) -> k, v (B, H, N, Dh)
        b, n, _ = memory.shape
        shape = (b, n, self.heads, self.head_dim)
        return {"k": heads_first(self.k_proj(memory).reshape(shape)),
                "v": heads_first(self.v_proj(memory).reshape(shape))}

    def __call__(self, x, memory_kv):
        b, t, d = x.shape
        rows = memory_kv["k"].shape[0]
        if rows == 1 < b:  # one memory for all rows (`branch_logits`): fold the rows into the sequence
            return self(x.reshape(1, b * t, d), memory_kv).reshape(b, t, d)
        q = self.q_proj(x).reshape(b, t, self.heads, self.head_dim)
        return self.o_proj(attention(q, memory_kv["k"], memory_kv["v"], True).reshape(b, t, d))


class SwiGLU(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.gate_proj = _linear(cfg.dec_width, cfg.dec_mlp_dim, cfg, rngs)
        self.up_proj = _linear(cfg.dec_width, cfg.dec_mlp_dim, cfg, rngs)
        self.down_proj = _linear(cfg.dec_mlp_dim, cfg.dec_width, cfg, rngs)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderBlock(nnx.Module):
    """A Llama block (RMSNorm, rotary self-attention, SwiGLU), plus cross-attention when fused that way."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d = cfg.dec_width
        self.input_layernorm = nnx.RMSNorm(d, epsilon=1e-5, dtype=cfg.compute_dtype, rngs=rngs)
        self.self_attn = SelfAttention(cfg, rngs)
        if cfg.fusion == "cross_attention":
            self.cross_layernorm = nnx.RMSNorm(d, epsilon=1e-5, dtype=cfg.compute_dtype, rngs=rngs)
            self.cross_attn = CrossAttention(cfg, rngs)
        else:
            self.cross_attn = None
        self.post_attention_layernorm = nnx.RMSNorm(d, epsilon=1e-5, dtype=cfg.compute_dtype, rngs=rngs)
        self.mlp = SwiGLU(cfg, rngs)

    def __call__(self, x, positions, memory_kv=None, cache: Cache | None = None):
        attn, cache = self.self_attn(self.input_layernorm(x), positions, cache)
        x = x + attn
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_layernorm(x), memory_kv)
        return x + self.mlp(self.post_attention_layernorm(x)), cache


# ----------------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------------


class DrawingReader(nnx.Module):
    """Image + prompt tokens -> next-token logits; `(output, aux)` returns in the big_vision manner."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg, rngs)
        self.projector = Projector(cfg, rngs)
        self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.dec_width, dtype=cfg.compute_dtype,
                                      embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
        self.layers = nnx.List([DecoderBlock(cfg, rngs) for _ in range(cfg.dec_depth)])
        self.norm = nnx.RMSNorm(cfg.dec_width, epsilon=1e-5, dtype=cfg.compute_dtype, rngs=rngs)
        self.lm_head = _linear(cfg.dec_width, cfg.vocab_size, cfg, rngs)
        # Auxiliary: which patches hold key points of which primitive type (dense supervision that
        # trains the encoder to see geometry before the decoder has learned to look for it).
        self.keypoint_head = (_linear(cfg.enc_width, cfg.keypoint_classes, cfg, rngs, bias=True)
                              if cfg.keypoint_classes else None)

    # -- pieces --------------------------------------------------------------------------------

    def embed_image(self, images):
        """(B, S, S, 1) in [0, 1], ink = 1 -> memory (B, N, D_dec) in the decoder's width."""
        return self.projector(self.encoder(images))

    def _run_layers(self, x, positions, memory_kv, caches):
        new_caches = []
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, positions, None if memory_kv is None else memory_kv[i],
                             None if caches is None else caches[i])
            new_caches.append(cache)
        return self.lm_head(self.norm(x)).astype(jnp.float32), new_caches

    def _memory_kv(self, memory):
        if self.cfg.fusion != "cross_attention":
            return None
        return [layer.cross_attn.memory_kv(memory) for layer in self.layers]

    # -- teacher forcing -----------------------------------------------------------------------

    def __call__(self, images, tokens):
        """Full forward. images (B, S, S, 1), tokens (B, T) -> logits (B, T, V), aux.

        aux: `memory` (B, N, D_dec) and, with a key-point head, `keypoint_logits` (B, N - 1, classes).
        """
        features = self.encoder(images)  # (B, N, D_enc)
        logits, aux = self.decode_full(self.projector(features), tokens)
        if self.keypoint_head is not None:
            aux["keypoint_logits"] = self.keypoint_head(features[:, 1:]).astype(jnp.float32)  # patches only
        return logits, aux

    def decode_full(self, memory, tokens):
        """Decoder over the whole token sequence, no cache (training, and the uncached reference)."""
        x = self.embed_tokens(tokens)  # (B, T, D)
        if self.cfg.fusion == "prefix":
            n = memory.shape[1]
            x = jnp.concatenate([memory.astype(x.dtype), x], axis=1)  # (B, N + T, D)
            logits, _ = self._run_layers(x, jnp.arange(x.shape[1]), None, None)
            return logits[:, n:], {"memory": memory}
        logits, _ = self._run_layers(x, jnp.arange(x.shape[1]), self._memory_kv(memory), None)
        return logits, {"memory": memory}

    # -- cached decoding -----------------------------------------------------------------------

    def init_cache(self, batch: int, length: int | None = None) -> Cache:
        cfg = self.cfg
        length = length or (cfg.max_len + (cfg.num_image_tokens if cfg.fusion == "prefix" else 0))
        shape = (batch, cfg.dec_heads, length, cfg.dec_width // cfg.dec_heads)  # heads-first
        zeros = jnp.zeros(shape, cfg.compute_dtype)
        return {"layers": [{"k": zeros, "v": zeros} for _ in range(cfg.dec_depth)],
                "index": jnp.zeros((), jnp.int32)}

    def prefill_cache(self, memory, prompt, cache: Cache):
        """Runs the image (prefix mode) and the prompt (B, P) into the cache; returns last logits (B, V)."""
        x = self.embed_tokens(prompt)
        if self.cfg.fusion == "prefix":
            x = jnp.concatenate([memory.astype(x.dtype), x], axis=1)
        memory_kv = self._memory_kv(memory)
        positions = jnp.arange(x.shape[1])
        logits, layers = self._run_layers(x, positions, memory_kv, cache["layers"])
        cache = {"layers": layers, "index": jnp.asarray(x.shape[1], jnp.int32), "memory_kv": memory_kv}
        return logits[:, -1], cache

    def extend_cache(self, token, cache: Cache):
        """One more token (B,) at the cache's index -> logits (B, V), the cache advanced by one."""
        x = self.embed_tokens(token[:, None])
        positions = cache["index"][None]
        logits, layers = self._run_layers(x, positions, cache.get("memory_kv"), cache["layers"])
        return logits[:, 0], {**cache, "layers": layers, "index": cache["index"] + 1}

    def branch_logits(self, tokens, index, cache: Cache):
        """Many short continuations of one cached sequence, in one pass, the cache left as it is.

        tokens (K, T): row k goes at positions index[k] on and sees the cache's first index[k]
        positions (batch 1) -> logits after each token (K, T, V). Scoring K candidates this way reads
        the shared cache instead of copying it K times.
        """
        x = self.embed_tokens(tokens)
        positions = index[:, None] + jnp.arange(tokens.shape[1])  # (K, T)
        layers = [{**layer, "visible": index} for layer in cache["layers"]]
        logits, _ = self._run_layers(x, positions, cache.get("memory_kv"), layers)
        return logits
