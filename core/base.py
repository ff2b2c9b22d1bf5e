"""What every config model shares: frozen, unknown fields rejected, model-level field errors,
whole-string ASCII patterns, and the one way a validation failure is reported
(``file: field.path: reason``).

Pydantic only, so the training config (`training/config.py`) reports its YAML errors the same way
without importing the BU schema.
"""

import datetime
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

# A pydantic error location: field names and list indexes (``("hyperpod", "quotas", 0)``).
Loc = tuple[str | int, ...]


class FieldProblemError(ValueError):
    """A model-level problem that belongs to one field; the loader reports ``path``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path


def not_over(model: BaseModel, low: str, high: str) -> None:
    """A FieldProblemError on field ``low`` when its value is over field ``high``'s (a minimum
    over its maximum): ``5 is over max_workers 2``."""
    low_value, high_value = getattr(model, low), getattr(model, high)
    if low_value > high_value:
        raise FieldProblemError(low, f"{low_value} is over {high} {high_value}")


class FieldProblemsError(ValueError):
    """Several field problems one model-level rule found: each is its own line, so a user sees
    every quota or field to fix at once, not the first of them."""

    def __init__(self, problems: Sequence[FieldProblemError]) -> None:
        super().__init__("; ".join(f"{p.path}: {p}" for p in problems))
        self.problems = list(problems)


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, in first-seen order (list validators' one check)."""
    return [name for name, count in Counter(names).items() if count > 1]


_Item = TypeVar("_Item")


def unique(items: list[_Item], name: Callable[[_Item], str], what: str) -> list[_Item]:
    """``items`` unchanged when no two share a ``name``; else a ValueError naming the repeated
    ones (``duplicate team a, b``): a list field's validator."""
    dupes = repeated(name(item) for item in items)
    if dupes:
        raise ValueError(f"duplicate {what} {', '.join(dupes)}")
    return items


class StrictModel(BaseModel):
    """Frozen, and a typo is an error (``extra="forbid"``), never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # (low, high) field pairs where low may not be over high, e.g. a minimum over its maximum.
    ordered_fields: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        for low, high in self.ordered_fields:
            not_over(self, low, high)
        return self


def ascii_pattern(regex: str) -> re.Pattern[str]:
    """A validating pattern, for ``fullmatch`` only: ASCII classes, because ``\\d`` and ``\\w``
    otherwise admit any script's digits and letters (an account ID of Arabic-Indic digits), and
    ``fullmatch`` because ``re.match(...$)`` lets a trailing newline through."""
    return re.compile(regex, re.ASCII)


def matching(regex: str, what: str) -> AfterValidator:
    """A string field's shape: ``Annotated[str, matching(r"v[0-9]+", "a version like v1")]``
    reports ``'x' is not a version like v1`` (pydantic's own ``pattern=`` uses another regex
    dialect, where ``\\d`` is any script's digit, and prints the raw pattern)."""
    pattern = ascii_pattern(regex)

    def check(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def one_of(choices: Iterable[str], what: str) -> AfterValidator:
    """A string field with a fixed set of values, listed in the order given: ``Annotated[str,
    one_of(VERSIONS, "a version supported here")]`` reports ``'1.27' is not a version supported
    here; choose 1.32, 1.33``."""
    allowed = tuple(choices)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not {what}; choose {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def at_most_chars(limit: int, why: str = "") -> AfterValidator:
    """A string field's length limit where a derived name must fit one (a role, a queue):
    ``Annotated[str, at_most_chars(18, "it names a role")]`` reports ``at most 18 characters
    (it names a role)``."""

    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters" + (f" ({why})" if why else ""))
        return value

    return AfterValidator(check)


@dataclass(frozen=True)
class ConfigError:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        # One line, whatever a quoted YAML value carried into the path or reason.
        line = f"{self.file}: {self.path}: {self.reason}"
        return line.replace("\r", "\\r").replace("\n", "\\n")


def validation_errors(
    file: str, err: ValidationError, typed_scalars: Mapping[Loc, str] | None = None
) -> list[ConfigError]:
    """One `ConfigError` per pydantic error; a `FieldProblemError` names its own field.

    ``typed_scalars`` maps where an unquoted YAML scalar became a number, boolean or date to
    the text as written, so "quote it" shows ``"1.30"``, not the float ``1.3``."""
    out = []
    for item in err.errors():
        loc = [str(part) for part in item["loc"]]
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblemsError | FieldProblemError):
            problems = cause.problems if isinstance(cause, FieldProblemsError) else [cause]
            out += [ConfigError(file, ".".join([*loc, p.path]), str(p)) for p in problems]
            continue
        reason = error_reason(item)
        if item["type"] == "string_type":
            reason = _quote_hint(item["loc"], item["input"], typed_scalars or {}) or reason
        out.append(ConfigError(file, ".".join(loc) or "<root>", reason))
    return out


def error_reason(item: ErrorDetails, unknown: str = "unknown field (not in the schema)") -> str:
    """One pydantic error's reason as every message of ours words it: without pydantic's
    "Value error, " banner, and ``unknown`` for a field the model does not have."""
    if item["type"] == "extra_forbidden":
        return unknown
    return str(item["msg"]).removeprefix("Value error, ")


def _quote_hint(loc: Loc, value: Any, typed_scalars: Mapping[Loc, str]) -> str | None:
    """Where text was expected and YAML read a number, boolean or date: say to quote it, with
    the text as written. Without the source (a dict, not a file) the value's own spelling."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int | float):
        kind = "a number"
    elif isinstance(value, datetime.date):
        kind = "a date"
    else:
        return None
    # Trailing parts a scalar cannot have are pydantic's union-member tags (`mig.str`).
    where = next((loc[:n] for n in range(len(loc), 0, -1) if loc[:n] in typed_scalars), loc)
    text = typed_scalars.get(where) or (str(value).lower() if kind == "a boolean" else str(value))
    key = f"{where[-1]}: " if where and isinstance(where[-1], str) else "- "
    return f'YAML reads {text} as {kind}, not text: quote it: {key}"{text}"'
