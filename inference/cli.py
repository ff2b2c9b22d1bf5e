"""How every ``python -m inference.*`` and ``python -m training.*`` command line presents itself.

The usage line names the command as a user types it, the description is the module docstring's
whole first paragraph, and a default is shown only where there is one. A refused setting is
printed as ``field: reason`` lines. (``training.cli_args`` imports this; it is stdlib-only so
that costs nothing.)
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one: never ``(default: None)`` on a required option."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """A one-line description is wrapped; text with its own line breaks (a table in an
        epilog) is kept as written."""
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def summary(doc: str | None) -> str:
    """A module docstring's first paragraph as one line, never a sentence cut at a line break."""
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())


def examples(doc: str | None) -> str | None:
    """The docstring's ``python -m ...`` lines as an ``examples:`` epilog, one per line."""
    lines = [line.strip() for line in (doc or "").splitlines()]
    commands = [line for line in lines if line.startswith("python -m ")]
    return "examples:\n" + "".join(f"  {c}\n" for c in commands) if commands else None


def command_parser(
    module: str, doc: str | None, *, with_examples: bool = False
) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: that usage line, the docstring's first paragraph,
    and with `with_examples` the docstring's command lines as an epilog."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=summary(doc),
        epilog=examples(doc) if with_examples else None,
        formatter_class=HelpFormatter,
    )


def field_errors(err: ValidationError) -> list[str]:
    """One ``field: reason`` line per pydantic error, as ``core.base.validation_errors``
    words them (inference does not import config): no pydantic banner, input echo or docs link.
    A validator's message that already names its field is kept as it is."""
    lines = []
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"])
        reason = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            reason = "unknown field (not in the schema)"
        if not path:  # a model-level rule: its message names the field already
            lines.append(reason if ":" in reason else f"<root>: {reason}")
        elif reason.startswith(f"{path}:"):
            lines.append(reason)
        else:
            lines.append(f"{path}: {reason}")
    return lines
