"""The synthetic set is deterministic, valid, learnable (arguments spelled out in the user's words)
and near its target length with the tiny tokenizer."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from data_fixtures import tiny_tokenizer

from training import synthetic, synthetic_catalog
from training.data.formats import read_jsonl
from training.data.render import encode_conversation


def test_same_seed_same_data_other_seed_other_data():
    assert synthetic.generate(30, seed=5) == synthetic.generate(30, seed=5)
    assert synthetic.generate(30, seed=5) != synthetic.generate(30, seed=6)


def test_mix_of_scenarios_tools_and_reasoning():
    convs = synthetic.generate(300, seed=0)
    kinds = Counter(c.meta["kind"] for c in convs)
    assert set(kinds) == {"single", "parallel", "multi_step", "no_call"}
    assert min(kinds.values()) >= 30
    assert all(3 <= len(c.tools) <= 6 for c in convs)
    assert sum(bool(m.reasoning) for c in convs for m in c.messages) >= 30
    types = {
        p.get("type")
        for t in synthetic_catalog.CATALOG
        for p in t["function"]["parameters"]["properties"].values()
    }
    assert types == {"string", "integer", "number", "boolean"}
    assert any("enum" in p for t in synthetic_catalog.CATALOG
               for p in t["function"]["parameters"]["properties"].values())  # fmt: skip


def test_every_argument_is_spelled_out_in_the_users_words():
    for conv in synthetic.generate(300, seed=2):
        user = next(m.content for m in conv.messages if m.role == "user")
        calls = [c for m in conv.messages for c in m.tool_calls]
        assert (conv.meta["kind"] == "no_call") == (not calls)
        for call in calls:
            assert call.name in conv.tool_names
            required = conv.tools[[t["function"]["name"] for t in conv.tools].index(call.name)]
            assert set(required["function"]["parameters"]["required"]) <= set(call.arguments)
            for value in call.arguments.values():
                if isinstance(value, bool):
                    continue  # spelled as a phrase ("nonstop only", "with breakfast")
                assert str(value) in user, (value, user)


def test_mean_length_is_near_the_target_with_the_tiny_tokenizer():
    tok = tiny_tokenizer()
    lengths = [len(encode_conversation(tok, c).input_ids) for c in synthetic.generate(200, 3)]
    assert abs(np.mean(lengths) - 800) < 60
    assert np.std(lengths) > 80  # lengths vary, as real data does


def test_written_file_reads_back_as_messages(tmp_path):
    convs = synthetic.generate(10, seed=1)
    path = synthetic.write(tmp_path / "s.jsonl", convs)
    back = [c for _, c in read_jsonl(path, "messages")]
    assert [c.messages for c in back] == [c.messages for c in convs]
    assert [c.tools for c in back] == [c.tools for c in convs]


def test_exact_token_counting_hits_any_target():
    tok = tiny_tokenizer()
    count = synthetic.rendered_length(tok)
    convs = synthetic.generate(60, seed=4, mean_tokens=1200, count_tokens=count)
    assert abs(np.mean([count(c) for c in convs]) - 1200) < 40


def test_an_easier_shorter_set_for_quick_learning():
    tok = tiny_tokenizer()
    convs = synthetic.generate(60, seed=1, tools=["get_weather", "get_time"], max_tools=2,
                               mean_tokens=0)  # fmt: skip
    assert all(c.tool_names <= {"get_weather", "get_time"} for c in convs)
    assert all(len(c.tools) <= 2 for c in convs)
    assert np.mean([len(encode_conversation(tok, c).input_ids) for c in convs]) < 450
    with pytest.raises(ValueError, match="unknown tools"):
        synthetic.generate(1, tools=["launch_rocket"])


def test_cli_writes_the_requested_set(tmp_path):
    out = tmp_path / "s.jsonl"
    argv = ["--output", str(out), "--n", "5", "--tools", "get_time", "--max-tools", "1"]
    assert synthetic.main(synthetic.parse_args(argv)) == 0
    convs = [c for _, c in read_jsonl(out)]
    assert len(convs) == 5
    assert all(c.tool_names == {"get_time"} for c in convs)
