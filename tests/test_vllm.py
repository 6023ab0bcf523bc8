"""The vLLM engine (library mode) against the JAX engine on a tiny exported prefix model.

Needs vLLM (docs/vllm.md: its own virtual environment); skipped without it. vLLM starts in about a
minute on 2 cores; the module starts it three times (here, in `predict` and in `eval --engine vllm`).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cad2program.contract import tokenizer
from cad2program.contract.program import Sheet
from cad2program.integrations.vllm_engine import configure_environment
from tiny_model import drawings_folder, prefix_config  # noqa: F401  (fixture)

configure_environment()  # before vLLM's import: OpenMP reads its settings when torch loads
if os.environ.get("CAD2PROGRAM_REQUIRE_VLLM"):  # CI (.ci/run): a broken vLLM install fails, never skips
    import safetensors  # noqa: F401
    import vllm  # noqa: F401
else:
    pytest.importorskip("vllm")
    pytest.importorskip("safetensors")

NEW_TOKENS = 40


def random_drawings(prefix, count: int = 8, seed: int = 0):
    """Random sheets and images: (sheets, their image prefix memory, prompts, value limits)."""
    rng = np.random.default_rng(seed)
    sheets = [Sheet(int(w), int(h)) for w, h in rng.integers(40, 400, (count, 2))]
    memory = prefix.memory(rng.random((count, 64, 64, 1)).astype(np.float32))
    prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int32)
    limits = np.array([tokenizer.value_limits(s) for s in sheets], np.int32)
    return sheets, memory, prompts, limits


@pytest.fixture(scope="module")
def prefix_model(tmp_path_factory):
    from flax import nnx

    from cad2program.model.modelfile import build_model, export_model

    config = prefix_config()
    model = build_model(config, seed=5)
    return model, export_model(tmp_path_factory.mktemp("prefix") / "prefix.msgpack", config, nnx.state(model))


@pytest.fixture(scope="module")
def decoder(prefix_model):
    from cad2program.integrations.vllm_engine import VllmDecoder

    engine = VllmDecoder.from_model(prefix_model[1], max_batch=8, compiled=False)
    yield engine
    engine.close()


def test_greedy_programs_and_logprobs_equal_jax(prefix_model, decoder):
    from cad2program.model.decode import DecodeOptions, default_grammar, generate

    model, _ = prefix_model
    sheets, memory, prompts, limits = random_drawings(decoder.prefix)
    options = DecodeOptions(max_new_tokens=NEW_TOKENS)
    want_tokens, want_logprobs = generate(model, None, prompts, default_grammar(), options, limits=limits,
                                          memory=memory)
    tokens, logprobs = decoder.generate(memory, sheets, options, limits)
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_allclose(logprobs, want_logprobs, atol=1e-4)
    assert all(tokenizer.grammar_accepts(list(row[:list(row).index(tokenizer.EOS) + 1]))
               for row in tokens if tokenizer.EOS in row)


def test_beam_refused(decoder):
    from cad2program.model.decode import DecodeOptions
    from cad2program.errors import UserError

    with pytest.raises(UserError, match="beam search is not offered"):
        decoder.sampling_params([10, 10], DecodeOptions(method="beam"), 10)


def test_predict_engine_vllm_equals_jax(prefix_model, drawings_folder, tmp_path, capsys):  # noqa: F811
    from cad2program.cli import main

    outputs = {}
    for engine in ("jax", "vllm"):
        out = tmp_path / f"{engine}.jsonl"
        extra = ["--vllm-eager"] if engine == "vllm" else []
        assert main(["predict", str(drawings_folder), "--model", str(prefix_model[1]), "--engine", engine,
                     "--out", str(out), "--no-ocr", *extra]) == 0
        outputs[engine] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(outputs["vllm"]) == len(outputs["jax"]) == 4
    for got, want in zip(outputs["vllm"], outputs["jax"]):
        assert got["image"] == want["image"] and got["program"] == want["program"]
        np.testing.assert_allclose(got["confidences"], want["confidences"], atol=1e-3)


def test_eval_engine_vllm_scores_as_jax(prefix_model, drawings_folder, tmp_path, capsys):  # noqa: F811
    from cad2program.cli import main

    reports = {}
    for engine in ("jax", "vllm"):
        report = tmp_path / f"{engine}.json"
        extra = ["--vllm-eager"] if engine == "vllm" else []
        assert main(["eval", "--data", str(drawings_folder), "--model", str(prefix_model[1]), "--engine", engine,
                     "--report", str(report), "--no-ocr", *extra]) == 0
        reports[engine] = json.loads(report.read_text())
    assert reports["vllm"]["decoding"]["engine"] == "vllm" and reports["vllm"]["drawings"] == 4
    for key in ("f1", "precision", "recall", "valid_rate", "per_type"):
        assert reports["vllm"][key] == reports["jax"][key]


def answers_of(recognizer, folder, with_sheet: bool) -> list[dict]:
    """The recognition server's answers (POST /serve/cad_model) on `recognizer` for a folder's drawings."""
    import base64
    import socket
    import threading
    import time

    import requests
    import uvicorn

    from cad2program.server.app import create_app
    from cad2program.server.settings import ServerSettings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(recognizer, ServerSettings(max_batch=8)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        answers = []
        for line in (folder / "labels.jsonl").read_text().splitlines():
            label = json.loads(line)
            body = {"data": base64.b64encode((folder / label["image"]).read_bytes()).decode()}
            if with_sheet:
                body["sheet"] = label["sheet"]
            answer = requests.post(url + "/serve/cad_model", json=body, timeout=120)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        return answers
    finally:
        server.should_exit = True
        thread.join(20)


def test_server_mode_programs_equal_jax(prefix_model, drawings_folder):  # noqa: F811
    """vLLM's OpenAI server on loopback, the prefix sent as `prompt_embeds` (`vllm_server`): its programs
    equal the JAX engine's, and `serve --engine vllm` (the recognition server on that client) answers
    every drawing as the server on JAX does, with and without a sheet."""
    from cad2program.integrations.vllm_server import VllmClient
    from cad2program.model.decode import DecodeOptions, default_grammar, generate
    from cad2program.reading import Recognizer

    model, path = prefix_model
    client = VllmClient.start(path, max_batch=8, compiled=False)
    try:
        assert client.server.url.startswith("http://127.0.0.1:")
        sheets, memory, prompts, limits = random_drawings(client.prefix)
        options = DecodeOptions(max_new_tokens=NEW_TOKENS)
        want_tokens, _ = generate(model, None, prompts, default_grammar(), options, limits=limits, memory=memory)
        tokens, logprobs = client.generate(memory, sheets, options, limits)
        np.testing.assert_array_equal(tokens, want_tokens)
        assert np.isfinite(logprobs).all() and (logprobs <= 1e-6).all()

        for with_sheet in (True, False):
            on_jax = answers_of(Recognizer.load(path, max_batch=8, read_text=False), drawings_folder, with_sheet)
            on_vllm = answers_of(Recognizer.load(path, max_batch=8, read_text=False, engine=client),
                                 drawings_folder, with_sheet)
            assert [a["program"] for a in on_vllm] == [a["program"] for a in on_jax]
            for got, want in zip(on_vllm, on_jax):  # confidences from float32 log-probs of two engines
                got_confidence = [p.pop("confidence") for p in got["primitives"]]
                want_confidence = [p.pop("confidence") for p in want["primitives"]]
                np.testing.assert_allclose(got_confidence, want_confidence, atol=2e-3)
                assert got == want
    finally:
        client.close()
