"""The reader's options, shared by `predict`, `eval` and `serve`: which model, how it decodes (beam,
batch, engine: JAX, vLLM in this process or a vLLM server), which post-model stages run, and the
`Recognizer` they make."""

from __future__ import annotations

import argparse

DEFAULT_BATCH_SIZE = 16


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def add_text_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    """--no-ocr and --find-text: shared by predict, eval and serve (`whose`: 'the image', 'each uploaded image')."""
    from cad2program.reading.ocr import TEXT_FINDERS

    parser.add_argument("--no-ocr", dest="read_text", action="store_false",
                        help=f"do not read the numbers written on {whose} with OCR when reading sizes "
                             "again (faster; sizes less often exact)")
    parser.add_argument("--find-text", choices=TEXT_FINDERS, default=TEXT_FINDERS[0],
                        help="where the OCR looks for text: 'ink' groups glyph-sized ink into texts (fast; "
                             "misses text that touches a stroke), 'detector' runs the OCR's text detector "
                             "on the page and on the page turned a quarter (about 0.4 s more a drawing on "
                             "2 cores; a few more sizes read). Default: %(default)s")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --beam, --batch-size, --no-refine, --no-ocr, --find-text and --one-look: shared by predict and eval."""
    parser.add_argument("--model", metavar="M",
                        help="a model file (.msgpack) or a training workdir (default: the model in the package)")
    parser.add_argument("--beam", type=positive_int, default=1, metavar="N",
                        help="beam search with N beams (default 1: greedy decoding)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"drawings recognised at once (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--no-refine", dest="refine", action="store_false",
                        help="keep the model's coordinates as read at its input size, without re-measuring "
                             "them on the full-resolution image's ink")
    add_text_arguments(parser, "the image")
    add_engine_arguments(parser)
    parser.add_argument("--one-look", dest="second_look", action="store_false",
                        help="read each drawing once: skip the second reading of what the found primitives "
                             "leave unexplained (faster; primitives the model left out stay out)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --vllm-url and --vllm-eager: what writes the programs (`predict`, `eval` and `serve`)."""
    parser.add_argument("--engine", choices=("jax", "vllm"), default="jax",
                        help="what writes the programs: jax (default), or vllm: vLLM on the model exported to "
                             "Hugging Face Llama (a 'prefix' model only; needs the vllm extra, see docs/vllm.md; "
                             "greedy or sampled, no beam). The encoder and the re-reading stay on JAX")
    parser.add_argument("--vllm-url", metavar="URL",
                        help="with --engine vllm: a vLLM server already serving `cad2program export --format hf` "
                             "of the same --model (e.g. http://127.0.0.1:8000); the image prefix is computed "
                             "here and sent as prompt embeddings. Default: predict and eval run vLLM in this "
                             "process; serve starts a vLLM server on loopback")
    parser.add_argument("--vllm-eager", action="store_true",
                        help="with --engine vllm: run vLLM's model without torch.compile (starts about a "
                             "minute sooner, decodes slower)")


def decoding_engine(args: argparse.Namespace, max_batch: int, as_server: bool = False):
    """The decoding engine the --engine flags ask for: None (JAX), vLLM in this process, or a client of a
    vLLM server (the one --vllm-url names, or one started on loopback when `as_server`)."""
    from cad2program.errors import UserError

    if args.engine != "vllm":
        if args.vllm_url or args.vllm_eager:
            raise UserError("--vllm-url and --vllm-eager go with --engine vllm")
        return None
    if getattr(args, "beam", 1) > 1:
        raise UserError("--beam is not offered with --engine vllm (vLLM 0.32's beam search refuses prompt "
                        "embeddings and takes no custom logits processor); use --engine jax")
    if args.vllm_url or as_server:
        from cad2program.integrations.vllm_server import VllmClient

        return VllmClient.start(args.model, url=args.vllm_url, max_batch=max_batch, compiled=not args.vllm_eager)
    from cad2program.integrations.vllm_engine import VllmDecoder

    return VllmDecoder.from_model(args.model, max_batch=max_batch, compiled=not args.vllm_eager)


def load_recognizer(args: argparse.Namespace, max_batch: int | None = None, as_server: bool = False):
    """The Recognizer the --model, --beam, --batch-size (or `max_batch`), --no-refine, --no-ocr, --find-text,
    --engine and --one-look flags ask for; `as_server`: see `decoding_engine`."""
    from cad2program.model.decode import DecodeOptions
    from cad2program.reading import Recognizer

    beam = getattr(args, "beam", 1)
    max_batch = max_batch or args.batch_size
    options = DecodeOptions(method="beam", beam_width=beam) if beam > 1 else DecodeOptions()
    engine = decoding_engine(args, max_batch, as_server)
    try:
        return Recognizer.load(args.model, options, max_batch=max_batch, refine=args.refine,
                               read_text=args.read_text, second_look=args.second_look, text_finder=args.find_text,
                               engine=engine)
    except BaseException:
        if engine is not None:
            engine.close()
        raise
