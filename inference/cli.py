"""How every ``python -m inference.*`` and ``python -m training.*`` command line presents itself.

The usage line names the command as a user types it, the description is the module docstring's
whole first paragraph, and a default is shown only where there is one. (``training.cli_args``
imports this; it is stdlib-only so that costs nothing.)
"""

import argparse


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


def command_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: that usage line, the docstring's first paragraph."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=summary(doc), formatter_class=HelpFormatter
    )
