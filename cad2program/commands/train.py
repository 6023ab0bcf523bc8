"""Train a model (on drawings generated on the fly, or on a dataset folder), resuming where it stopped.

Examples:
  cad2program train --workdir runs/cpu --config cpu              # synthetic drawings, 2-core machine
  cad2program train --workdir runs/ft --data my_drawings --init-from runs/cpu --steps 2000 --lr 2e-4
Run the same command again to resume from the workdir's latest checkpoint. The trained model is
exported to WORKDIR/model.msgpack (latest) and WORKDIR/best_model.msgpack (best evaluation).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, required=True, help="folder for checkpoints, logs and exported models")
    parser.add_argument("--config", default="cpu", help="named config: tiny, cpu or gpu (default: cpu)")
    parser.add_argument("--data", type=Path, help="dataset folder to train on (default: drawings generated on the fly)")
    parser.add_argument("--steps", type=int, help="total training steps (default: the config's)")
    parser.add_argument("--init-from", type=Path, help="model file or workdir whose parameters start the run (fine-tuning)")
    parser.add_argument("--fusion", choices=("cross_attention", "prefix"),
                        help="how the image reaches the decoder (default: the config's, or the --init-from model's); "
                             "with --init-from, a model fused the other way starts from the parameters both share. "
                             "prefix models are the ones vLLM can serve (docs/vllm.md)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the config's; fine-tuning: a tenth of it)")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the config's)")
    parser.add_argument("--warmup-steps", type=int,
                        help="steps of learning-rate warm-up (default: the config's; a short fine-tune wants few)")
    parser.add_argument("--style", choices=["clean", "sketch", "scan", "photo", "mixed"],
                        help="style of generated drawings (default: mixed)")
    parser.add_argument("--part-share", type=float, metavar="SHARE",
                        help="share of generated drawings that hold a part-like composition (outlines with holes, "
                             "slots, fillets; default: the config's, 0.4)")
    parser.add_argument("--eval-every", type=int, help="steps between evaluations")
    parser.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="stop this run (with a checkpoint) after this many minutes; the schedule is unchanged, "
                             "so the same command resumes it later")
    parser.add_argument("--no-curriculum", action="store_true", help="full drawing distribution from the first step")
    parser.add_argument("--seed", type=int, help="seed of the generated drawings and of initialisation (default: the "
                                                 "config's, 0); a run continued with --init-from sees fresh drawings "
                                                 "with a new one. The held-out drawings are the same for every seed")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() first (multi-host; the cluster's environment says where)")
    tracking = parser.add_argument_group("experiment tracking (ClearML)")
    tracking.add_argument("--no-clearml", action="store_true", help="do not track the run with ClearML")
    tracking.add_argument("--project", default="CADPrimitives", help="ClearML project (default: CADPrimitives)")
    tracking.add_argument("--task-name", help="ClearML task name (default: from the config and the time)")


def parent_model_record(path: Path) -> dict:
    """What a fine-tune's ClearML task says of the model it starts from: name, path, checksum."""
    import hashlib

    path = Path(path)
    model_file = path if path.is_file() else path / "model.msgpack"
    record = {"name": path.stem if path.is_file() else path.name, "path": str(path.resolve())}
    if model_file.is_file():
        record["sha256"] = hashlib.sha256(model_file.read_bytes()).hexdigest()
    return record


def run(args: argparse.Namespace) -> int:
    import jax

    from cad2program.model.configs import get_config
    from cad2program.errors import UserError
    from cad2program.training.train import train_and_evaluate, training_seed_problem

    if args.distributed:
        jax.distributed.initialize()
    try:
        config = get_config(args.config)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    changes = {"steps": args.steps, "batch_size": args.batch_size, "style": args.style, "eval_every": args.eval_every,
               "seed": args.seed, "warmup_steps": args.warmup_steps, "part_share": args.part_share}
    if args.part_share is not None and not 0.0 <= args.part_share <= 1.0:
        raise UserError(f"--part-share {args.part_share}: must be in [0, 1]")
    if args.seed is not None and (problem := training_seed_problem(args.seed)):
        raise UserError(f"--seed: {problem}")
    if args.lr is not None:
        changes["learning_rate"] = args.lr
    elif args.init_from is not None:
        changes["learning_rate"] = config.learning_rate / 10  # fine-tuning: small steps from a trained model
    if args.no_curriculum or args.init_from is not None or args.data is not None:
        changes["curriculum"] = None
    config = config.replace(**{k: v for k, v in changes.items() if v is not None or k == "curriculum"})
    if args.data is not None and not args.data.is_dir():
        raise UserError(f"{args.data}: not a folder (expected a dataset folder with labels.jsonl)")

    import signal

    from cad2program.integrations.clearml_tracking import Tracker
    tracker = Tracker.start(config, args.workdir, project=args.project, task_name=args.task_name,
                            enabled=not args.no_clearml,
                            parent_model=parent_model_record(args.init_from) if args.init_from else None)

    def stop_gracefully(signum, frame):  # Ctrl-C, a scheduler's stop, `kill`: checkpoint, then exit
        raise KeyboardInterrupt

    # Installed after ClearML's own handlers (Task.init hooks signals), and for SIGINT too: a job
    # started in the background by a non-interactive shell inherits SIGINT as ignored.
    signal.signal(signal.SIGTERM, stop_gracefully)
    signal.signal(signal.SIGINT, stop_gracefully)
    try:
        summary = train_and_evaluate(config, args.workdir, data_dir=args.data, init_from=args.init_from,
                                     tracker=tracker, fusion=args.fusion,
                                     time_budget_s=None if args.time_budget is None else 60 * args.time_budget)
    finally:
        tracker.finish()
    print(f"done: step {summary['step']}, {summary['examples_seen']} drawings seen; model {summary['model']}")
    return 0
