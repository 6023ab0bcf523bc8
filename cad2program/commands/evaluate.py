"""Score a model on labelled dataset folders, as the contract's section 5 says.

Reads every drawing of each --data folder (labels.jsonl + images) with the sheet size its label
gives, matches the recognised primitives with the true ones, and prints F1, precision and recall
(overall and per type), size exactness, drawing accuracy and valid rate, per style where labels
carry one, and the time a drawing took. Label lines that cannot be used are listed and skipped; a
good line whose image is missing or cannot be read is scored as an empty, invalid prediction, as
scoring a prediction file does (an 'error:' line says which, and the exit status is 1).

The prediction file (--out) scores the same with 'scoring.score_files' as here: this command scores
those very lines. With several folders, a summary table gives one row per folder and one for all,
--out is a folder (one NAME.jsonl per dataset) and the --report JSON holds every report.

With --geometry-only (drawings without dimensions, such as real drawings people made), rectangles and
polylines are counted as their sides on both sides before matching and size exactness is not scored.

examples:
  cad2program eval --data testsets/clean --model runs/cpu --report clean.json
  cad2program eval --data testsets/battery/real-librecad/dev --geometry-only
  cad2program eval --data testsets/clean testsets/sketch testsets/scan testsets/photo --model runs/cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cad2program.commands.reader_options import add_model_arguments, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR",
                        help="labelled dataset folders (labels.jsonl + images)")
    add_model_arguments(parser)
    parser.add_argument("--out", metavar="PRED.jsonl",
                        help="write the predictions here (a folder when there are several --data folders)")
    parser.add_argument("--report", metavar="REPORT.json", help="write the full report as JSON")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="only the first N drawings of each folder")
    parser.add_argument("--geometry-only", action="store_true",
                        help="score the geometry alone, for drawings without dimensions: rectangles and "
                             "polylines count as their sides (lines) on both sides, no size exactness")


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def evaluate_folder(recognizer, folder: Path, batch_size: int, limit: int | None = None,
                    geometry_only: bool = False) -> tuple[dict, list[dict], list, str]:
    """Reads and scores one folder -> (report, prediction lines, scoring items, a line on the time taken).

    The report is `scoring.score`'s (geometry only when asked) plus data, unreadable_images (scored as
    empty and invalid) and timing.
    """
    from cad2program.commands.predict import Job, Timing, prediction_line, recognize_jobs, warm_up
    from cad2program.contract.dataset import load_dataset
    from cad2program.evaluation.scoring import prediction_primitives, score

    # Images are checked as they are read, not up front: one that fails is scored as empty and invalid,
    # exactly as score_files scores a drawing without a prediction, so the two always agree.
    records = load_dataset(folder, logger=_log, check_images=False)
    if limit is not None:
        records = records[:limit]
    jobs = [Job(r.image_key, r.image_path, r.sheet, r.image_key) for r in records]
    timing = Timing()
    warm_up(recognizer, [len(jobs)], batch_size, timing)
    started = time.perf_counter()
    lines, items, failed = [], [], 0
    outcomes = recognize_jobs(recognizer, jobs, batch_size, timing, desc=f"eval {folder.name or folder}")
    for record, outcome in zip(records, outcomes):
        predicted = None  # an image that cannot be read is an empty, invalid prediction
        if outcome.error is not None:
            failed += 1
            _log(f"error: {record.image_path}: {outcome.error} (scored as an empty, invalid prediction)")
        else:
            line = prediction_line(record.image_key, outcome.recognition)
            lines.append(line)
            # Scored from the written line, exactly as score_files scores the prediction file.
            predicted, _ = prediction_primitives(line, record.sheet)
        items.append((predicted, record.primitives, record.sheet, record.extra.get("style")))
    report = score(items, geometry_only)
    report["data"] = str(folder)
    report["unreadable_images"] = failed
    report["timing"] = {**timing.to_json(), "wall_seconds": round(time.perf_counter() - started, 3)}
    return report, lines, items, timing.summary()


def summary_table(reports: dict[str, dict], combined: dict) -> str:
    """One row per dataset and one for all of them."""
    from cad2program.evaluation.scoring import SCORE_COLUMNS, score_columns

    width = max(12, *(len(name) + 2 for name in reports))
    lines = [f"{'dataset':<{width}}{'drawings':>9}{SCORE_COLUMNS}{'ms/drawing':>12}"]
    for name, row in list(reports.items()) + [("all", combined)]:
        ms = row.get("timing", {}).get("ms_per_drawing")
        lines.append(f"{name:<{width}}{row['drawings']:>9}{score_columns(row)}"
                     f"{'-' if ms is None else f'{ms:.0f}':>12}")
    return "\n".join(lines)


def _dataset_names(folders: list[Path]) -> list[str]:
    """Short unique names: the folder's name, or its whole path when two share a name."""
    names = [folder.resolve().name for folder in folders]
    return [name if names.count(name) == 1 else str(folder) for name, folder in zip(names, folders)]


