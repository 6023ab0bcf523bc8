"""Latency of `predict` for one drawing, warm: a `cpu`-config model, batch 1, greedy; prints one JSON object.

    python3 benchmarks/bench_predict.py [--config cpu | --model M] [--repeats 10] [--image PNG] [--sheet WxH]
        [--no-ocr] [--find-text ink|detector] [--one-look] [--folder DIR --count N]

The model is randomly initialised (the figure is about compute, not accuracy) and built in this
process; the first call compiles, and the timed calls are the ones after it, in-process, as `predict`
on a folder or a server sees them. A random model writes until the length limit, so the number of
generated tokens is reported beside the time: a trained model that stops earlier is faster.
Timed: `Recognizer.recognize([image], [sheet])` (image resize + encoder + cached greedy decoding +
the pipeline's stages: re-measuring on the image's ink and, given the real sheet, re-reading the sizes);
each stage is also timed alone (`stage_ms_median`), their sum less reading and the second look as `refine_ms_median`, and within it the OCR reading the numbers
written on the image (`ocr_ms_median`, of which `ocr_find_ms_median` is finding where the text is and
cutting it out, `annotations.text_crops`, by
the `--find-text` way: grouping the ink, or the detector on the page and on the page turned a quarter;
`--no-ocr` leaves both out, as `predict --no-ocr` does), and the second look
(`second_look_ms_median`: erasing what was found, decoding and re-measuring the rest,
scoring its candidates; `--one-look` leaves it out).

`--folder DIR --count N` also times the first N drawings of a labelled folder, each once on its own
sheet, after the warm-up that a server does (`Recognizer.warm_up_rereading`, one drawing read first):
`folder_ms_median`, `folder_ms_p90` and `folder_ms_max`, the spread one image cannot show.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

DEFAULT_IMAGE = Path(__file__).resolve().parent.parent / "testsets" / "clean" / "images" / "000000.png"


def main() -> None:
    from cad2program.commands.reader_options import add_text_arguments, positive_int
    from cad2program.commands.render import parse_sheet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu", help="named model config (default cpu)")
    parser.add_argument("--model", type=Path, help="a model file (e.g. the packaged default) instead of a random "
                                                  "--config model: then the output length is the real one")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--sheet", type=parse_sheet, metavar="WxH", help="the drawing's sheet in mm, as `predict --sheet` takes it: "
                                                      "sizes are then re-read (default: inferred, as `predict` "
                                                      "without --sheet does, and sizes stay as read)")
    add_text_arguments(parser, "the image")  # --no-ocr and --find-text, as `predict` has them
    parser.add_argument("--one-look", dest="second_look", action="store_false",
                        help="read the drawing once, without the second look (as `predict --one-look`)")
    parser.add_argument("--folder", type=Path, help="a labelled dataset folder: time its drawings one by one too")
    parser.add_argument("--count", type=positive_int, default=20, help="drawings from the start of --folder (default 20)")
    args = parser.parse_args()

    from cad2program.contract import tokenizer
    from cad2program.reading.ocr import text_crops, written_numbers
    from cad2program.model.configs import get_config
    from cad2program.contract.dataset import load_image
    from cad2program.model.decode import generate
    from cad2program.model.input_pipeline import prepare_image
    from cad2program.model.modelfile import build_model
    from cad2program.reading import Drawing, Recognizer, infer_sheet, run_stages

    records = []  # --folder's drawings, read before anything is timed: a wrong folder fails at once
    if args.folder is not None:
        from cad2program.contract.dataset import load_labels
        from cad2program.errors import UserError

        try:
            records = load_labels(args.folder)[0][:args.count]
        except UserError as err:
            parser.exit(2, f"error: {err}\n")

    if args.model is not None:
        recognizer = Recognizer.load(args.model, max_batch=1, read_text=args.read_text, second_look=args.second_look,
                                     text_finder=args.find_text)
        config = recognizer.config
    else:
        config = get_config(args.config)
        recognizer = Recognizer(config, build_model(config), max_batch=1, read_text=args.read_text,
                                second_look=args.second_look, text_finder=args.find_text)
    image = load_image(args.image) if args.image.exists() else np.full((362, 512), 255, np.uint8)
    sheet = args.sheet or infer_sheet(image)

    start = time.perf_counter()
    recognizer.recognize([image], [sheet])
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        recognizer.recognize([image], [sheet])
        times.append(time.perf_counter() - start)

    # Each stage of the pipeline timed on its own, over the same drawing (`reading.pipeline`).
    stage_times: dict[str, list[float]] = {stage.name: [] for stage in recognizer.stages}
    for _ in range(args.repeats):
        drawing = Drawing.of(image, sheet, recognizer.image_size)
        for stage in recognizer.stages:
            start = time.perf_counter()
            run_stages(recognizer, [drawing], [stage])
            stage_times[stage.name].append(time.perf_counter() - start)
    stage_ms = {name: round(1000 * statistics.median(ts), 1) for name, ts in stage_times.items()}
    names = list(stage_ms)
    second_look = names[names.index("erase found"):names.index("add candidates") + 1] if args.second_look else []
    refine_ms = round(sum(ms for name, ms in stage_ms.items() if name not in ("read", *second_look)), 1)
    second_look_ms = round(sum(stage_ms[name] for name in second_look), 1) if second_look else None

    find_times = []  # of which finding (and cutting out) the text: the ink grouped, or the detector on both views
    for _ in range(args.repeats if args.read_text else 0):
        start = time.perf_counter()
        text_crops(image, args.find_text)
        find_times.append(time.perf_counter() - start)

    ocr_times = []
    for _ in range(args.repeats if args.read_text else 0):
        start = time.perf_counter()
        written_numbers(image, args.find_text)
        ocr_times.append(time.perf_counter() - start)

    folder_times = []
    if args.folder is not None:
        from cad2program.refine import import_deferred

        import_deferred()
        recognizer.warm_up_rereading()
        for record in records:
            drawing = load_image(record.image_path)
            start = time.perf_counter()
            recognizer.recognize([drawing], [record.sheet])
            folder_times.append(time.perf_counter() - start)

    tokens, _ = generate(recognizer.split, prepare_image(image, recognizer.image_size)[None],
                         np.array([tokenizer.encode_prompt(sheet)], np.int32), recognizer.grammar, recognizer.options,
                         limits=np.array([tokenizer.value_limits(sheet)], np.int32))
    generated = int(np.sum(tokens[0] != tokenizer.PAD))
    print(json.dumps({
        "config": config.name, "model": str(args.model) if args.model else "random", "image_size": config.model.image_size, "batch": 1, "decoding": "greedy",
        "image": str(args.image) if args.image.exists() else "blank 512 x 362",
        "sheet": f"{sheet.width:g}x{sheet.height:g}" + ("" if args.sheet else " (inferred: sizes stay as read)"),
        "first_call_s": round(first, 2),
        "warm_ms_per_drawing_median": round(1000 * statistics.median(times), 1),
        "warm_ms_per_drawing_min": round(1000 * min(times), 1),
        "refine_ms_median": refine_ms,
        "stage_ms_median": stage_ms,
        "ocr_ms_median": round(1000 * statistics.median(ocr_times), 1) if ocr_times else None,
        "text_finder": args.find_text if args.read_text else None,
        "ocr_find_ms_median": round(1000 * statistics.median(find_times), 1) if find_times else None,
        "second_look_ms_median": second_look_ms,
        "repeats": args.repeats, "generated_tokens": generated,
        **({"folder": str(args.folder), "folder_drawings": len(folder_times),
            "folder_ms_median": round(1000 * statistics.median(folder_times), 1),
            "folder_ms_p90": round(1000 * float(np.percentile(folder_times, 90)), 1),
            "folder_ms_max": round(1000 * max(folder_times), 1)} if folder_times else {}),
        "max_new_tokens": recognizer.options.max_new_tokens,
        "warm_ms_per_token": round(1000 * statistics.median(times) / max(generated, 1), 2),
        "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(), "jax": jax.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
