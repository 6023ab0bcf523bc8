"""Decoding through a vLLM OpenAI-compatible server: the drawing's prefix computed here, sent as
`prompt_embeds` to its Completions API (`serve --engine vllm`).

- `VllmServer` starts `vllm.entrypoints.openai.api_server` on an exported folder (`export_hf`),
  listening on loopback only, with the grammar's logits processor and prompt embeddings enabled,
  and waits until it answers `/health`.
- `VllmClient` has `VllmDecoder.generate`'s signature, so `Recognizer(engine=...)` and the built-in
  server run their whole pipeline around it unchanged. One HTTP request per drawing (each carries
  its own sheet's limits in `vllm_xargs`), sent together so that vLLM batches them.

The embeddings sent are always the ones this process computed from an image: the project never
forwards embeddings a client sent (vLLM's prompt-embeds advisories, CVE-2025-62164 and its
follow-up, are fixed in the pinned 0.32). Needs only the standard library and torch (to serialise
the tensors as vLLM reads them); vLLM itself only where `VllmServer` starts it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from cad2program.contract import tokenizer
from cad2program.errors import UserError
from cad2program.integrations.vllm_engine import (CPU_ENVIRONMENT, GRAMMAR_PROCESSOR, LIMITS_KEY, check_head_dim,
                                                  context_length, refuse_beam, tokens_and_logprobs)

START_TIMEOUT_S = 600.0  # vLLM compiles its model at start: 40-110 s measured on 2 cores, more when loaded
REQUEST_TIMEOUT_S = 300.0
SERVER_LOGPROBS = 20  # log-probabilities asked per step (every token's, -1, is ~25x the JSON for the same sums)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VllmServer:
    """A vLLM OpenAI server on an exported folder, on 127.0.0.1; `close()` stops it."""

    def __init__(self, folder: Path | str, max_batch: int = 32, compiled: bool = True, port: int | None = None,
                 python: str | None = None, log_path: Path | str | None = None):
        from cad2program.integrations.hf_export import read_info

        self.folder = Path(folder)
        info = read_info(self.folder)
        check_head_dim(self.folder, info)
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(handle)
        self.log_path = Path(log_path)
        command = [python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.folder),
                   "--host", "127.0.0.1", "--port", str(self.port), "--served-model-name", "cad2program",
                   "--skip-tokenizer-init", "--enable-prompt-embeds", "--dtype", "float32",
                   "--max-model-len", str(context_length(info)),
                   "--max-num-seqs", str(max_batch), "--logits-processors", GRAMMAR_PROCESSOR,
                   "--logprobs-mode", "processed_logprobs", "--max-logprobs", "-1", "--generation-config", "vllm"]
        if not compiled:
            command.append("--enforce-eager")
        env = {**CPU_ENVIRONMENT, **os.environ}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"the vLLM server exited (code {self.process.returncode}) while starting; its log, "
                                f"{self.log_path}, ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        raise UserError(f"the vLLM server did not answer /health within {START_TIMEOUT_S:.0f} s; log: {self.log_path}")

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class VllmClient:
    """Decodes through a vLLM server that serves `export_hf(model)`; `prefix` is computed here."""

    def __init__(self, url: str, folder: Path | str, logprobs: int | None = SERVER_LOGPROBS, workers: int = 64,
                 server: VllmServer | None = None, exported=None):
        from cad2program.integrations.hf_export import ImagePrefix, read_info

        self.url = url.rstrip("/")
        self.folder = Path(folder)
        self.info = read_info(self.folder)
        self.prefix = ImagePrefix(self.folder)
        self.max_new_tokens = int(self.info["max_new_tokens"])
        self.logprobs = logprobs
        self.server, self._exported = server, exported
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vllm-client")
        self.served_model = self._check_served_model()

    @classmethod
    def start(cls, model_path: Path | str | None, url: str | None = None, max_batch: int = 32,
              compiled: bool = True, **kw) -> "VllmClient":
        """Exports the model (the prefix is computed from it); starts a vLLM server on loopback for it
        unless `url` names one already serving the same export."""
        from cad2program.integrations.hf_export import export_hf

        exported = tempfile.TemporaryDirectory(prefix="cad2program-hf-")
        server = None
        try:
            export_hf(model_path, exported.name)
            if url is None:
                server = VllmServer(exported.name, max_batch=max_batch, compiled=compiled)
                url = server.url
            return cls(url, exported.name, server=server, exported=exported, **kw)
        except BaseException:
            if server is not None:
                server.close()
            exported.cleanup()
            raise

    def _post(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise UserError(f"the vLLM server at {self.url} refused {path}: {err.code} "
                            f"{err.read()[:500].decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as err:
            raise UserError(f"cannot reach the vLLM server at {self.url} ({err})") from None

    def _check_served_model(self) -> str:
        """The served model's name; refuses a server whose context does not fit this model's prompts."""
        models = self._post("/v1/models").get("data") or []
        if not models:
            raise UserError(f"the vLLM server at {self.url} serves no model")
        want = context_length(self.info)
        served = models[0]
        if served.get("max_model_len") not in (None, want):
            raise UserError(f"the vLLM server at {self.url} serves a model with {served['max_model_len']} positions; "
                            f"this model needs {want}: serve `cad2program export --format hf` of the same --model")
        return served["id"]

    def request_body(self, embeds: np.ndarray, limits, options, max_new_tokens: int) -> dict:
        """One drawing's Completions request: its prompt embeddings (torch's serialisation, base64)."""
        import torch

        buffer = io.BytesIO()
        torch.save(torch.from_numpy(np.ascontiguousarray(embeds, np.float32)), buffer)
        sample = options.method == "sample"
        body = {"model": self.served_model, "prompt_embeds": base64.b64encode(buffer.getvalue()).decode(),
                "max_tokens": max_new_tokens, "temperature": options.temperature if sample else 0.0,
                "top_p": options.top_p if sample else 1.0, "repetition_penalty": options.repetition_penalty,
                "stop_token_ids": [tokenizer.EOS], "return_token_ids": True, "return_tokens_as_token_ids": True}
        if self.logprobs is not None:
            body["logprobs"] = self.logprobs
        if options.constrained and limits is not None:
            body["vllm_xargs"] = {LIMITS_KEY: [int(limits[0]), int(limits[1])]}
        return body

    def generate(self, memory: np.ndarray, sheets: Sequence, options, limits: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """As `VllmDecoder.generate`: memory (B, N, D) -> tokens, log-probs (B, max_new_tokens)."""
        refuse_beam(options)
        length = min(options.max_new_tokens, self.max_new_tokens)
        embeds = self.prefix.prompt_embeds(memory, sheets)
        limits = [None] * len(sheets) if limits is None else limits
        bodies = [self.request_body(e, lim, options, length) for e, lim in zip(embeds, limits)]
        answers = list(self._pool.map(lambda body: self._post("/v1/completions", body), bodies))
        completions = [_completion(answer) for answer in answers]
        return tokens_and_logprobs(completions, limits, length, options.constrained)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        server, self.server = self.server, None
        if server is not None:
            server.close()
        exported, self._exported = self._exported, None
        if exported is not None:
            exported.cleanup()


def _completion(answer: dict) -> tuple[list[int], list | None]:
    """(token ids, per step the (ids, log-probs) scored) from one Completions answer."""
    choice = answer["choices"][0]
    token_ids = [int(t) for t in choice["token_ids"]]
    scored = (choice.get("logprobs") or {}).get("top_logprobs")
    if not scored:
        return token_ids, None
    steps = []
    for row in scored:
        row = row or {}
        steps.append(([int(key.rsplit(":", 1)[1]) for key in row], list(row.values())))
    return token_ids, steps
