"""`core.cli`, the one way every `python -m` command is built: each field option the commands
rely on, the typed result, usage errors, subcommands and what `--help` shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core import cli

DOC = """A tool that does one thing, in one sentence.

    python -m tool --name x
"""


@dataclass(frozen=True)
class Args:
    name: str = field(metadata={"help": "required: no default"})
    count: int = field(default=3, metadata={"help": "a number"})
    out: Path | None = field(default=None, metadata={"help": "optional path"})
    fast: bool = cli.switch("a plain switch")
    pack: bool = field(default=True, metadata={"help": "on unless --no-pack"})
    env: list[str] = field(default_factory=list, metadata={"help": "repeatable"})
    tools: list[str] | None = field(default=None, metadata={"nargs": "+", "choices": ["a", "b"]})
    source: str | None = field(default=None, metadata={"flag": "--from", "help": "spelled --from"})
    secret_dir: Path = field(default=Path("cfg"), metadata={"hidden": True})
    files: list[Path] = field(default_factory=list, metadata={"positional": True})

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("count: must not be negative")


def parse(*argv: str) -> Args:
    return cli.parse_args(Args, DOC, list(argv), module="tool", with_examples=True)


def test_each_field_option_parses_to_its_typed_value() -> None:
    args = parse(
        "--name", "n", "--count", "5", "--out", "o.txt", "--fast", "--no-pack",
        "--env", "A=1", "--env", "B=2", "--tools", "a", "b", "--from", "fraud",
        "--secret-dir", "elsewhere", "x.yaml", "y.yaml",
    )  # fmt: skip
    assert args == Args(
        name="n",
        count=5,
        out=Path("o.txt"),
        fast=True,
        pack=False,
        env=["A=1", "B=2"],
        tools=["a", "b"],
        source="fraud",
        secret_dir=Path("elsewhere"),
        files=[Path("x.yaml"), Path("y.yaml")],
    )
    assert parse("--name", "n") == Args(name="n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --name"),
        (["--name", "n", "--no-fast"], "unrecognized arguments: --no-fast"),  # a switch only
        (["--name", "n", "--tools", "c"], "invalid choice: 'c'"),
        (["--name", "n", "--count", "x"], "invalid int value: 'x'"),
        (["--name", "n", "--count", "-1"], "count: must not be negative"),  # the dataclass's
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        parse(*argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m tool ")
    assert message in err.splitlines()[-1]


def test_help_shows_a_default_only_where_there_is_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m tool ")
    assert "A tool that does one thing, in one sentence." in out
    assert "examples: python -m tool --name x" in out
    assert "a number (default: 3)" in out
    assert "on unless --no-pack (default: True)" in out
    assert "(default: None)" not in out
    assert "(default: False)" not in out  # the switch
    assert "(default: [])" not in out
    assert "--secret-dir" not in out  # hidden, yet accepted (above)


@dataclass(frozen=True)
class Render:
    name: str = field(metadata={"help": "what to render"})


@dataclass(frozen=True)
class Status:
    name: str
    follow: bool = True


COMMANDS = {
    "render": cli.Subcommand(Render, "print it", epilog="example:\n  python -m tool render\n"),
    "status": cli.Subcommand(Status, "say how it is"),
}


def test_subcommands_return_the_chosen_ones_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.parse_command("tool", DOC, COMMANDS, ["render", "--name", "x"]) == Render("x")
    parsed = cli.parse_command("tool", DOC, COMMANDS, ["status", "--name", "x", "--no-follow"])
    assert parsed == Status("x", follow=False)
    with pytest.raises(SystemExit) as done:
        cli.parse_command("tool", DOC, COMMANDS, ["bogus"])
    assert done.value.code == 2
    assert "argument command: invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_command("tool", DOC, COMMANDS, ["render", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m tool render ")
    assert "python -m tool render\n" in out  # the subcommand's own epilog, as written
