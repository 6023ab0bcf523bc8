"""Training: teacher-forced cross-entropy, AdamW, data parallelism, exact resumption, evaluation.

`train_and_evaluate(config, workdir, ...)` is the whole job; the CLI is a thin layer over it.
- Data: drawings generated on the fly (no folder needed) or a dataset folder (fine-tuning, with a
  validation split); the stream position is a single example index stored in every checkpoint.
- Scale: one `jax.sharding.Mesh` over every device (and every host after `jax.distributed`):
  the batch is split along the `data` axis, parameters and optimizer state are replicated.
- Checkpoints (Orbax): parameters, optimizer state, step, data position and RNG; a run started
  again in the same workdir resumes exactly where the last checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cad2program.contract import tokenizer
from cad2program.model.configs import TrainConfig, config_to_dict
from cad2program.model.input_pipeline import (RETRIES, RETRY_SEED_STEP, TEST_SET_SEEDS, FolderExamples,
                                              SyntheticExamples, batches)
from cad2program.errors import UserError
from cad2program.training.checkpoints import Checkpoints
from cad2program.model.modelfile import build_model, export_model, load_model, with_fusion
from cad2program.reading import DEFAULT_SETTINGS, Recognizer, fit_confidence_power

# The held-out drawings of on-the-fly training: one stream for every training seed, so that curves of
# runs with different seeds compare (for seed 0 it is the stream earlier runs used).
EVAL_SEED = 1_000_003
# Seeds of streams training must not draw from: the held-out stream and the fixed test sets.
# A training seed s draws from s + k * RETRY_SEED_STEP, k < RETRIES.
RESERVED_SEEDS = (EVAL_SEED, *TEST_SET_SEEDS.values())


def training_seed_problem(seed: int) -> str | None:
    """Why `seed` cannot seed on-the-fly training (its streams would include held-out drawings), or None."""
    if seed < 0:
        return f"the seed must be >= 0, got {seed}"
    for reserved in RESERVED_SEEDS:
        if (reserved - seed) % RETRY_SEED_STEP == 0 and 0 <= (reserved - seed) // RETRY_SEED_STEP < RETRIES:
            return f"seed {seed} would draw from stream {reserved}, which is held out for evaluation"
    return None


LENGTH_BUCKET = 32  # batches are cut to the longest sequence, rounded up to this: few compilations


# ----------------------------------------------------------------------------------------------
# Optimizer and steps
# ----------------------------------------------------------------------------------------------


def make_schedule(config: TrainConfig) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, min(config.warmup_steps, max(config.steps - 1, 1)), max(config.steps, 2),
        end_value=config.learning_rate * config.end_learning_rate_fraction)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    # No weight decay on norms, biases and other vectors (the usual AdamW practice).
    decay_mask = lambda params: jax.tree_util.tree_map(lambda x: x.ndim >= 2, params)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm),
                       optax.adamw(make_schedule(config), weight_decay=config.weight_decay, mask=decay_mask))


def soft_value_cross_entropy(logits, targets, sigma: float):
    """Cross-entropy whose target, for value tokens, is a Gaussian over the neighbouring values.

    A position token is one of 501 grid steps; with one-hot targets, writing step 251 for 252 is as
    wrong as writing 10, so the model gets no signal for being close while it learns to point.
    Spreading the target over neighbours (sigma in grid steps, far inside the matching tolerance of 10
    steps) rewards nearness, as SimCC and distribution focal loss do for coordinates. Other tokens keep
    one-hot targets. logits (B, T, V), targets (B, T) -> (B, T).
    """
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    hard = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    if sigma <= 0:
        return hard
    first, count = tokenizer.VALUE0, tokenizer.MAX_VALUE + 1
    value = (targets - first).astype(jnp.float32)[..., None]  # (B, T, 1)
    grid = jnp.arange(count, dtype=jnp.float32)
    weights = jnp.exp(-0.5 * ((grid - value) / sigma) ** 2)
    weights = weights / weights.sum(-1, keepdims=True)  # (B, T, 501)
    soft = -(weights * log_probs[..., first:first + count]).sum(-1)
    is_value = (targets >= first) & (targets < first + count)
    return jnp.where(is_value, soft, hard)


KEYPOINT_POSITIVE_WEIGHT = 10.0


def loss_fn(params, graphdef, batch, value_label_sigma: float = 0.0, keypoint_weight: float = 0.0):
    """Mean cross-entropy over program tokens (the prompt and padding are not targets), plus the
    per-patch key-point cross-entropy times `keypoint_weight` when the batch has key-point maps."""
    model = nnx.merge(graphdef, params)
    tokens = batch["tokens"]
    logits, aux = model(batch["image"], tokens[:, :-1])  # (B, T-1, V)
    targets = tokens[:, 1:]
    is_program = jnp.arange(targets.shape[1]) >= tokenizer.PROMPT_LENGTH - 1  # first target: after <bos>
    mask = (targets != tokenizer.PAD) & is_program[None, :]
    ce = soft_value_cross_entropy(logits, targets, value_label_sigma)
    count = jnp.maximum(mask.sum(), 1)
    loss = (ce * mask).sum() / count
    accuracy = ((logits.argmax(-1) == targets) & mask).sum() / count
    metrics = {"token_accuracy": accuracy}
    if "keypoints" in batch:  # present only when the config has the key-point task (TrainConfig.keypoint_grid)
        keypoints = batch["keypoints"].reshape(tokens.shape[0], -1)  # (B, N)
        per_patch = optax.softmax_cross_entropy_with_integer_labels(aux["keypoint_logits"], keypoints)
        # About 3% of patches hold a key point; unweighted, "nothing anywhere" is a cheap optimum.
        weights = jnp.where(keypoints > 0, KEYPOINT_POSITIVE_WEIGHT, 1.0)
        keypoint_loss = (per_patch * weights).sum() / weights.sum()
        metrics["keypoint_loss"] = keypoint_loss
        loss = loss + keypoint_weight * keypoint_loss
    return loss, metrics


def make_train_step(graphdef, optimizer: optax.GradientTransformation, mesh: Mesh | None = None,
                    value_label_sigma: float = 0.0, keypoint_weight: float = 0.0):
    """A jit-compiled `(params, opt_state, batch) -> (params, opt_state, metrics)`.

    With a mesh, the batch comes sharded along `data` and parameters replicated; XLA inserts the
    gradient all-reduce. Without one, the same function runs on the default device.
    """

    def train_step(params, opt_state, batch):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, graphdef, batch, value_label_sigma,
                                                                        keypoint_weight)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, "grad_norm": optax.global_norm(grads), **aux}

    if mesh is None:
        return jax.jit(train_step, donate_argnums=(0, 1))
    replicated = NamedSharding(mesh, P())
    return jax.jit(train_step, donate_argnums=(0, 1), out_shardings=(replicated, replicated, replicated))


@functools.lru_cache(maxsize=4)
def compiled_training(graphdef, config: TrainConfig, mesh: Mesh | None):
    """(optimizer, train_step) for a model structure and config, built once per process.

    A run resumed in the same process (tests, notebooks) then reuses the compiled step.
    """
    optimizer = make_optimizer(config)
    return optimizer, make_train_step(graphdef, optimizer, mesh, config.value_label_sigma, config.keypoint_weight)


# ----------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("data",))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Host-local numpy batch -> global arrays split along the mesh's `data` axis (multi-host ready)."""
    sharding = NamedSharding(mesh, P("data"))
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))


