"""A `prefix` model as a Hugging Face Llama folder, for engines that serve decoder-only models (vLLM).

    DIR/config.json            LlamaForCausalLM's config (the decoder)
    DIR/model.safetensors      the decoder's weights under Llama's names
    DIR/tokenizer.json         a word-level tokenizer over the project's token names (+ tokenizer_config.json)
    DIR/generation_config.json the end and pad token ids
    DIR/image_prefix.msgpack   the image encoder and projector (Flax), read by `ImagePrefix`
    DIR/cad2program.json       what the folder is: the training config, token ids, the grammar's ids

The drawing reaches the decoder as its first `num_image_tokens` input embeddings (the projected image
features), followed by the prompt `<sheet> W H <bos>` as ordinary token embeddings. `ImagePrefix`
computes those embeddings; an engine given them as `prompt_embeds` continues with the program's tokens.

Why this is a renaming: in `prefix` mode the decoder is a Llama block stack (`model/network.py`): RMSNorm with
eps 1e-5 and a learned scale, rotary positions in the half-split layout that Hugging Face's
`rotate_half` uses (frequencies theta^(-i/half)), SwiGLU, no biases, and a head not tied to the
embedding. Flax kernels are (in, out) and torch's Linear weights (out, in): every kernel transposes.
Only `max_position_embeddings` differs from the JAX config: it counts the image tokens too.

The `cross_attention` decoder has an extra attention sub-layer to the image in every block, which no
Llama (nor any decoder-only model an engine serves) has: it cannot be exported this way.

numpy and safetensors write the folder; torch and transformers are needed only to run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from cad2program.contract import tokenizer
from cad2program.model.configs import TrainConfig, config_from_dict, config_to_dict
from cad2program.errors import UserError

PREFIX_FILE = "image_prefix.msgpack"
INFO_FILE = "cad2program.json"
WEIGHTS_FILE = "model.safetensors"
INFO_FORMAT = "cad2program-hf-1"
RMS_NORM_EPS = 1e-5  # model.DecoderBlock's RMSNorm epsilon


def _need_safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise UserError("exporting to Hugging Face needs the safetensors package: pip install -e '.[hf]'") from None
    return safetensors.numpy


def llama_config(config: TrainConfig) -> dict:
    """LlamaForCausalLM's config.json for the decoder of a prefix model."""
    m = config.model
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": m.vocab_size,
        "hidden_size": m.dec_width,
        "intermediate_size": m.dec_mlp_dim,
        "num_hidden_layers": m.dec_depth,
        "num_attention_heads": m.dec_heads,
        "num_key_value_heads": m.dec_heads,  # no grouped-query attention
        "head_dim": m.dec_width // m.dec_heads,
        "hidden_act": "silu",
        # Image tokens come first: positions run over them and the whole program.
        "max_position_embeddings": m.num_image_tokens + m.max_len,
        "rms_norm_eps": RMS_NORM_EPS,
        "rope_theta": m.rope_theta,  # older readers; newer ones read rope_parameters
        "rope_parameters": {"rope_type": "default", "rope_theta": m.rope_theta},
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "bos_token_id": tokenizer.BOS,
        "eos_token_id": tokenizer.EOS,
        "pad_token_id": tokenizer.PAD,
        "torch_dtype": "float32",
        "dtype": "float32",
    }


def llama_weights(params: dict, depth: int) -> dict[str, np.ndarray]:
    """The decoder's parameters (a pure dict, `nnx.to_pure_dict`) under Llama's names, torch's layout."""
    def kernel(node) -> np.ndarray:  # Flax (in, out) -> torch (out, in)
        return np.ascontiguousarray(np.asarray(node["kernel"], np.float32).T)

    out = {"model.embed_tokens.weight": np.asarray(params["embed_tokens"]["embedding"], np.float32),
           "model.norm.weight": np.asarray(params["norm"]["scale"], np.float32),
           "lm_head.weight": kernel(params["lm_head"])}
    for i in range(depth):
        layer, name = params["layers"][i], f"model.layers.{i}"
        out[f"{name}.input_layernorm.weight"] = np.asarray(layer["input_layernorm"]["scale"], np.float32)
        out[f"{name}.post_attention_layernorm.weight"] = np.asarray(layer["post_attention_layernorm"]["scale"],
                                                                    np.float32)
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"{name}.self_attn.{proj}.weight"] = kernel(layer["self_attn"][proj])
        for proj in ("gate_proj", "up_proj", "down_proj"):
            out[f"{name}.mlp.{proj}.weight"] = kernel(layer["mlp"][proj])
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def tokenizer_files() -> dict[str, dict]:
    """A word-level tokenizer over the project's token names (`tokenizer.VOCAB`), as tokenizer.json.

    Program text is not what the model reads (it writes token ids whose meaning depends on the sheet:
    `tokenizer.decode` turns them into primitives), so this tokenizer only names ids: decoding a row
    gives its token names separated by spaces ('<circle> #120 #88 #30 d6 d; <eos>'), and encoding such
    a line gives the ids back. Engines are run without it (ids in, ids out); it is there so that
    transformers' AutoTokenizer and a server's text output have something readable.
    """
    specials = ("<pad>", "<bos>", "<eos>", "<sheet>")
    added = [{"id": tokenizer.TOKEN_ID[t], "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for t in specials]
    tokenizer_json = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": dict(tokenizer.TOKEN_ID), "unk_token": "<pad>"},
    }
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eos>",
              "pad_token": "<pad>", "unk_token": "<pad>", "model_max_length": 1_000_000,
              "clean_up_tokenization_spaces": False}
    return {"tokenizer.json": tokenizer_json, "tokenizer_config.json": config}


