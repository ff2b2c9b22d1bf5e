"""Score predicted tool calls against expected ones, BFCL AST-checker style.

The training evaluation and any offline check of an endpoint use this one scorer, so a "correct
call" means the same thing everywhere:

    score_calls(predicted, expected, tools=None) -> CallScore

A predicted call matches an expected one when the names are equal, every expected argument is
present with an equal value, and no other argument is present (unless `tools` is given and the
extra argument is optional in the schema with its ``default`` value). Values compare with light
normalisation: ints and floats by numeric value (but booleans are not numbers), strings stripped
and case-folded, lists element-wise in order, objects key by key. Parallel calls are matched
order-insensitively (the best one-to-one assignment).

An expected argument may be a set of acceptable values, `OneOf` (BFCL's ``possible_answer``:
``bfcl_expected`` converts its ground truth); an acceptable ``""`` means the argument may be left
out. With ``bfcl=True`` the rest of BFCL's AST checker applies as well: strings compare after its
standardisation (case, spaces and ``,./-_*^`` ignored), each argument must have its schema's type
(an int passes for a number; arrays check their items one level deep) unless it has the type of
the acceptable values, and an extra argument is wrong even at its schema default.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from inference.parsing import ToolCall

_EXACT_ASSIGNMENT_LIMIT = 7  # permutations beyond this get expensive; match greedily instead


@dataclass(frozen=True)
class CallScore:
    """How a completion's calls compare with the expected ones."""

    expected: int  # expected calls
    predicted: int  # predicted (valid) calls
    matched: int  # one-to-one pairs that match exactly
    name_matched: int  # one-to-one pairs with the right name, arguments right or not
    mismatches: list[str] = field(default_factory=list)  # why each unmatched pair differs

    @property
    def exact(self) -> bool:
        """Every expected call predicted, nothing else (a completion with no calls expected and
        none made is exact)."""
        return self.matched == self.expected == self.predicted

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else float(self.expected == 0)

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else float(self.predicted == 0)


def values_equal(predicted: Any, expected: Any) -> bool:
    """Equality with the normalisation BFCL's checker applies."""
    if isinstance(expected, bool) or isinstance(predicted, bool):
        return isinstance(expected, bool) and isinstance(predicted, bool) and predicted == expected
    if isinstance(expected, int | float) and isinstance(predicted, int | float):
        return math.isclose(predicted, expected, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(predicted, str):
        return predicted.strip().casefold() == expected.strip().casefold()
    if isinstance(expected, list) and isinstance(predicted, list):
        return len(expected) == len(predicted) and all(
            values_equal(p, e) for p, e in zip(predicted, expected, strict=True)
        )
    if isinstance(expected, Mapping) and isinstance(predicted, Mapping):
        return set(expected) == set(predicted) and all(
            values_equal(predicted[k], expected[k]) for k in expected
        )
    return bool(predicted == expected)


@dataclass(frozen=True)
class OneOf:
    """Acceptable values for one expected argument; ``""`` among them: it may be omitted."""

    values: tuple[Any, ...]

    @property
    def optional(self) -> bool:
        return any(v == "" for v in self.values)


def bfcl_expected(
    ground_truth: Sequence[Mapping[str, Mapping[str, Sequence[Any]]]],
) -> list[dict[str, Any]]:
    """BFCL's ``ground_truth`` (``[{name: {arg: [acceptable, ...]}}]``) as expected calls."""
    return [
        {"name": name, "arguments": {k: OneOf(tuple(v)) for k, v in arguments.items()}}
        for call in ground_truth
        for name, arguments in call.items()
    ]


_BFCL_PUNCTUATION = re.compile(r"[ ,./\-_*^]")


def standardize_string(text: str) -> str:
    """BFCL's string standardisation: "April 1, 2024" and "april 1 2024" are one answer."""
    return _BFCL_PUNCTUATION.sub("", text).lower().replace("'", '"')


def _bfcl_scalar_equal(predicted: Any, acceptable: Any) -> bool:
    if isinstance(predicted, str) and isinstance(acceptable, str):
        return standardize_string(predicted) == standardize_string(acceptable)
    return values_equal(predicted, acceptable)


def _dict_accepts(predicted: Mapping[str, Any], acceptable: Mapping[str, Any]) -> bool:
    """BFCL's dict checker: each key's value among that key's acceptable values."""
    for key, value in predicted.items():
        options = acceptable.get(key)
        if not isinstance(options, list) or not any(_bfcl_scalar_equal(value, o) for o in options):
            return False
    return all(
        key in predicted or (isinstance(opts, list) and "" in opts)
        for key, opts in acceptable.items()
    )


def _accepts(predicted: Any, acceptable: Any, *, bfcl: bool) -> bool:
    """Whether `predicted` is the one acceptable value `acceptable` (BFCL: dicts inside an
    acceptable value hold their own acceptable-value lists)."""
    if not bfcl:
        return values_equal(predicted, acceptable)
    if isinstance(acceptable, Mapping) and isinstance(predicted, Mapping):
        return _dict_accepts(predicted, acceptable)
    if isinstance(acceptable, list) and isinstance(predicted, list):
        return len(acceptable) == len(predicted) and all(
            _accepts(p, a, bfcl=True) if isinstance(a, Mapping) else _bfcl_scalar_equal(p, a)
            for p, a in zip(predicted, acceptable, strict=True)
        )
    return _bfcl_scalar_equal(predicted, acceptable)


def _value_matches(predicted: Any, expected: Any, *, bfcl: bool) -> bool:
    if isinstance(expected, OneOf):
        return any(_accepts(predicted, v, bfcl=bfcl) for v in expected.values)
    return _accepts(predicted, expected, bfcl=bfcl)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),  # BFCL: Python's int-for-float conversion
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _has_type(value: Any, schema: Any) -> bool:
    """Whether `value` has the (JSON Schema) type of `schema`; untyped schemas accept anything."""
    names = schema.get("type") if isinstance(schema, Mapping) else None
    if names is None:
        return True
    for name in names if isinstance(names, list) else [names]:
        python = _JSON_TYPES.get(name)
        if python is None or (
            isinstance(value, python) and (bool in python) == isinstance(value, bool)
        ):
            return True
    return False