def trim_batch(batch: dict) -> dict:
    """Cuts the token axis to the longest sequence (rounded up to LENGTH_BUCKET)."""
    lengths = (batch["tokens"] != tokenizer.PAD).sum(axis=1)
    keep = min(batch["tokens"].shape[1], int(-(-(lengths.max() + 1) // LENGTH_BUCKET) * LENGTH_BUCKET))
    return {**batch, "tokens": batch["tokens"][:, :keep]}


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class EvalSet:
    """A fixed held-out batch: prepared images, sheets, true primitives and styles."""

    images: np.ndarray
    sheets: list
    primitives: list
    styles: list


def synthetic_eval_set(config: TrainConfig, count: int) -> EvalSet:
    from cad2program.synth import GeneratorConfig, make_example
    from cad2program.model.input_pipeline import prepare_image
    generator = GeneratorConfig(style=config.style, long_side_px=config.model.image_size)
    images, sheets, primitives, styles = [], [], [], []
    index = 0
    while len(images) < count:
        example = make_example(EVAL_SEED, index, generator)
        index += 1
        if len(tokenizer.encode(example.sheet, example.primitives)) > config.max_tokens:
            continue
        images.append(prepare_image(example.image, config.model.image_size))
        sheets.append(example.sheet)
        primitives.append(example.primitives)
        styles.append(example.style)
    return EvalSet(np.stack(images), sheets, primitives, styles)


def folder_eval_set(records, image_size: int) -> EvalSet:
    from cad2program.contract.dataset import load_image
    from cad2program.model.input_pipeline import prepare_image
    return EvalSet(np.stack([prepare_image(load_image(r.image_path), image_size) for r in records]),
                   [r.sheet for r in records], [r.primitives for r in records],
                   [r.extra.get("style") for r in records])


def evaluate(recognizer: Recognizer, eval_set: EvalSet) -> tuple[dict, list]:
    """Greedy-decodes the eval set and scores it as the contract says; returns (report, recognitions)."""
    from cad2program.evaluation.scoring import score
    recognitions = []
    for start in range(0, len(eval_set.images), recognizer.max_batch):
        recognitions += recognizer.recognize_prepared(eval_set.images[start:start + recognizer.max_batch],
                                                      eval_set.sheets[start:start + recognizer.max_batch])
    items = [(r.primitives if r.valid else None, truth, sheet, style)
             for r, truth, sheet, style in zip(recognitions, eval_set.primitives, eval_set.sheets, eval_set.styles)]
    return score(items), recognitions


def confidence_calibration(recognitions, eval_set: EvalSet) -> dict:
    """Fits the confidence power of exported models on the held-out drawings (`fit_confidence_power`)."""
    from cad2program.evaluation.scoring import matched_flags
    confidences, matched = [], []
    for r, truth, sheet in zip(recognitions, eval_set.primitives, eval_set.sheets):
        confidences += r.confidences
        matched += matched_flags(r.primitives, truth, sheet)
    return {"confidence_power": fit_confidence_power(confidences, matched)}


def eval_scalars(report: dict) -> dict[str, float]:
    # A ratio with nothing to count (no matched sizes yet) is reported as null by scoring: skip it.
    scalars = {k: float(report[k]) for k in ("f1", "precision", "recall", "size_exactness", "drawing_accuracy",
                                             "valid_rate") if report.get(k) is not None}
    for type_name, metrics in report.get("per_type", {}).items():
        if metrics.get("true", 0) or metrics.get("predicted", 0):
            scalars[f"f1_{type_name}"] = float(metrics["f1"])
    return scalars


# ----------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------


def data_source(config: TrainConfig, data_dir: Path | None, log: Callable):
    """(examples for training, held-out EvalSet)."""
    if data_dir is None:
        examples = SyntheticExamples(config.seed, config.model.image_size, config.max_tokens, config.style,
                                     config.curriculum, total_examples=config.steps * config.batch_size,
                                     keypoint_grid=config.keypoint_grid, part_share=config.part_share)
        return examples, (synthetic_eval_set(config, config.eval_examples) if config.eval_examples else None)
    from cad2program.contract.dataset import load_dataset
    records = load_dataset(Path(data_dir), logger=log)
    if len(records) < 2:
        raise UserError(f"{data_dir}: need at least 2 good drawings to train and validate, found {len(records)}")
    order = np.random.default_rng(config.seed).permutation(len(records))
    n_val = max(1, int(round(len(records) * config.validation_fraction)))
    val = [records[i] for i in order[:n_val]]
    train = [records[i] for i in order[n_val:]]
    log(f"data: {len(train)} drawings for training, {len(val)} held out for validation ({data_dir})")
    examples = FolderExamples(train, config.model.image_size, config.max_tokens, config.keypoint_grid)
    if len(examples) == 0:
        raise UserError(f"{data_dir}: no drawing's program fits in {config.max_tokens} tokens")
    return examples, folder_eval_set(val, config.model.image_size)


def train_and_evaluate(config: TrainConfig, workdir: Path, data_dir: Path | None = None,
                       init_from: Path | None = None, tracker=None, log: Callable = print,
                       progress: bool = True, stop_at_step: int | None = None,
                       time_budget_s: float | None = None, fusion: str | None = None) -> dict:
    """Trains `config.steps` steps in `workdir` (resuming from its latest checkpoint); returns a summary.

    `stop_at_step` / `time_budget_s` end this run early (with a checkpoint) without changing the
    schedule, so that a long run can be done in pieces that resume exactly.

    `init_from`: an exported model (or workdir) whose parameters start the run (fine-tuning); its model
    config replaces `config.model`. `fusion` ("prefix" or "cross_attention"): the run's model is fused
    that way, starting from the parameters both fusions share (`modelfile.with_fusion`).
    """
    from tqdm import tqdm

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if init_from is not None:
        init_config, init_model, _ = load_model(Path(init_from))
        config = config.replace(model=init_config.model)
        model = init_model
        if fusion is not None and fusion != config.model.fusion:
            config, model = with_fusion(config, model, fusion, config.seed)
            log(f"init: {fusion} model, from the parameters it shares with the model in {init_from}")
        else:
            log(f"init: parameters from {init_from}")
    else:
        if fusion is not None:
            config = config.replace(model=dataclasses.replace(config.model, fusion=fusion))
        model = build_model(config, config.seed)
    (workdir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    graphdef, params = nnx.split(model)
    mesh = make_mesh()
    optimizer, train_step = compiled_training(graphdef, config, mesh)
    opt_state = optimizer.init(params)
    schedule = make_schedule(config)

    if config.batch_size % (mesh.size) != 0:
        raise UserError(f"batch size {config.batch_size} does not split over {mesh.size} devices")
    checkpoints = Checkpoints(workdir / "checkpoints")
    step, examples_seen, best = 0, 0, None
    calibration: dict = {}  # from the latest evaluation, written into exported models
    rng = jax.random.key(config.seed)
    restored = checkpoints.restore_latest(params, opt_state, log)
    if restored is not None:
        params, opt_state, meta = restored
        step, examples_seen, best = meta["step"], meta["examples_seen"], meta.get("best")
        calibration = meta.get("calibration") or {}
        rng = jax.random.wrap_key_data(jnp.asarray(meta["rng"], jnp.uint32))
        log(f"resume: step {step}, {examples_seen} drawings seen, from {workdir / 'checkpoints'}")
    for name in ("train_log.jsonl", "eval_log.jsonl"):  # steps after the checkpoint are done again: once in the log
        drop_log_lines_after(workdir / name, step)
    params, opt_state = replicate(params, mesh), replicate(opt_state, mesh)

    examples, eval_set = data_source(config, data_dir, log)
    # Each host reads its own slice of every global batch.
    local_batch = config.batch_size // jax.process_count()
    stream = batches(examples, local_batch, start_example=examples_seen // jax.process_count(),
                     shuffle_seed=config.seed if data_dir is not None else None, workers=config.data_workers)

    def save(final: bool = False):
        meta = {"step": step, "examples_seen": examples_seen, "best": best, "calibration": calibration,
                "rng": np.asarray(jax.random.key_data(rng)).tolist(), "config": config_to_dict(config)}
        checkpoints.save(step, params, opt_state, meta)
        export_model(workdir / "model.msgpack", config, params,
                     {"step": step, "examples_seen": examples_seen, **calibration,
                      "reading": DEFAULT_SETTINGS.to_json()})  # the settings its evaluation read with
        if tracker is not None and final:
            tracker.register_model(workdir / "model.msgpack", "final", metadata={"step": step})

    def run_eval():
        nonlocal best, calibration
        recognizer = Recognizer(config, (graphdef, params), read_text=False, second_look=False)  # the model's own
        report, recognitions = evaluate(recognizer, eval_set)
        scalars = eval_scalars(report)
        calibration = confidence_calibration(recognitions, eval_set)
        log(f"eval @ step {step} ({examples_seen} drawings seen): " +
            ", ".join(f"{k} {v:.3f}" for k, v in scalars.items() if "_" not in k or k == "size_exactness"))
        with open(workdir / "eval_log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "examples_seen": examples_seen, **scalars}) + "\n")
        score = scalars.get("f1", 0.0) + scalars.get("size_exactness", 0.0)
        if best is None or score > best["score"]:
            best = {"score": score, "step": step, **scalars}
            export_model(workdir / "best_model.msgpack", config, params, {"step": step, **scalars, **calibration,
                                                                            "reading": DEFAULT_SETTINGS.to_json()})
            if tracker is not None:
                tracker.register_model(workdir / "best_model.msgpack", "best", best=True,
                                       metadata={"step": step, **scalars})
        if tracker is not None:
            tracker.report_scalars(step, scalars, title="eval")
            _report_samples(tracker, eval_set, recognitions, step)
        return scalars

    bar = tqdm(total=config.steps, initial=step, disable=not progress, dynamic_ncols=True, desc="train")
    window_start, window_examples = time.perf_counter(), 0
    last_eval = None
    run_start = time.perf_counter()
    end_step = min(config.steps, stop_at_step or config.steps)
    try:
        while step < end_step:
            if time_budget_s is not None and time.perf_counter() - run_start > time_budget_s:
                log(f"time budget of {time_budget_s:.0f} s used: stopping at step {step}")
                break
            batch = trim_batch(next(stream))
            params, opt_state, metrics = train_step(params, opt_state, shard_batch(batch, mesh))
            step += 1
            examples_seen += config.batch_size
            window_examples += config.batch_size
            if step % config.log_every == 0 or step == config.steps:
                metrics = {k: float(v) for k, v in metrics.items()}
                elapsed = time.perf_counter() - window_start
                metrics["samples_per_s"] = window_examples / max(elapsed, 1e-9)
                metrics["lr"] = float(schedule(step))
                window_start, window_examples = time.perf_counter(), 0
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['token_accuracy']:.3f}",
                                lr=f"{metrics['lr']:.1e}", sps=f"{metrics['samples_per_s']:.1f}")
                with open(workdir / "train_log.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, "examples_seen": examples_seen, **metrics}) + "\n")
                if tracker is not None:
                    tracker.report_scalars(step, metrics, title="train")
            bar.update(1)
            if config.eval_examples and (step % config.eval_every == 0 or step == config.steps):
                last_eval = run_eval()
            if step % config.checkpoint_every == 0 or step == config.steps:
                save(final=step == config.steps)
    finally:
        bar.close()
        if step > 0 and checkpoints.latest_step() != step:
            save()  # an interrupted run keeps its progress
            if tracker is not None:  # and its task holds the model it stopped with (a time budget's end)
                tracker.register_model(workdir / "model.msgpack", "latest", metadata={"step": step})
        checkpoints.wait()
        checkpoints.close()
    return {"step": step, "examples_seen": examples_seen, "eval": last_eval, "best": best,
            "model": str(workdir / "model.msgpack")}


def drop_log_lines_after(path: Path, step: int) -> None:
    """Keeps the lines of a JSON-lines log up to `step` (the checkpoint a run resumes from), so that the
    steps it does again after a crash appear once, not twice. A line cut off by the crash goes too."""
    from cad2program.outfile import write_output

    if not path.is_file():
        return
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            logged = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            logged = None
        if isinstance(logged, int) and logged <= step:
            kept.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        write_output(path, "".join(kept), what="log")


def _report_samples(tracker, eval_set: EvalSet, recognitions, step: int, count: int = 3):
    """A few held-out drawings with the predicted program drawn over them (ClearML debug samples)."""
    import cv2
    from cad2program.outputs import overlay

    for i in range(min(count, len(recognitions))):
        r = recognitions[i]
        # The model's input is the sheet padded to a square: crop back to the sheet before drawing.
        size = eval_set.images.shape[1]
        scale = size / r.sheet.longer_side
        h, w = max(1, round(r.sheet.height * scale)), max(1, round(r.sheet.width * scale))
        image = (255 * (1.0 - eval_set.images[i][:h, :w, 0])).astype(np.uint8)
        png = overlay(image, r.primitives, r.sheet, r.confidences, fmt="png")
        tracker.report_image("samples", f"eval_{i}", step, cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])
