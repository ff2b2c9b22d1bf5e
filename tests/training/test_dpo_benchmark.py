"""`make bench-dpo`'s bookkeeping: every variant gets the same pairs per step, in the same order,
the work accounting says what each trainer computes, and the report's ratios are the measured
ones. (Timings live in the benchmark, never in tests.)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from data_fixtures import tiny_tokenizer

from benchmarks import dpo
from training import prepare, synthetic
from training.data.packing import PackedDataset
from training.data.preference import pairs_in
from training.synthetic_preference import preference_pairs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared pairs as `benchmarks.dpo.build` leaves them (without building its model)."""
    work = tmp_path_factory.mktemp("bench-dpo")
    tok = tiny_tokenizer()
    raw = work / "pairs.jsonl"
    pairs = preference_pairs(synthetic.generate(14, seed=0), seed=0)
    raw.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    prepare.main(
        prepare.PrepareArgs(
            input=raw,
            output=work / "prepared",
            tokenizer="unused",
            task="preference",
            max_length=8192,
            pack=False,
            quiet=True,
        ),
        tokenizer=tok,
    )
    return work


def test_our_packs_and_trls_batches_hold_the_same_pairs_in_order(workdir: Path) -> None:
    packs, length = dpo.write_fixed_packs(workdir, 4)
    ds = PackedDataset(packs)
    trl = dpo.trl_pairs(workdir)
    assert len(ds) == len(trl) // 4  # the tail that does not fill a step is left out
    assert ds.pack_length == length == max(p.num_tokens for p in ds)
    for step in range(len(ds)):
        pack = ds[step]
        assert pairs_in(pack.seq_lens) == 4
        ids = pack.input_ids.tolist()
        at = 0
        for k, pair in enumerate(trl[4 * step : 4 * step + 4]):
            p, c, r = (int(x) for x in pack.seq_lens[3 * k : 3 * k + 3])
            assert ids[at : at + p] == pair["prompt_ids"]
            assert ids[at + p : at + p + c] == pair["chosen_ids"]
            assert ids[at + p + c : at + p + c + r] == pair["rejected_ids"]
            at += p + c + r


def test_work_per_step_counts_the_prompt_once_only_when_shared(workdir: Path) -> None:
    a = argparse.Namespace(shape="R", pairs_per_step=4, warmup=1, steps=2)
    work = dpo.work_per_step(workdir, a, 151_936)
    pairs = dpo.read_pairs(workdir)[:12]
    prompts = sum(len(p.prompt_ids) for p in pairs) / 3
    completions = sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs) / 3
    assert work["ours"]["tokens"] == pytest.approx(prompts + completions)
    assert work["ours_unshared"]["tokens"] == pytest.approx(2 * prompts + completions)
    assert work["ours"]["head_rows"] == work["ours_unshared"]["head_rows"] == completions
    assert work["trl"]["head_rows"] == work["trl"]["tokens"] >= work["ours_unshared"]["tokens"]
    assert work["ours"]["gflop"] < work["ours_unshared"]["gflop"] < work["trl"]["gflop"]


def test_report_states_the_measured_ratios_and_shares() -> None:
    def run(seconds: float, peak: float) -> list[dict[str, float]]:
        return [{"seconds": seconds, "pairs": 8, "loss_tokens": 800, "peak_mb": peak}]

    saved = {
        "args": {
            "shape": "R",
            "vocab": 151936,
            "pairs_per_step": 4,
            "steps": 2,
            "warmup": 1,
            "rounds": 1,
        },
        "data": {"mix": "schema-heavy: ...", "train_pairs": 64},
        "check": {
            "pairs": 4,
            "ours_loss": 0.7,
            "trl_loss": 0.7,
            "loss_diff": 1e-6,
            "policy_logp_diff": 1e-4,
            "reference_logp_diff": 1e-4,
        },
        "work": {
            v: {"tokens": 1.0, "head_rows": 1.0, "gflop": 1.0}
            for v in ("ours", "ours_unshared", "ours_unshared_full_head", "trl")
        },
        "runs": {
            "floor_ours": run(0, 1000),
            "floor_trl": run(0, 1100),
            "trl": run(40, 5100),
            "ours_unshared_full_head": run(20, 3000),
            "ours_unshared": run(8, 2000),
            "ours_copy_ref": run(5, 2500),
            "ours": run(4, 1600),
        },
    }
    text = dpo.report(saved)
    row = "| + prompt computed once (ours as shipped) | 2.000 | 200.0 | 600 | 10.00x | 0.15x |"
    assert row in text
    # 40 -> 20 -> 8 -> 4 seconds: 2x (30%), 2.5x (40%), 2x (30%) of 10x on a log scale.
    assert "ours, TRL's layout (prompt twice), logits at every position 2.00x (30%)" in text
    assert "logits only at completion tokens 2.50x (40%)" in text
    assert "prompt computed once (ours as shipped) 2.00x (30%)" in text
    assert "No-copy reference: 1.25x" in text
    assert "the frozen copy adds 900 MB; prompt sharing saves 400 MB" in text
    assert "logits only at completion tokens save 1000 MB" in text
