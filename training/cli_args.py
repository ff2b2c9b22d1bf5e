"""Command lines built from argument dataclasses, so each option is declared (type, default, help)
once and tests call `main(Args(...))` directly, as TRL's scripts do."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from inference.cli import HelpFormatter, command_parser

T = TypeVar("T")


def _scalar(tp: Any) -> Any:
    """`Path | None` -> Path: the type argparse converts to."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner
    return tp


def build_parser(
    cls: type[Any], description: str, *, module: str | None = None
) -> argparse.ArgumentParser:
    """An option ``--kebab-case`` per field; booleans get ``--x/--no-x``; no default: required.

    ``description`` is a module docstring (its first paragraph is used) when ``module`` names
    the command. Fields with ``metadata={"cli": False}`` get no option (the caller adds its own).
    """
    if module is not None:
        parser = command_parser(module, description)
    else:
        parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    add_arguments(parser, cls)
    return parser


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type[Any]) -> None:
    """Add ``cls``'s options to an existing parser or argument group (subcommands share them)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        tp = _scalar(hints[f.name])
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            parser.add_argument(flag, type=Path if tp is Path else tp, **kwargs)


def parse_args(
    cls: type[T],
    description: str,
    argv: Sequence[str] | None = None,
    *,
    module: str | None = None,
    extend: Callable[[argparse.ArgumentParser], None] | None = None,
) -> T:
    """``cls`` from the command line; `extend` may add options that never reach ``cls`` (give
    them ``default=argparse.SUPPRESS``, e.g. one the caller handles before parsing)."""
    parser = build_parser(cls, description, module=module)
    if extend is not None:
        extend(parser)
    namespace = parser.parse_args(argv)
    try:
        return cls(**vars(namespace))
    except ValueError as e:  # a dataclass's own checks: report them as usage errors
        parser.error(str(e))
