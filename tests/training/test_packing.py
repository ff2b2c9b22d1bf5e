"""Best-fit packing keeps every sequence whole, fills budgets tightly, and round-trips to disk."""

import numpy as np
import pytest

from training.data.packing import IGNORE_INDEX, PackedDataset, best_fit, pack_sequences, write_packs


def test_best_fit_places_every_item_once_within_capacity():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 1500, size=500).tolist()
    bins = best_fit(lengths, 2048)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(len(lengths)))
    assert all(b == sorted(b) for b in bins)  # each bin in source order
    assert all(sum(lengths[i] for i in b) <= 2048 for b in bins)
    fill = sum(lengths) / (len(bins) * 2048)
    assert fill > 0.97


def test_best_fit_prefers_tightest_bin():
    # Longest first: 8 opens a bin (2 free), 6 another (4 free), 3 joins the 6 (1 free). The 1
    # fits both; best-fit puts it in the tightest (1 free), filling that bin exactly and leaving
    # 2 tokens of room beside the 8. First-fit decreasing would put it beside the 8 instead:
    # [[0, 3], [1, 2]].
    assert sorted(map(sorted, best_fit([1, 3, 6, 8], 10))) == [[0, 1, 2], [3]]


@pytest.mark.parametrize(
    ("lengths", "message"), [([11], "more than the pack budget"), ([0], "empty")]
)
def test_best_fit_rejects_sequences_it_cannot_place(lengths, message):
    with pytest.raises(ValueError, match=message):
        best_fit(lengths, 10)


def test_packs_round_trip_with_positions_restarting(tmp_path):
    seqs = [
        ([1, 2, 3], [IGNORE_INDEX, 2, 3]),
        ([4, 5], [IGNORE_INDEX, 5]),
        ([6, 7, 8, 9], [IGNORE_INDEX, IGNORE_INDEX, 8, 9]),
    ]
    packs = pack_sequences(seqs, capacity=6)
    write_packs(tmp_path, packs, pack_length=6, packs_per_shard=1)
    ds = PackedDataset(tmp_path)
    assert len(ds) == 2
    got = {tuple(p.input_ids.tolist()): p for p in ds}
    assert set(got) == {(1, 2, 3), (4, 5, 6, 7, 8, 9)}
    two = got[(4, 5, 6, 7, 8, 9)]
    assert two.seq_lens.tolist() == [2, 4]
    assert two.position_ids().tolist() == [0, 1, 0, 1, 2, 3]
    assert two.labels.tolist() == [IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX, 8, 9]
    assert ds.manifest["num_loss_tokens"] == 5


def test_mismatched_labels_are_rejected():
    with pytest.raises(ValueError, match="sequence 0: 2 input_ids but 1 labels"):
        pack_sequences([([1, 2], [2])], capacity=4)
