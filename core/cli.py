"""The one way every ``python -m ...`` command is built: a frozen dataclass per command (each
option declared once: type, default, help), ``parse_args(argv)`` returning it (`args_parser`
declares it) and ``main(args)`` that tests call directly, as TRL's scripts do.

Every command presents itself the same way: the usage line names it as a user types it, the
description is the module docstring's first paragraph, a default is shown only where there is
one, and a refused setting is printed as ``field: reason`` lines. Field metadata drives the
option: ``help``, ``choices``, ``metavar``, ``flag`` (another spelling than ``--field-name``),
``positional`` (an argument, not an option), ``hidden`` (accepted, not listed in ``--help``),
``switch`` (a bool set by its flag alone, no ``--no-`` form; `switch` declares one), ``nargs``
(a list option's values after one flag, e.g. ``"+"``) and ``cli: False`` (no option: the caller
adds its own). A ``list[...]`` option may otherwise be repeated; a ``bool`` gets
``--x/--no-x``; a field without a default is required.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from pydantic import ValidationError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one: never ``(default: None)``, ``(default: False)``
    on a switch or ``(default: [])``, and nothing on a required option."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        switch = default is False and action.const is True  # store_true, not --x/--no-x
        if action.required or default is None or switch or default == []:
            return action.help  # nothing to show: required, unset, a switch, an empty list
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


def examples(doc: str | None, command: str = "") -> str | None:
    """The docstring's ``python -m <command>...`` lines as an ``examples:`` epilog, one per line
    (``command``: a subcommand's own, e.g. ``"pkg render "``)."""
    lines = [line.strip() for line in (doc or "").splitlines()]
    commands = [line for line in lines if line.startswith(f"python -m {command}")]
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


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """`Path | None` -> (Path, False); `list[str]` -> (str, True): what argparse converts to,
    and whether the option collects several values."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (list, tuple, Sequence):
        return typing.get_args(tp)[0], True
    return tp, False


def _kwargs(f: dataclasses.Field[Any]) -> dict[str, Any]:
    """``add_argument`` keywords from a field's metadata and default."""
    meta = f.metadata
    kwargs: dict[str, Any] = {
        "help": argparse.SUPPRESS if meta.get("hidden") else meta.get("help", "")
    }
    kwargs.update({key: meta[key] for key in ("choices", "metavar") if key in meta})
    if f.default is not dataclasses.MISSING:
        kwargs["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:
        kwargs["default"] = f.default_factory()
    return kwargs


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type[Any]) -> None:
    """Add ``cls``'s options to an existing parser or argument group (subcommands share them)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp, many = _unwrap(hints[f.name])
        kwargs = _kwargs(f)
        if f.metadata.get("positional"):
            if many or "default" in kwargs:
                kwargs["nargs"] = "*" if many else "?"
            parser.add_argument(f.name, type=tp, **kwargs)
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kwargs.update(dest=f.name, required="default" not in kwargs)
        if f.metadata.get("switch"):
            parser.add_argument(flag, action="store_true", **kwargs)
        elif tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif "nargs" in f.metadata:
            parser.add_argument(flag, type=tp, nargs=f.metadata["nargs"], **kwargs)
        else:
            parser.add_argument(flag, type=tp, action="append" if many else "store", **kwargs)


def build_parser(
    cls: type[Any], doc: str | None, *, module: str, with_examples: bool = False
) -> argparse.ArgumentParser:
    """``cls``'s options under ``python -m <module>``'s usage line, described by the module
    docstring ``doc`` (`with_examples` adds its command lines)."""
    parser = command_parser(module, doc, with_examples=with_examples)
    add_arguments(parser, cls)
    return parser


def _instance(parser: argparse.ArgumentParser, cls: type[T], values: Mapping[str, Any]) -> T:
    try:
        return cls(**values)
    except ValueError as e:  # a dataclass's own checks: report them as usage errors
        parser.error(str(e))


def parse_args(
    cls: type[T],
    doc: str | None,
    argv: Sequence[str] | None = None,
    *,
    module: str,
    with_examples: bool = False,
    extend: Callable[[argparse.ArgumentParser], None] | None = None,
) -> T:
    """``cls`` from the command line; `extend` may add options that never reach ``cls`` (give
    them ``default=argparse.SUPPRESS``, e.g. one the caller handles before parsing)."""
    parser = build_parser(cls, doc, module=module, with_examples=with_examples)
    if extend is not None:
        extend(parser)
    return _instance(parser, cls, vars(parser.parse_args(argv)))


def switch(help: str) -> Any:
    """A ``bool`` field set by its flag alone (``--x``, no ``--no-x``), off by default."""
    return dataclasses.field(default=False, metadata={"switch": True, "help": help})


class ArgsParser(Protocol[T_co]):
    """A command's ``parse_args``: its argument dataclass from ``argv`` (``sys.argv`` when None)."""

    def __call__(self, argv: Sequence[str] | None = None) -> T_co: ...


def args_parser(
    cls: type[T], doc: str | None, *, module: str, with_examples: bool = False
) -> ArgsParser[T]:
    """A command's ``parse_args``, declared in one line: ``parse_args = args_parser(Args,
    __doc__, module="pkg.mod")``; `parse_args` with these settings."""
    return functools.partial(parse_args, cls, doc, module=module, with_examples=with_examples)


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """One subcommand of `parse_command`: its argument dataclass and the texts ``--help``
    shows (``description`` and ``epilog`` under the subcommand's own usage line)."""

    args: type[Any]
    help: str
    description: str | None = None
    epilog: str | None = None


def parse_command(
    module: str,
    doc: str | None,
    commands: Mapping[str, Subcommand],
    argv: Sequence[str] | None = None,
    *,
    with_examples: bool = False,
) -> Any:
    """A command with subcommands (``python -m <module> <command> ...``): the chosen one's
    argument dataclass, filled, so ``main`` dispatches on its type."""
    parser = command_parser(module, doc, with_examples=with_examples)
    sub = parser.add_subparsers(dest="command", required=True)
    parsers = {
        name: sub.add_parser(
            name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=HelpFormatter,
        )
        for name, command in commands.items()
    }
    for name, command in commands.items():
        add_arguments(parsers[name], command.args)
    values = vars(parser.parse_args(argv))
    name = values.pop("command")
    return _instance(parsers[name], commands[name].args, values)


def field_errors(err: ValidationError) -> list[str]:
    """One ``field: reason`` line per pydantic error, worded as ``core.base.validation_errors``
    words a BU file's: no pydantic banner, input echo or docs link. A validator's message that
    already names its field is kept as it is."""
    from core.base import error_reason  # pydantic is loaded only when there is an error

    lines = []
    for item in err.errors():
        path = ".".join(str(part) for part in item["loc"])
        reason = error_reason(item)
        if not path:  # a model-level rule: its message names the field already
            lines.append(reason if ":" in reason else f"<root>: {reason}")
        elif reason.startswith(f"{path}:"):
            lines.append(reason)
        else:
            lines.append(f"{path}: {reason}")
    return lines
