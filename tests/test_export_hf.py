"""`cad2program export --format hf`: a prefix model's decoder as a Hugging Face Llama, checked against JAX.

Needs the `hf` extra (torch, transformers, safetensors); skipped without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cad2program.contract import tokenizer
from cad2program.contract.program import Sheet
from tiny_model import prefix_config, tiny_model  # noqa: F401  (fixture)

SHEETS = [Sheet(200, 150), Sheet(90, 120)]
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(JAX model, model file, exported folder) of a random tiny prefix model."""
    pytest.importorskip("safetensors")
    from flax import nnx

    from cad2program.integrations.hf_export import export_hf
    from cad2program.model.modelfile import build_model, export_model

    root = tmp_path_factory.mktemp("hf")
    config = prefix_config()
    model = build_model(config, seed=3)
    path = export_model(root / "prefix.msgpack", config, nnx.state(model))
    return model, path, export_hf(path, root / "hf")


@pytest.fixture(scope="module")
def llama(exported):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaForCausalLM.from_pretrained(str(exported[2]), dtype=torch.float32).eval()


def drawings(count: int = 2, size: int = 64) -> np.ndarray:
    """Random ink in [0, 1] (B, S, S, 1): a random model's reading of it is noise, but the same noise."""
    return np.random.default_rng(0).random((count, size, size, 1)).astype(np.float32)


def test_folder_layout(exported):
    _, _, folder = exported
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["head_dim"] == 32 and config["tie_word_embeddings"] is False
    assert config["max_position_embeddings"] == 65 + 192  # image tokens (8x8 patches + class) + max_len
    info = json.loads((folder / "cad2program.json").read_text())
    assert info["vocab"] == list(tokenizer.VOCAB) and info["token_ids"]["eos"] == tokenizer.EOS


def test_logits_equal_jax(exported, llama):
    import jax.numpy as jnp
    import torch

    from cad2program.integrations.hf_export import ImagePrefix

    model, _, folder = exported
    prefix = ImagePrefix(folder)
    memory = prefix.memory(drawings())
    np.testing.assert_allclose(memory, np.asarray(model.embed_image(jnp.asarray(drawings()))), atol=1e-6)
    program = np.random.default_rng(1).integers(0, tokenizer.VOCAB_SIZE, (2, 30))
    prompts = np.array([tokenizer.encode_prompt(s) for s in SHEETS])
    expected, _ = model.decode_full(jnp.asarray(memory), jnp.asarray(np.concatenate([prompts, program], 1)))
    with torch.no_grad():
        embeds = torch.cat([torch.from_numpy(prefix.prompt_embeds(memory, SHEETS)),
                            llama.model.embed_tokens(torch.from_numpy(program))], dim=1)
        got = llama(inputs_embeds=embeds).logits[:, memory.shape[1]:].numpy()
    assert np.abs(got - np.asarray(expected)).max() < 1e-4


def hf_greedy(llama, embeds: np.ndarray, sheet: Sheet, steps: int) -> list[int]:
    """Grammar-constrained greedy decoding with transformers and its key/value cache, one drawing."""
    import torch

    from cad2program.integrations.grammar_cursor import GrammarCursor

    cursor = GrammarCursor(tokenizer.value_limits(sheet))
    tokens: list[int] = []
    with torch.no_grad():
        out = llama(inputs_embeds=torch.from_numpy(embeds[None]), use_cache=True)
        for _ in range(steps):
            logits = out.logits[0, -1].numpy()
            token = int(np.argmax(np.where(cursor.allowed(), logits, -np.inf)))
            tokens.append(token)
            if token == tokenizer.EOS:
                break
            cursor.advance(token)
            out = llama(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    return tokens


def test_greedy_tokens_equal_jax(exported, llama):
    from cad2program.model.decode import DecodeOptions, default_grammar, generate
    from cad2program.integrations.hf_export import ImagePrefix

    model, _, folder = exported
    prefix = ImagePrefix(folder)
    memory = prefix.memory(drawings())
    prompts = np.array([tokenizer.encode_prompt(s) for s in SHEETS], np.int32)
    limits = np.array([tokenizer.value_limits(s) for s in SHEETS], np.int32)
    expected, _ = generate(model, None, prompts, default_grammar(), DecodeOptions(max_new_tokens=NEW_TOKENS),
                           limits=limits, memory=memory)
    embeds = prefix.prompt_embeds(memory, SHEETS)
    for row, sheet, want in zip(embeds, SHEETS, expected):
        got = hf_greedy(llama, row, sheet, NEW_TOKENS)
        assert got == [int(t) for t in want[:len(got)]]
        assert len(got) == NEW_TOKENS or got[-1] == tokenizer.EOS


def test_tokenizer_names_ids(exported):
    transformers = pytest.importorskip("transformers")
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(exported[2]))
    ids = [tokenizer.SHEET, tokenizer.VALUE0 + 200, tokenizer.VALUE0 + 150, tokenizer.BOS, tokenizer.TYPE_ID["circle"],
           tokenizer.DIGIT0 + 4, tokenizer.SIZE_END, tokenizer.EOS]
    text = hf_tokenizer.decode(ids)
    assert text == " ".join(tokenizer.VOCAB[i] for i in ids)
    assert hf_tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    assert hf_tokenizer.eos_token_id == tokenizer.EOS and hf_tokenizer.pad_token_id == tokenizer.PAD


def test_cross_attention_model_refused(tiny_model, tmp_path, capsys):
    pytest.importorskip("safetensors")
    from cad2program.cli import main

    assert main(["export", "--format", "hf", "--model", str(tiny_model), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert "'cross_attention' model cannot be exported" in err and "only 'prefix' models export" in err
    assert not (tmp_path / "hf").exists()


def test_cli_writes_folder(exported, tmp_path, capsys):
    from cad2program.cli import main

    assert main(["export", "--model", str(exported[1]), "--out", str(tmp_path / "out")]) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "image_prefix.msgpack", "cad2program.json"} <= written
