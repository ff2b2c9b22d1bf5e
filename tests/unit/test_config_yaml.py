"""Malformed YAML is one ``file: where: reason`` line and exit 1 from ``python -m config
validate``, never a traceback and never a silent guess: repeated keys, bytes that are not UTF-8,
deep nesting and aliases, syntax errors (with line and column), and unquoted values that YAML
turns into numbers, booleans or dates where text is expected."""

from pathlib import Path

import pytest

from config.__main__ import main as config_cli
from config.__main__ import parse_args as config_args
from config.yaml_source import MAX_DEPTH, MAX_VALUES, read_yaml

# A valid BU, as a user writes it (the account quoted); lines are replaced per test.
BU = """\
name: payments
account: "333333333333"
region: us-east-1
network:
  cidr: 10.80.0.0/16
  availability_zones: [us-east-1a, us-east-1b]
tags:
  owner: payments-ml
  cost_center: CC-9000
"""


def validate(tmp_path: Path, text: str | bytes, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The error lines of `python -m config validate` on a file holding ``text``; exit 1."""
    path = tmp_path / "bu.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert config_cli(config_args(["validate", str(path)])) == 1
    return [line.removeprefix(f"{path}: ") for line in capsys.readouterr().err.splitlines()]


def test_the_base_file_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bu.yaml").write_text(BU, encoding="utf-8")
    assert config_cli(config_args(["validate", str(tmp_path / "bu.yaml")])) == 0


def test_a_repeated_key_at_any_depth_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BU.replace("tags:\n", "  cidr: 10.81.0.0/16\ntags:\n  extra: {team: a, team: b}\n") + (
        "name: other\n"
    )
    keep = "YAML would silently keep only the last one; remove one"
    assert validate(tmp_path, text, capsys) == [
        f"network.cidr: duplicate key at line 7, column 3 (first at line 5): {keep}",
        f"tags.extra.team: duplicate key at line 9, column 20 (first at line 9): {keep}",
        f"name: duplicate key at line 12, column 1 (first at line 1): {keep}",
    ]


def test_merge_keys_are_overrides_not_duplicates() -> None:
    document, errors = read_yaml("f.yaml", b"a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 2\n")
    assert errors == []
    assert document is not None
    assert document.data == {"a": {"k": 1, "j": 2}, "b": {"k": 2, "j": 2}}


def test_a_byte_that_is_not_utf8_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BU.replace("CC-9000", "caf\xe9").encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    assert validate(tmp_path, text, capsys) == [
        "<yaml>: line 9, column 19: byte 0xe9 is not UTF-8; save the file as UTF-8"
    ]


def test_very_deep_nesting_is_refused_not_a_recursion_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BU + "  extra: " + "[" * 5000 + "]" * 5000 + "\n"
    # The root mapping, tags and extra's list are levels 1-3: the 31st '[' is level 33.
    column = len("  extra: ") + (MAX_DEPTH - 2) + 1
    assert validate(tmp_path, text, capsys) == [
        f"<yaml>: line 10, column {column}: nested more than {MAX_DEPTH} levels deep"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Ten aliases of ten aliases of ... : 10^6 values from six lines.
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcde", "bcdef", strict=True)
            ),
            f"aliases expand the document past {MAX_VALUES} values",
        ),
        ("a: &a [1, *a]\n", "an alias here repeats a collection inside itself"),
    ],
)
def test_aliases_cannot_expand_without_bound(text: str, expected: str) -> None:
    document, errors = read_yaml("f.yaml", text.encode())
    assert document is None
    assert len(errors) == 1
    assert (errors[0].path, errors[0].reason.split(": ", 1)[1]) == ("<yaml>", expected)


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "name: payments",
            "name: [unclosed",
            "<yaml>: line 2, column 8: expected ',' or ']', but got ':' (while parsing a flow "
            "sequence at line 1, column 7)",
        ),
        (
            "  owner: payments-ml",
            "  owner: payments: ml",
            "<yaml>: line 8, column 18: mapping values are not allowed here",
        ),
        (
            "  owner: payments-ml",
            "\towner: payments-ml",
            "<yaml>: line 8, column 1: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
        ),
        (
            "  owner: payments-ml",
            "  owner: 2001-02-30",
            "<yaml>: line 8, column 10: '2001-02-30' is not a valid timestamp (day is out of "
            "range for month); quote it if it is text",
        ),
        (
            "  owner: payments-ml",
            "  owner: !!python/name:os.system",
            "<yaml>: line 8, column 10: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system'",
        ),
    ],
)
def test_syntax_errors_keep_the_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replace: str, by: str, expected: str
) -> None:
    lines = validate(tmp_path, BU.replace(replace, by), capsys)
    assert lines == [expected]
    assert "<unicode string>" not in lines[0]


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            'account: "333333333333"',
            "account: 333333333333",
            "account: YAML reads 333333333333 as a number, not text: quote it: "
            'account: "333333333333"',
        ),
        (
            "  cost_center: CC-9000",
            "  cost_center: 1042",
            "tags.cost_center: YAML reads 1042 as a number, not text: quote it: "
            'cost_center: "1042"',
        ),
        (
            "  cost_center: CC-9000",
            "  cost_center: no",
            'tags.cost_center: YAML reads no as a boolean, not text: quote it: cost_center: "no"',
        ),
        (
            "  cost_center: CC-9000",
            "  cost_center: CC-9000\n  extra: {review: 2026-01-31}",
            "tags.extra.review: YAML reads 2026-01-31 as a date, not text: quote it: review: "
            '"2026-01-31"',
        ),
        (
            "  availability_zones: [us-east-1a, us-east-1b]",
            "  availability_zones: [us-east-1a, 0x1b]",
            "network.availability_zones.1: YAML reads 0x1b as a number, not text: quote it: "
            '- "0x1b"',
        ),
    ],
)
def test_yaml_typed_values_say_quote_it_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replace: str, by: str, expected: str
) -> None:
    assert validate(tmp_path, BU.replace(replace, by), capsys) == [expected]


def test_an_unquoted_version_is_quoted_back_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML reads 1.30 as the float 1.3: the hint must say "1.30", the text the user wrote."""
    text = BU + "mlflow:\n  kind: tracking_server\n  mlflow_version: 3.10\n"
    assert validate(tmp_path, text, capsys) == [
        "mlflow.mlflow_version: YAML reads 3.10 as a number, not text: quote it: "
        'mlflow_version: "3.10"'
    ]
