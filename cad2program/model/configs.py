"""Named training configurations: plain dataclasses, chosen by name on the command line.

- `tiny`: seconds per step; for tests and smoke runs.
- `cpu`: sized for this project's 2-core development machine (measured ~10 drawings/s, batch 32).
- `gpu`: a larger model for a single accelerator (H100-class), bf16 compute, 384 px input.
"""

from __future__ import annotations

import dataclasses

from cad2program.contract import tokenizer
from cad2program.model.input_pipeline import KEYPOINT_CLASSES, Curriculum
from cad2program.model.network import ModelConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    name: str
    model: ModelConfig
    batch_size: int = 32
    steps: int = 10_000
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    end_learning_rate_fraction: float = 0.02  # cosine decay ends at this share of the peak
    weight_decay: float = 0.05
    grad_clip_norm: float = 1.0
    # Targets of position tokens spread over neighbouring grid steps (see train.soft_value_cross_entropy);
    # 0 = one-hot.
    value_label_sigma: float = 0.0
    # Weight of the encoder's auxiliary per-patch key-point loss (needs model.keypoint_classes > 0).
    keypoint_weight: float = 0.0
    max_tokens: int = 192  # prompt + program + <eos>; longer programs are not used for training
    style: str = "mixed"  # generator style for on-the-fly data
    # Share of generated drawings holding a part-like composition (synth.parts); the held-out drawings
    # keep the generator's default, so learning curves stay comparable across runs.
    part_share: float = 0.4
    curriculum: Curriculum | None = Curriculum()
    seed: int = 0
    eval_every: int = 500
    eval_examples: int = 64  # held-out drawings decoded and scored at each evaluation
    checkpoint_every: int = 250
    log_every: int = 10
    data_workers: int = 1  # Grain worker processes rendering drawings
    # Fine-tuning on a folder: share of drawings held out for validation.
    validation_fraction: float = 0.1

    @property
    def keypoint_grid(self) -> int:
        """Patches a side of the key-point maps the run trains on; 0 when it has no key-point task.

        The one switch for that task: it needs a weight and a model with the head (a model that has the
        head can still be fine-tuned without the task, weight 0)."""
        if self.keypoint_weight <= 0 or not self.model.keypoint_classes:
            return 0
        return self.model.image_size // self.model.patch_size

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def tiny() -> TrainConfig:
    model = ModelConfig(vocab_size=tokenizer.VOCAB_SIZE, image_size=64, stem_channels=(8,), patch_size=8,
                        enc_width=32, enc_depth=1, enc_heads=2, enc_mlp_dim=64, dec_width=32, dec_depth=1,
                        dec_heads=2, dec_mlp_dim=64, max_len=192)
    return TrainConfig(name="tiny", model=model, batch_size=8, steps=50, learning_rate=3e-3, warmup_steps=5,
                       eval_every=25, eval_examples=8, checkpoint_every=25, log_every=5, data_workers=0,
                       curriculum=None)


def cpu() -> TrainConfig:
    model = ModelConfig(vocab_size=tokenizer.VOCAB_SIZE, image_size=256, stem_channels=(32, 64), patch_size=16,
                        enc_width=192, enc_depth=4, enc_heads=3, enc_mlp_dim=768, dec_width=192, dec_depth=3,
                        dec_heads=3, dec_mlp_dim=512, max_len=192, keypoint_classes=KEYPOINT_CLASSES)
    return TrainConfig(name="cpu", model=model, batch_size=32, steps=20_000, learning_rate=1e-3,
                       warmup_steps=300, value_label_sigma=2.0, keypoint_weight=1.0)


def gpu() -> TrainConfig:
    # Sized so that the exported model stays under the package's 50 MB budget (float32 parameters).
    model = ModelConfig(vocab_size=tokenizer.VOCAB_SIZE, image_size=384, stem_channels=(32, 64, 128),
                        patch_size=16, enc_width=256, enc_depth=8, enc_heads=4, enc_mlp_dim=1024, dec_width=256,
                        dec_depth=5, dec_heads=4, dec_mlp_dim=640, max_len=192, dtype="bfloat16",
                        keypoint_classes=KEYPOINT_CLASSES)
    return TrainConfig(name="gpu", model=model, batch_size=128, steps=30_000, learning_rate=6e-4,
                       warmup_steps=1000, data_workers=12, value_label_sigma=2.0,
                       keypoint_weight=1.0)


CONFIGS = {"tiny": tiny, "cpu": cpu, "gpu": gpu}


def get_config(name: str) -> TrainConfig:
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(data: dict) -> TrainConfig:
    """Inverse of config_to_dict (checkpoints and exported models store their config as JSON)."""
    data = dict(data)
    model = dict(data.pop("model"))
    model["stem_channels"] = tuple(model.get("stem_channels", ()))
    curriculum = data.pop("curriculum", None)
    if curriculum is not None:
        curriculum = Curriculum(stages=tuple((s[0], s[1], tuple(s[2])) for s in curriculum["stages"]))
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(model=ModelConfig(**model), curriculum=curriculum,
                       **{k: v for k, v in data.items() if k in known})
