"""The trainer reads what `training.prepare` writes from the synthetic set, packed or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training import prepare, synthetic, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prepared")
    src = synthetic.write(root / "synthetic.jsonl", synthetic.generate(120, seed=0))
    out = {}
    for pack in (True, False):
        name = "packed" if pack else "unpacked"
        prepare.main(
            prepare.PrepareArgs(
                input=src, output=root / name, tokenizer="unused", max_length=2048,
                pack=pack, quiet=True,
            ),
            tokenizer=tiny_tokenizer,
        )  # fmt: skip
        out[name] = root / name
    return out


@pytest.mark.parametrize("kind", ["packed", "unpacked"])
def test_trains_on_prepared_synthetic_data(
    tiny_config: Any, prepared: dict[str, Path], kind: str
) -> None:
    result = train.main(
        tiny_config(
            max_steps=6, data__path=str(prepared[kind]), data__pack_length=2048,
            optim__grad_accum=1,
        )
    )  # fmt: skip
    assert result.final_loss < result.first_loss
    assert 0.01 < result.metrics["loss_token_fraction"] < 0.6
