"""Trainer test fixtures: a tiny Qwen3 on disk and packed tool-calling data built from it.

The conversations come from `training.synthetic` (the one generator the e2e run and the training
benchmark use too), in its short, easy form: one or two tools, about 330 tokens each, so two
share a `PACK_LENGTH` pack and every trainer test crosses a sequence boundary.
`training.data.render` tokenises them with the real Qwen3 chat template and its exact
assistant-only loss mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training import synthetic
from training.data.packing import pack_sequences, write_packs
from training.data.render import encode_conversation
from training.tiny import save_tiny

PACK_LENGTH = 768
SHORT = {"tools": ["get_weather", "get_time"], "max_tools": 1, "mean_tokens": 0}


def make_sequences(tokenizer: Any, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    examples = [encode_conversation(tokenizer, c) for c in synthetic.generate(n, seed, **SHORT)]
    return [(e.input_ids, e.labels) for e in examples]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """200 conversations packed two to a `PACK_LENGTH`-token budget (100 packs)."""
    out = tmp_path_factory.mktemp("packed")
    write_packs(
        out,
        pack_sequences(make_sequences(tiny_tokenizer, 200), PACK_LENGTH),
        pack_length=PACK_LENGTH,
        packs_per_shard=16,
    )
    return out


@pytest.fixture(scope="session")
def jsonl_file(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """The same kind of data unpacked (prepare --no-pack layout)."""
    path = tmp_path_factory.mktemp("jsonl") / "train.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for ids, labels in make_sequences(tiny_tokenizer, 60, seed=1):
            f.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
    return path


def build_tiny_config(model_dir: Path, data: Path, out: Path, **overrides: Any) -> Any:
    """A `TrainConfig` for the tiny model; `overrides` are dotted keys (`optim__lr` style)."""
    from training.config import apply_overrides, validate_config

    base: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": 6,
        "seed": 0,
        "num_threads": 1,
        "progress_bar": False,
        "model": {"name_or_path": str(model_dir)},
        "data": {"path": str(data), "pack_length": PACK_LENGTH},
        "optim": {"lr": 3e-3, "warmup_steps": 1, "grad_accum": 2},
        "mlflow": {"tracking_uri": "", "log_system_metrics": False},
    }
    apply_overrides(base, [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in overrides.items()])
    return validate_config(base)


@pytest.fixture
def tiny_config(tiny_model_dir: Path, packed_dir: Path, tmp_path: Path) -> Any:
    """Factory: `tiny_config(**overrides)` -> TrainConfig on the packed fixture data."""

    def make(**overrides: Any) -> Any:
        out = tmp_path / str(overrides.pop("output_dir", "run"))
        return build_tiny_config(tiny_model_dir, packed_dir, out, **overrides)

    return make


@pytest.fixture(scope="session")
def sequences(tiny_tokenizer: Any) -> Any:
    """Factory: `sequences(n, seed)` -> tokenised (input_ids, labels) pairs."""
    return lambda n, seed=0: make_sequences(tiny_tokenizer, n, seed)
