"""Decode time per drawing, JAX engine against vLLM (library mode), on one prefix model; one JSON object.

    /work/venv-vllm/bin/python benchmarks/bench_vllm.py [--config cpu] [--tokens 40] [--repeats 3]

Needs vLLM (docs/vllm.md). A randomly initialised `prefix` model of the named config (speed does not
depend on the weights) is exported to a temporary Hugging Face folder; both engines decode the same
projected image features (the encoder, paid once per drawing either way, is left out) with the
grammar, greedy, for at most `--tokens` tokens, at batch 1 and 32. vLLM is timed with every token's
log-probability returned (what the recognizer's confidences use), with the 20 likeliest, and with
none. The programs of both engines are compared. The machine's load average is reported beside the
figures: on a shared machine they are only comparable within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time

import numpy as np

from cad2program.training.speed import best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu", help="named config whose model is measured (default cpu)")
    parser.add_argument("--tokens", type=int, default=40, help="most program tokens per drawing (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions, the best kept (default 3)")
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile")
    args = parser.parse_args()

    from flax import nnx

    from cad2program.contract import tokenizer
    from cad2program.model.configs import get_config
    from cad2program.model.decode import DecodeOptions, default_grammar, generate
    from cad2program.integrations.hf_export import export_hf
    from cad2program.contract.program import Sheet
    from cad2program.model.modelfile import build_model, export_model
    from cad2program.integrations.vllm_engine import VllmDecoder

    config = get_config(args.config)
    config = config.replace(model=dataclasses.replace(config.model, fusion="prefix"))
    model = build_model(config)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(os.path.join(tmp, "prefix.msgpack"), config, nnx.state(model))
        folder = export_hf(path, os.path.join(tmp, "hf"))
        start = time.perf_counter()
        decoder = VllmDecoder(folder, max_batch=32, compiled=not args.eager)
        startup = time.perf_counter() - start
        try:
            rng = np.random.default_rng(0)
            size = config.model.image_size
            sheets = [Sheet(int(w), int(h)) for w, h in rng.integers(40, 400, (32, 2))]
            memory = decoder.prefix.memory(rng.random((32, size, size, 1)).astype(np.float32))
            prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int32)
            limits = np.array([tokenizer.value_limits(s) for s in sheets], np.int32)
            options = DecodeOptions(max_new_tokens=args.tokens)
            split, grammar = nnx.split(model), default_grammar()
            figures, programs = {}, {}
            for batch in (1, 32):
                def jax_decode():
                    programs["jax", batch] = generate(split, None, prompts[:batch], grammar, options,
                                                      limits=limits[:batch], memory=memory[:batch])[0]
                seconds = best_time(jax_decode, args.repeats)
                figures[f"jax_ms_per_drawing_b{batch}"] = round(1000 * seconds / batch, 2)
                for name, logprobs in (("all_logprobs", -1), ("top20_logprobs", 20), ("no_logprobs", None)):
                    decoder.logprobs = logprobs

                    def vllm_decode():
                        programs["vllm", batch] = decoder.generate(memory[:batch], sheets[:batch], options,
                                                                   limits[:batch])[0]
                    seconds = best_time(vllm_decode, args.repeats)
                    figures[f"vllm_{name}_ms_per_drawing_b{batch}"] = round(1000 * seconds / batch, 2)
                same = np.array_equal(programs["jax", batch], programs["vllm", batch])
                figures[f"same_programs_b{batch}"] = bool(same)
            tokens = programs["jax", 32]
            figures["mean_tokens_per_drawing"] = float(np.mean([list(r).index(tokenizer.EOS) + 1 if tokenizer.EOS in r
                                                                else len(r) for r in tokens]))
        finally:
            decoder.close()
    result = {"config": args.config, "max_tokens": args.tokens, "vllm_compiled": not args.eager,
              "vllm_startup_seconds": round(startup, 1), **figures,
              "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "processor": platform.processor() or platform.machine()}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
