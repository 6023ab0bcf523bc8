"""Export a model for another engine: a `prefix` model as a Hugging Face Llama folder (for vLLM).

The folder holds the decoder as LlamaForCausalLM (config.json, model.safetensors), a word-level
tokenizer over the token names, and the image encoder with its projector (image_prefix.msgpack),
which `cad2program.integrations.hf_export.ImagePrefix` runs to turn a drawing into the decoder's first input
embeddings. Only models trained with fusion 'prefix' export: a 'cross_attention' decoder attends to
the image inside every block, which no Llama has. Writing needs the safetensors package (the `hf`
extra: pip install -e '.[hf]'); running the folder with transformers or vLLM needs torch.

examples:
  cad2program export --format hf --model runs/prefix/best_model.msgpack --out exported/prefix
"""

from __future__ import annotations

import argparse

FORMATS = ("hf",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="hf",
                        help="hf: a Hugging Face LlamaForCausalLM folder (the only format; default)")
    parser.add_argument("--model", metavar="M",
                        help="a model file (.msgpack) or a training workdir (default: the model in the package)")
    parser.add_argument("--out", metavar="DIR", required=True, help="the folder to write (created if missing)")


def run(args: argparse.Namespace) -> int:
    from cad2program.integrations.hf_export import export_hf

    out = export_hf(args.model, args.out)
    print(f"wrote {out} (Hugging Face LlamaForCausalLM decoder + image_prefix.msgpack)")
    return 0