def folder_info(config: TrainConfig, extra: dict) -> dict:
    """cad2program.json: the training config and the ids a decoding engine needs beside the weights."""
    return {"format": INFO_FORMAT, "token_format": tokenizer.TOKEN_FORMAT,
            "config": config_to_dict(config), "extra": extra,
            "num_image_tokens": config.model.num_image_tokens, "prompt_length": tokenizer.PROMPT_LENGTH,
            "max_new_tokens": config.model.max_len - tokenizer.PROMPT_LENGTH,
            "token_ids": {"pad": tokenizer.PAD, "bos": tokenizer.BOS, "eos": tokenizer.EOS,
                          "sheet": tokenizer.SHEET, "value0": tokenizer.VALUE0},
            "vocab": list(tokenizer.VOCAB)}


def export_hf(model_path: Path | str | None, out: Path | str) -> Path:
    """Writes the folder described in this module's docstring for the model file `model_path` (None:
    the packaged default). Raises UserError for a cross_attention model."""
    from flax import serialization
    from flax import nnx
    import jax

    from cad2program.model.modelfile import DEFAULT_MODEL, load_model

    st = _need_safetensors()
    model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL
    config, model, extra = load_model(model_path)
    if config.model.fusion != "prefix":
        raise UserError(
            f"{model_path}: a {config.model.fusion!r} model cannot be exported to Hugging Face: only 'prefix' "
            f"models export. Its decoder attends to the image through a cross-attention sub-layer in every "
            f"block, which a Llama (or any decoder-only model vLLM serves) does not have; a prefix model "
            f"reads the image as the first tokens of its input and is exactly a Llama. Train one with "
            f"fusion='prefix'.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    params = jax.tree_util.tree_map(np.asarray, nnx.to_pure_dict(nnx.state(model)))

    (out / "config.json").write_text(json.dumps(llama_config(config), indent=2) + "\n")
    st.save_file(llama_weights(params, config.model.dec_depth), str(out / WEIGHTS_FILE),
                 metadata={"format": "pt"})
    for name, content in tokenizer_files().items():
        (out / name).write_text(json.dumps(content, indent=1) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": tokenizer.BOS, "eos_token_id": tokenizer.EOS, "pad_token_id": tokenizer.PAD,
         "do_sample": False}, indent=2) + "\n")
    (out / INFO_FILE).write_text(json.dumps(folder_info(config, extra), indent=1) + "\n")
    payload = {"format": "cad2program-image-prefix-1", "config": json.dumps(config_to_dict(config)),
               "params": {"encoder": params["encoder"], "projector": params["projector"]}}
    tmp = out / (PREFIX_FILE + ".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    tmp.replace(out / PREFIX_FILE)
    return out


def read_info(folder: Path | str) -> dict:
    """cad2program.json of an exported folder, checked."""
    folder = Path(folder)
    path = folder / INFO_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a folder written by 'cad2program export --format hf' (no {INFO_FILE})")
    info = json.loads(path.read_text())
    if info.get("format") != INFO_FORMAT:
        raise UserError(f"{path}: unknown format {info.get('format')!r} (expected {INFO_FORMAT})")
    if info.get("token_format") != tokenizer.TOKEN_FORMAT:
        raise UserError(f"{path}: token format {info.get('token_format')}, this version reads "
                        f"{tokenizer.TOKEN_FORMAT}; export the model again with this version")
    return info


class ImagePrefix:
    """Images -> the decoder's first input embeddings: projected image features, then the prompt.

    Reads `image_prefix.msgpack` (encoder and projector, run with JAX) and the token embedding table
    from `model.safetensors`, so the prompt's embeddings are exactly the ones the engine's model has.
    """

    def __init__(self, folder: Path | str):
        import jax
        from flax import nnx, serialization

        from cad2program.model.network import ImageEncoder, Projector

        folder = Path(folder)
        self.info = read_info(folder)
        payload = serialization.msgpack_restore((folder / PREFIX_FILE).read_bytes())
        self.config = config_from_dict(json.loads(payload["config"]))
        cfg = self.config.model

        class _Prefix(nnx.Module):  # the two parts of DrawingReader that see the image, same names
            def __init__(self, rngs):
                self.encoder, self.projector = ImageEncoder(cfg, rngs), Projector(cfg, rngs)

            def __call__(self, images):
                return self.projector(self.encoder(images))

        graphdef, state = nnx.split(nnx.eval_shape(lambda: _Prefix(nnx.Rngs(0))))
        nnx.replace_by_pure_dict(state, payload["params"])
        self._graphdef, self._state = graphdef, state
        self._embed = jax.jit(lambda state, images: nnx.merge(graphdef, state)(images))
        self.token_embeddings = _need_safetensors().load_file(str(folder / WEIGHTS_FILE))["model.embed_tokens.weight"]

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    def memory(self, prepared: np.ndarray) -> np.ndarray:
        """Images through `data.prepare_image` (B, S, S, 1) -> projected features (B, N, D) float32."""
        return np.asarray(self._embed(self._state, np.asarray(prepared, np.float32)), np.float32)

    def prompt_embeds(self, memory: np.ndarray, sheets: Sequence) -> np.ndarray:
        """memory (B, N, D) and each drawing's sheet -> the whole prompt's embeddings (B, N + P, D)."""
        prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int64)
        return np.concatenate([np.asarray(memory, np.float32), self.token_embeddings[prompts]], axis=1)

