"""Fixtures for the predict and eval tests: a random tiny model file and a small generated dataset folder."""

from __future__ import annotations

import pytest

from cad2program.model.configs import tiny


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A randomly initialised `tiny` model file: fast to compile and run; its outputs are noise."""
    from flax import nnx

    from cad2program.model.modelfile import build_model, export_model

    config = tiny()
    return export_model(tmp_path_factory.mktemp("model") / "tiny.msgpack", config, nnx.state(build_model(config)))


@pytest.fixture(scope="session")
def drawings_folder(tmp_path_factory):
    """Four generated drawings, two styles (clean and scan: PNG and JPEG), 128 px."""
    from cad2program.synth import GeneratorConfig, write_dataset

    root = tmp_path_factory.mktemp("drawings")
    folder = root / "set"
    write_dataset(folder / "clean", 2, 5, GeneratorConfig(style="clean", long_side_px=128), workers=1, progress=False)
    write_dataset(folder / "scan", 2, 6, GeneratorConfig(style="scan", long_side_px=128), workers=1, progress=False)
    # One folder: images from both, labels naming them by their path in this folder.
    lines = []
    for style in ("clean", "scan"):
        for line in (folder / style / "labels.jsonl").read_text().splitlines():
            lines.append(line.replace('"images/', f'"{style}/images/'))
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def prefix_config(width: int = 64):
    """`tiny` with a `prefix` decoder of head_dim 32 (the export to Hugging Face takes prefix models only,
    and vLLM's CPU attention refuses tiny's head_dim 16)."""
    import dataclasses

    config = tiny()
    return config.replace(model=dataclasses.replace(config.model, fusion="prefix", dec_width=width, dec_heads=2))