def run(args: argparse.Namespace) -> int:
    from cad2program.commands.reader_options import load_recognizer
    from cad2program.contract.dataset import labels_path, write_labels
    from cad2program.errors import UserError
    from cad2program.outfile import output_problem, write_output
    from cad2program.evaluation.scoring import format_report_table, score

    folders = [Path(d) for d in args.data]
    for folder in folders:
        labels_path(folder)  # a missing folder stops the run before the model loads
    several = len(folders) > 1
    names = _dataset_names(folders)
    if len(set(names)) != len(names):
        raise UserError("--data names the same folder twice")
    if several and args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: several --data folders need a folder here, and this is a file")
    for flag, option in (("--out", None if several else args.out), ("--report", args.report)):
        if option and output_problem(option, flag):
            raise UserError(output_problem(option, flag))

    recognizer = load_recognizer(args)
    decoding = {"method": recognizer.options.method, "beam_width": recognizer.options.beam_width,
                "max_new_tokens": recognizer.options.max_new_tokens, "batch_size": args.batch_size,
                "engine": args.engine}
    reports, all_items, failed = {}, [], 0
    for name, folder in zip(names, folders):
        report, lines, items, time_text = evaluate_folder(recognizer, folder, args.batch_size, args.limit,
                                                          args.geometry_only)
        report["model"], report["decoding"] = args.model or "(the package's default model)", decoding
        reports[name], failed = report, failed + report["unreadable_images"]
        all_items += items
        if args.out:
            path = Path(args.out) / f"{name.replace('/', '_')}.jsonl" if several else Path(args.out)
            write_labels(path, lines)
            _log(f"wrote {len(lines)} predictions to {path}")
        if not several:
            print(format_report_table(report))
        print(f"{name}: {time_text}")
    # vLLM's engine runs in this process (`vllm_engine.CPU_ENVIRONMENT`): an error before this line
    # ends the process and the engine with it.
    recognizer.close()

    if several:
        combined = score(all_items, args.geometry_only)
        drawings = sum(r["timing"]["drawings"] for r in reports.values())
        seconds = sum(r["timing"]["load_seconds"] + r["timing"]["recognize_seconds"] for r in reports.values())
        combined["timing"] = {"drawings": drawings, "ms_per_drawing": round(1000 * seconds / drawings, 1)
                              if drawings else None}
        print()
        print(format_report_table(combined))
        print()
        print(summary_table(reports, combined))
        payload = {"model": args.model or "(the package's default model)", "decoding": decoding,
                   "combined": combined, "datasets": reports}
    else:
        payload = reports[names[0]]
    if args.report:
        write_output(args.report, json.dumps(payload, indent=2) + "\n", "--report")
        _log(f"wrote the report to {args.report}")
    return 1 if failed else 0

