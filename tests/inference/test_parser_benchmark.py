"""The benchmark's generated completions carry the labels they claim (keeps its table honest)."""

from __future__ import annotations

from benchmarks.inference import MALFORMED, TOOLS, format_table, generate, naive_flags, run
from inference.parsing import ErrorKind, parse_completion


def test_labels_match_what_the_parser_finds() -> None:
    samples = generate(400, seed=1)
    assert {s.kind for s in samples if s.malformed} == set(MALFORMED)
    for sample in samples:
        parsed = parse_completion(sample.text, TOOLS)
        assert parsed.ok is (not sample.malformed), sample
        if sample.kind == "truncated":
            assert ErrorKind.UNCLOSED_TAG in {e.kind for e in parsed.errors}


def test_generation_is_deterministic() -> None:
    assert generate(50) == generate(50)


def test_naive_baseline_only_sees_broken_json() -> None:
    samples = generate(400, seed=2)
    flagged = {s.kind for s in samples if naive_flags(s.text)}
    assert flagged == {"invalid_json"}


def test_report_has_both_parsers() -> None:
    table = format_table(run(count=100, repeat=1))
    assert "| inference.parsing |" in table
    assert "| naive regex + json.loads |" in table