def _type_ok(value: Any, schema: Any, expected: Any) -> bool:
    """BFCL's type check: the schema's type (array items one level deep), or the type of the
    acceptable values (BFCL's "variable" answers, e.g. a string where the schema says integer)."""
    items = schema.get("items") if isinstance(schema, Mapping) else None
    if _has_type(value, schema) and (
        not isinstance(value, list) or all(_has_type(v, items) for v in value)
    ):
        return True
    options = expected.values if isinstance(expected, OneOf) else (expected,)
    typed = [type(o) for o in options if o != ""]
    return bool(typed) and type(value) is typed[0]


def _as_pair(call: ToolCall | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(call, ToolCall):
        return call.name, call.arguments
    name = call.get("name")
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    if not isinstance(name, str) or not isinstance(arguments, Mapping):
        raise ValueError(f"expected call needs a string name and object arguments: {call!r:.200}")
    return name, dict(arguments)


@dataclass(frozen=True)
class _Schema:
    """What the scorer reads of one tool's parameters."""

    properties: Mapping[str, Any] = field(default_factory=dict)
    required: frozenset[str] = frozenset()

    @property
    def defaults(self) -> dict[str, Any]:
        """The optional arguments that declare a default."""
        return {
            k: v["default"]
            for k, v in self.properties.items()
            if isinstance(v, Mapping) and "default" in v and k not in self.required
        }


def _schemas(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, _Schema]:
    table: dict[str, _Schema] = {}
    for tool in tools or ():
        spec = tool.get("function", tool)
        params = spec.get("parameters") or {}
        table[spec.get("name", "")] = _Schema(
            dict(params.get("properties") or {}), frozenset(params.get("required", ()))
        )
    return table


def _difference(
    predicted: tuple[str, dict[str, Any]],
    expected: tuple[str, dict[str, Any]],
    schema: _Schema | None,
    *,
    bfcl: bool = False,
) -> str | None:
    """None when the calls match, else the first reason they do not."""
    (p_name, p_args), (e_name, e_args) = predicted, expected
    if p_name != e_name:
        return f"name {p_name!r} != {e_name!r}"
    optional = {k for k, v in e_args.items() if isinstance(v, OneOf) and v.optional}
    required = schema.required if bfcl and schema else frozenset()
    missing = sorted((set(e_args) - optional | required) - set(p_args))
    if missing:
        return f"{e_name}: missing argument(s) {', '.join(missing)}"
    defaults = schema.defaults if schema and not bfcl else {}
    for key in sorted(set(p_args) - set(e_args)):
        if not (key in defaults and values_equal(p_args[key], defaults[key])):
            return f"{e_name}: unexpected argument {key!r}"
    for key in sorted(set(e_args) & set(p_args)):
        if bfcl and schema and not _type_ok(p_args[key], schema.properties.get(key), e_args[key]):
            return f"{e_name}: {key}={p_args[key]!r} has the wrong type"
        if not _value_matches(p_args[key], e_args[key], bfcl=bfcl):
            return f"{e_name}: {key}={p_args[key]!r}, expected {_shown(e_args[key])}"
    return None


def _shown(expected: Any) -> str:
    if isinstance(expected, OneOf):
        return "one of " + ", ".join(repr(v) for v in expected.values)
    return repr(expected)


def score_calls(
    predicted: Sequence[ToolCall | Mapping[str, Any]],
    expected: Sequence[ToolCall | Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    bfcl: bool = False,
) -> CallScore:
    """Compare calls one-to-one, order-insensitively; see the module docstring for the rules.

    `expected` entries are ``{"name", "arguments"}`` (arguments an object or a JSON string, its
    values plain or `OneOf`) or `ToolCall`s; a malformed expected entry raises `ValueError` (it is
    our data, not model output). `bfcl` applies BFCL's type and string rules (needs `tools`).
    """
    preds = [_as_pair(c) for c in predicted]
    gold = [_as_pair(c) for c in expected]
    schemas = _schemas(tools)

    def diff(p: int, g: int) -> str | None:
        return _difference(preds[p], gold[g], schemas.get(gold[g][0]), bfcl=bfcl)

    table = [[diff(p, g) for g in range(len(gold))] for p in range(len(preds))]
    # An exact match is worth more than a right name with wrong arguments, which beats nothing.
    value = [
        [2 if table[p][g] is None else int(preds[p][0] == gold[g][0]) for g in range(len(gold))]
        for p in range(len(preds))
    ]
    pairs = _assign(value, len(preds), len(gold))
    matched = sum(1 for p, g in pairs if table[p][g] is None)
    name_matched = sum(1 for p, g in pairs if preds[p][0] == gold[g][0])
    reasons = [r for p, g in pairs if (r := table[p][g]) is not None]
    paired_p = {p for p, _ in pairs}
    paired_g = {g for _, g in pairs}
    reasons += [f"unexpected call {preds[p][0]!r}" for p in range(len(preds)) if p not in paired_p]
    reasons += [f"missing call {gold[g][0]!r}" for g in range(len(gold)) if g not in paired_g]
    return CallScore(
        expected=len(gold),
        predicted=len(preds),
        matched=matched,
        name_matched=name_matched,
        mismatches=reasons,
    )


def _assign(value: list[list[int]], n_pred: int, n_gold: int) -> list[tuple[int, int]]:
    """The one-to-one pairing with the highest total `value` (exact search when small)."""
    if min(n_pred, n_gold) == 0:
        return []
    if max(n_pred, n_gold) <= _EXACT_ASSIGNMENT_LIMIT:
        if n_pred <= n_gold:
            options = (
                list(zip(range(n_pred), gs, strict=True))
                for gs in permutations(range(n_gold), n_pred)
            )
        else:
            options = (
                list(zip(ps, range(n_gold), strict=True))
                for ps in permutations(range(n_pred), n_gold)
            )
        return sorted(max(options, key=lambda pairs: sum(value[p][g] for p, g in pairs)))
    candidates = sorted(
        ((value[p][g], p, g) for p in range(n_pred) for g in range(n_gold)), reverse=True
    )
    used_p: set[int] = set()
    used_g: set[int] = set()
    pairs = []
    for _, p, g in candidates:
        if p not in used_p and g not in used_g:
            pairs.append((p, g))
            used_p.add(p)
            used_g.add(g)
    return sorted(pairs)
