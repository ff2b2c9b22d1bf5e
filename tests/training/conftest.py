"""Trainer test fixtures: a tiny Qwen3 on disk and packed tool-calling data built from it.

The data is tokenised with the real Qwen3 chat template; labels mask everything before the final
assistant turn (a simple rule, enough for trainer tests; `training.render` owns exact masks).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from training.packing import IGNORE_INDEX, pack_sequences, write_packs
from training.tiny import save_tiny

CITIES = ["Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Sydney", "Toronto"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def conversation(rng: random.Random) -> list[dict[str, Any]]:
    city = rng.choice(CITIES)
    unit = rng.choice(["celsius", "fahrenheit"])
    filler = " ".join(rng.choice(CITIES) for _ in range(rng.randint(2, 40)))
    return [
        {"role": "system", "content": f"You are a tool assistant. {filler}"},
        {"role": "user", "content": f"What is the weather in {city} in {unit}?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": city, "unit": unit}},
                }
            ],
        },
    ]


def tokenize(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    full = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    assert full.startswith(prompt)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert ids[: len(p_ids)] == p_ids
    labels = [IGNORE_INDEX] * len(p_ids) + ids[len(p_ids) :]
    return ids, labels


def make_sequences(tokenizer: Any, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [tokenize(tokenizer, conversation(rng)) for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """~200 conversations packed into 512-token budgets."""
    out = tmp_path_factory.mktemp("packed")
    write_packs(
        out,
        pack_sequences(make_sequences(tiny_tokenizer, 200), 512),
        pack_length=512,
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
        "data": {"path": str(data), "pack_length": 512},
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
