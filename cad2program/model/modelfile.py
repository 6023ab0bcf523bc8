"""Model files: one `*.msgpack` holding the training config (JSON), the parameters, and `extra`
(JSON: the evaluation it was exported at, its confidence calibration, and under "reading" the
thresholds of the pipeline that follows it, `reading.settings`). Exported by `cad2program train`; the
default one ships inside the package. Knows the model and its config, nothing of reading or OCR.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx, serialization

from cad2program.contract import tokenizer
from cad2program.model.configs import TrainConfig, config_from_dict, config_to_dict
from cad2program.errors import UserError
from cad2program.model.network import DrawingReader

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "default_model.msgpack"


def export_model(path: Path, config: TrainConfig, params, extra: dict | None = None) -> Path:
    """Writes a self-contained model file: the config (JSON) and the parameters (msgpack)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pure = jax.tree_util.tree_map(np.asarray, nnx.to_pure_dict(params))
    payload = {"format": "cad2program-model-1", "token_format": tokenizer.TOKEN_FORMAT,
               "config": json.dumps(config_to_dict(config)),
               "extra": json.dumps(extra or {}), "params": pure}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    tmp.replace(path)
    return path


def build_model(config: TrainConfig, seed: int = 0) -> DrawingReader:
    """A freshly initialised model; initialised in one compiled call rather than op by op (much faster)."""
    return _init_model(config.model, seed)


def with_fusion(config: TrainConfig, model: DrawingReader, fusion: str, seed: int = 0
                ) -> tuple[TrainConfig, DrawingReader]:
    """`model`'s parameters in a model fused the other way (`ModelConfig.fusion`), for fine-tuning.

    Both fusions share the encoder, projector, token embedding, self-attention, SwiGLU, norms and
    heads under the same names; a prefix model has no cross-attention (dropped), and a cross-attention
    model's cross-attention starts freshly initialised. What the prefix decoder must learn anew is to
    find the image among its own positions.
    """
    if fusion == config.model.fusion:
        return config, model
    config = config.replace(model=dataclasses.replace(config.model, fusion=fusion))
    target = build_model(config, seed)
    source = nnx.to_pure_dict(nnx.state(model))
    state = nnx.state(target)
    merged = _overlay(nnx.to_pure_dict(state), source)
    nnx.replace_by_pure_dict(state, merged)
    nnx.update(target, state)
    return config, target


def _overlay(target: dict, source: dict) -> dict:
    """`target` with every leaf that `source` holds at the same path and shape."""
    out = {}
    for key, value in target.items():
        other = source.get(key) if isinstance(source, dict) else None
        if isinstance(value, dict):
            out[key] = _overlay(value, other if isinstance(other, dict) else {})
        elif other is not None and not isinstance(other, dict) and np.shape(other) == np.shape(value):
            out[key] = other
        else:
            out[key] = value
    return out


@functools.partial(nnx.jit, static_argnums=(0, 1))
def _init_model(model_config, seed: int) -> DrawingReader:
    return DrawingReader(model_config, nnx.Rngs(seed))


def load_model(path: Path) -> tuple[TrainConfig, DrawingReader, dict]:
    """Reads an exported model file (or a training workdir, taking its best or latest export)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best_model.msgpack", "model.msgpack"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise UserError(f"{path}: no best_model.msgpack or model.msgpack in this folder "
                            f"(is it a training workdir after its first evaluation?)")
    if not path.exists():
        raise UserError(f"{path}: model file not found")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        if payload.get("format") != "cad2program-model-1":
            raise ValueError("not a cad2program model file")
        config = config_from_dict(json.loads(payload["config"]))
    except Exception as err:  # msgpack raises a variety of errors on a foreign file
        raise UserError(f"{path}: cannot read this model file ({err})") from None
    token_format = payload.get("token_format", 1)  # files written before format 2 do not say
    if token_format != tokenizer.TOKEN_FORMAT:
        raise UserError(f"{path}: this model writes token format {token_format}, and this version of "
                        f"cad2program reads format {tokenizer.TOKEN_FORMAT}; retrain it (or fine-tune the "
                        f"default model) with this version")
    abstract = nnx.eval_shape(lambda: build_model(config))
    graphdef, state = nnx.split(abstract)
    nnx.replace_by_pure_dict(state, payload["params"])
    return config, nnx.merge(graphdef, state), json.loads(payload.get("extra", "{}"))
