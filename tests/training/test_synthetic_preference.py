"""Synthetic preference pairs: deterministic, in TRL's conversational format with the data's own
message representation, and every `rejected` has exactly the defect its label names, as the
inference parser and scorer judge it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from inference.parsing import ErrorKind, parse_message
from inference.scoring import score_calls
from training import synthetic
from training.synthetic_preference import MISTAKES, preference_pairs

# The defect each label means, as the parser reports it on the rejected message.
ERROR_OF = {
    "missing_argument": ErrorKind.MISSING_ARGUMENT,
    "invented_argument": ErrorKind.UNEXPECTED_ARGUMENT,
    "wrong_type": ErrorKind.WRONG_TYPE,
    "hallucinated_tool": ErrorKind.UNKNOWN_TOOL,
}


@pytest.fixture(scope="module")
def data() -> tuple[list[Any], list[dict[str, Any]]]:
    convs = synthetic.generate(300, seed=0, mean_tokens=0)
    return convs, preference_pairs(convs, seed=0)


def test_same_seed_same_pairs_other_seed_other_pairs():
    convs = synthetic.generate(60, seed=3, mean_tokens=0)
    assert preference_pairs(convs, seed=3) == preference_pairs(convs, seed=3)
    assert preference_pairs(convs, seed=3) != preference_pairs(convs, seed=4)


def test_every_mistake_occurs_and_call_mistakes_are_balanced(data):
    _, pairs = data
    kinds = Counter(p["meta"]["mistake"] for p in pairs)
    assert set(kinds) == set(MISTAKES)
    call_kinds = [kinds[k] for k in MISTAKES if k != "needless_call"]
    assert max(call_kinds) - min(call_kinds) <= 2
    assert kinds["needless_call"] >= 30
    scenarios = {p["meta"]["scenario"] for p in pairs if p["meta"]["mistake"] == "needless_call"}
    assert scenarios == {"no_call", "multi_step"}  # chit-chat and the answer after a result


def test_records_reuse_the_conversations_own_messages(data):
    convs, pairs = data
    turns: Counter[int] = Counter()
    for conv, pair in zip(convs, pairs, strict=True):
        assert set(pair) == {"prompt", "chosen", "rejected", "tools", "meta"}
        record = conv.to_record()
        turn = pair["meta"]["turn"]
        assert pair["meta"]["scenario"] == conv.meta["kind"]
        assert pair["prompt"] == record["messages"][:turn]
        assert pair["chosen"] == [record["messages"][turn]]
        assert pair["tools"] == record["tools"]
        assert pair["prompt"][0]["role"] == "system"
        assert pair["prompt"][-1]["role"] in {"user", "tool"}
        assert [m["role"] for m in pair["chosen"] + pair["rejected"]] == ["assistant"] * 2
        for call in pair["rejected"][0].get("tool_calls", ()):
            assert set(call) == {"type", "function"}
            assert isinstance(call["function"]["arguments"], str)
        assert pair["rejected"] != pair["chosen"]
        json.dumps(pair)
        if conv.meta["kind"] == "multi_step":
            turns[turn] += 1
    assert set(turns) == {2, 4}  # both the call turn and the final answer get picked
    assert min(turns.values()) >= 20


def test_chosen_is_the_datas_valid_turn(data):
    convs, pairs = data
    for conv, pair in zip(convs, pairs, strict=True):
        parsed = parse_message(pair["chosen"][0], pair["tools"])
        assert parsed.ok, parsed.errors
        turn = conv.messages[pair["meta"]["turn"]]
        expected = [{"name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
        assert score_calls(parsed.tool_calls, expected).exact


def test_rejected_has_exactly_the_labelled_defect(data):
    _, pairs = data
    for pair in pairs:
        kind, tools = pair["meta"]["mistake"], pair["tools"]
        names = {t["function"]["name"] for t in tools}
        chosen, rejected = pair["chosen"][0], pair["rejected"][0]
        good = parse_message(chosen, tools).tool_calls
        parsed = parse_message(rejected, tools)
        raw_calls = rejected.get("tool_calls", [])
        if kind == "missing_call":
            assert good
            assert not raw_calls
            assert parsed.ok
            assert rejected["content"].strip()
            continue
        if kind == "needless_call":
            assert not good
            assert parsed.ok, parsed.errors
            assert parsed.tool_calls
            assert {c.name for c in parsed.tool_calls} <= names
            continue
        # The mistake is in one call, not in the thinking; every other call is still right.
        assert rejected.get("reasoning_content") == chosen.get("reasoning_content")
        assert len(raw_calls) == len(good)
        score = score_calls(parsed.tool_calls, good, tools)
        if kind == "wrong_value":
            assert parsed.ok, parsed.errors  # schema-valid: only the request says it is wrong
            assert [c.name for c in parsed.tool_calls] == [c.name for c in good]
            assert score.matched == len(good) - 1
            continue
        if kind == "wrong_tool":
            assert parsed.ok, parsed.errors
            assert score.matched == len(good) - 1
            assert score.name_matched == len(good) - 1
            assert {c.name for c in parsed.tool_calls} <= names
            continue
        assert [e.kind for e in parsed.errors] == [ERROR_OF[kind]], (kind, parsed.errors)
        assert score.matched == len(good) - 1
        if kind == "hallucinated_tool":
            assert parsed.errors[0].tool not in names


def test_restricted_catalog_still_gets_a_mistake_for_every_turn():
    convs = synthetic.generate(120, seed=1, tools=["get_weather"], max_tools=1, mean_tokens=0)
    pairs = preference_pairs(convs, seed=1)
    kinds = Counter(p["meta"]["mistake"] for p in pairs)
    assert "wrong_tool" not in kinds  # no other tool is offered
    assert set(kinds) == set(MISTAKES) - {"wrong_tool"}
    assert all(p["rejected"] != p["chosen"] for p in pairs)


def test_cli_writes_one_pair_per_line(tmp_path):
    out = tmp_path / "pref.jsonl"
    argv = ["--preference", "--output", str(out), "--n", "25", "--seed", "2", "--mean-tokens", "0"]
    argv += ["--tools", "get_weather", "get_time", "--max-tools", "2"]
    assert synthetic.main(synthetic.parse_args(argv)) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 25
    assert all({"prompt", "chosen", "rejected", "tools", "meta"} == set(r) for r in records)
    assert all(
        {t["function"]["name"] for t in r["tools"]} <= {"get_weather", "get_time"} for r in records
    )
    convs = synthetic.generate(25, 2, mean_tokens=0, tools=["get_weather", "get_time"], max_tools=2)
    assert records == json.loads(json.dumps(preference_pairs(convs, 2)))
