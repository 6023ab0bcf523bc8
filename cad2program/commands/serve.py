"""Serve the model over HTTP: JSON, multipart and OpenAI-compatible endpoints, with dynamic batching.

Endpoints (interactive docs at /docs):
  POST /serve/cad_model       {"data": "<base64 PNG/JPEG>", "sheet": {"width": 200, "height": 150}}
  POST /v1/recognize          multipart: file=@drawing.png [sheet_width=200 sheet_height=150]
  POST /v1/chat/completions   OpenAI-compatible; the image as a data URL, "sheet: 200x150" in a text part
  GET  /healthz /readyz /metrics

Concurrent requests are grouped into one model call of up to --max-batch drawings, waiting at most
--max-wait-ms for a batch to fill, and only while other requests are on their way (being decoded): a
lone request runs at once. /readyz answers 503 until every batch size has been compiled.

Limits (docs/reliability.md): at most --max-queue recognition requests are held at once (being decoded,
waiting for the model or being read); one more is answered at once with 503 and Retry-After, and
/metrics shows how many are held (cad2program_requests_in_flight). No request is held longer than
--timeout (then 504). A request body must arrive within --body-timeout (else 408, connection closed);
at most --max-connections connections are open (more get 503). Images over --work-mpx megapixels are
scaled down to it as they are decoded, and decodes share a pixel budget, so the work and memory of a
request follow its pixels, not its file size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cad2program.commands.reader_options import add_engine_arguments, add_text_arguments, load_recognizer
from cad2program.server.settings import (DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_QUEUE, DEFAULT_WORK_PIXELS,
                                         ServerSettings)

DEFAULT_COMPILE_CACHE = Path.home() / ".cache" / "cad2program" / "xla"
DEFAULT_MAX_CONNECTIONS = 256
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                                                            "0.0.0.0 to accept other machines)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    parser.add_argument("--model", metavar="M", help="model file (*.msgpack) or training workdir "
                                                     "(default: the model shipped in the package)")
    parser.add_argument("--no-refine", dest="refine", action="store_false",
                        help="answer with the model's coordinates as read at its input size, without "
                             "re-measuring them on each uploaded image's ink")
    add_text_arguments(parser, "each uploaded image")
    parser.add_argument("--one-look", dest="second_look", action="store_false",
                        help="read each drawing once: skip the second reading of what the found primitives "
                             "leave unexplained (faster; primitives the model left out stay out)")
    add_engine_arguments(parser)
    parser.add_argument("--max-batch", type=int, default=32, metavar="N",
                        help="most drawings decoded in one model call (default: %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, metavar="T",
                        help="longest a request waits for its batch to fill, while more requests are being "
                             "decoded (default: %(default)s)")
    parser.add_argument("--no-batching", action="store_true", help="decode every request on its own")
    parser.add_argument("--max-body-mb", type=float, default=20.0,
                        help="largest request body accepted, in MB (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S",
                        help="per-request limit on decoding + queue + model, in seconds (default: %(default)s)")
    parser.add_argument("--decode-workers", type=int, default=4,
                        help="threads decoding images in parallel (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                        help="most recognition requests held at once (decoding, queued or being read); one more "
                             "gets HTTP 503 with Retry-After at once instead of waiting (default: %(default)s)")
    parser.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S, metavar="S",
                        help="seconds a client has to send a whole request body; then HTTP 408 and the "
                             "connection is closed (default: %(default)s)")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                        help="most open connections (idle keep-alive ones included); more get HTTP 503 "
                             "(default: %(default)s)")
    parser.add_argument("--work-mpx", type=float, default=DEFAULT_WORK_PIXELS / 1e6, metavar="MPX",
                        help="images over this many megapixels are scaled down to it as they are decoded "
                             "(default: %(default)s)")
    parser.add_argument("--compile-cache", default=str(DEFAULT_COMPILE_CACHE), metavar="DIR",
                        help="folder keeping compiled XLA programs between runs, so restarts warm up in "
                             "seconds; 'none' to disable (default: %(default)s)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _check(args: argparse.Namespace) -> None:
    from cad2program.errors import UserError

    problems = []
    if not 1 <= args.max_batch <= 64:
        problems.append(f"--max-batch must be within 1..64, got {args.max_batch}")
    if args.max_wait_ms < 0:
        problems.append(f"--max-wait-ms must be >= 0, got {args.max_wait_ms:g}")
    if args.max_body_mb <= 0 or args.timeout <= 0 or args.decode_workers < 1:
        problems.append("--max-body-mb and --timeout must be > 0, --decode-workers >= 1")
    if args.max_queue < 1 or args.max_connections < 1:
        problems.append("--max-queue and --max-connections must be >= 1")
    if args.body_timeout <= 0 or args.work_mpx < 0.01:
        problems.append("--body-timeout must be > 0 and --work-mpx at least 0.01")
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be within 0..65535, got {args.port}")
    if problems:
        raise UserError("; ".join(problems))


def enable_compile_cache(folder: str | None) -> None:
    """Keeps XLA's compiled programs on disk: a restarted server (or benchmark) skips most of warm-up."""
    if not folder or folder.lower() == "none":
        return
    import jax

    Path(folder).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run(args: argparse.Namespace) -> int:
    _check(args)
    import logging

    import uvicorn

    from cad2program.server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    enable_compile_cache(args.compile_cache)
    recognizer = load_recognizer(args, args.max_batch, as_server=True)
    name = Path(args.model).stem if args.model else "cad2program"
    settings = ServerSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
                              max_body_bytes=int(args.max_body_mb * 1024 * 1024), request_timeout_s=args.timeout,
                              decode_workers=args.decode_workers, model_name=name, max_queue=args.max_queue,
                              body_timeout_s=args.body_timeout, work_pixels=int(args.work_mpx * 1e6))
    app = create_app(recognizer, settings)
    print(f"cad2program serve: http://{args.host}:{args.port} (docs at /docs; ready when /readyz says so)",
          flush=True)
    try:
        uvicorn.Server(server_config(app, args.host, args.port, args.max_connections, args.log_level)).run()
    finally:
        recognizer.close()  # the vLLM server it started, if any, ends with it
    return 0


def server_config(app, host: str, port: int, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                  log_level: str = "info"):
    """uvicorn's settings for the app: the connection limit and the keep-alive timeout."""
    import uvicorn

    # limit_concurrency counts open connections (and running tasks): one over it is answered 503.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, limit_concurrency=max_connections,
                          timeout_keep_alive=KEEP_ALIVE_S)
