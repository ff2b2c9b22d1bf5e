"""Read one config file's YAML strictly, so a malformed file is a ``file: where: reason`` line.

PyYAML alone keeps the last of two equal keys, reports syntax errors against
``"<unicode string>"``, and raises a bare traceback on a non-UTF-8 byte, on deep nesting
(recursion) and on scalars it cannot convert (``2001-02-30``). Here each becomes one line with
its line and column: ``<yaml>`` for the file's syntax, the field path for a repeated key.
Schema-free (PyYAML and `core.base` only), so any config file can be read this way.
"""

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from core.base import ConfigError, Loc

# Far deeper than any config (the schema's deepest field is six levels down), far shallower
# than the recursion that PyYAML's composer and pydantic would hit.
MAX_DEPTH = 32
# Aliases can expand a small file exponentially ("billion laughs"); no config holds this many.
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    # Where an unquoted scalar became a number, boolean, date or null: the text as written
    # (``core.base.validation_errors`` quotes it back to the user).
    typed_scalars: dict[Loc, str]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with bounded nesting, and conversion errors reported with their position."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, _too_deep(), self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        # What PyYAML's own constructors raise on a scalar they cannot convert.
        except (ValueError, TypeError, AttributeError, OverflowError) as err:
            kind = node.tag.rsplit(":", 1)[-1]
            raise ConstructorError(
                None,
                None,
                f"{node.value!r} is not a valid {kind} ({err}); quote it if it is text",
                node.start_mark,
            ) from None


def read_yaml(file: str, data: bytes) -> tuple[YamlDocument | None, list[ConfigError]]:
    """The document in ``data``, or every problem that stops reading it (nothing is guessed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _line_column(data[: err.start].decode("utf-8", errors="replace"))
        reason = f"byte 0x{data[err.start]:02x} is not UTF-8; save the file as UTF-8"
        return None, [ConfigError(file, "<yaml>", f"line {line}, column {column}: {reason}")]
    loader = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        if node is None:  # an empty file
            return YamlDocument(None, {}), []
        walk = _Walk(file)
        walk.visit(node, ())
        if walk.duplicates:
            return None, walk.duplicates
        return YamlDocument(loader.construct_document(node), walk.typed_scalars), []
    except yaml.YAMLError as err:
        return None, [ConfigError(file, "<yaml>", _yaml_reason(err, text))]
    finally:
        if loader is not None:
            loader.dispose()


class _Walk:
    """One pass over the composed nodes, aliases followed: repeated keys (with the field path),
    where YAML typed a plain scalar, cycles, and how far aliases expand the document."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.duplicates: list[ConfigError] = []
        self.typed_scalars: dict[Loc, str] = {}
        self._values = 0
        self._open: set[int] = set()  # collections being visited: seeing one again is a cycle

    def visit(self, node: Node, path: Loc) -> None:
        self._values += 1
        if self._values > MAX_VALUES:
            raise ComposerError(
                None,
                None,
                f"aliases expand the document past {MAX_VALUES} values",
                node.start_mark,
            )
        if len(path) > MAX_DEPTH:
            raise ComposerError(None, None, _too_deep("counting aliases"), node.start_mark)
        if isinstance(node, ScalarNode):
            if node.style is None and node.tag != _STR_TAG:
                self.typed_scalars[path] = node.value
            return
        if id(node) in self._open:
            raise ComposerError(
                None, None, "an alias here repeats a collection inside itself", node.start_mark
            )
        self._open.add(id(node))
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                self.visit(child, (*path, i))
        elif isinstance(node, MappingNode):
            self._mapping(node, path)
        self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: Loc) -> None:
        # `<<: *base` first: explicit keys override merged ones (no duplicate), as YAML says.
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                for merged in value.value if isinstance(value, SequenceNode) else [value]:
                    self.visit(merged, path)
        first: dict[tuple[str, str], Mark] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG or not isinstance(key, ScalarNode):
                continue  # a collection as a key fails construction, with its position
            where = (*path, key.value)
            seen = first.setdefault((key.tag, key.value), key.start_mark)
            if seen is not key.start_mark:
                self.duplicates.append(
                    ConfigError(
                        self.file,
                        ".".join(map(str, where)),
                        f"duplicate key at line {key.start_mark.line + 1}, column "
                        f"{key.start_mark.column + 1} (first at line {seen.line + 1}): YAML "
                        "would silently keep only the last one; remove one",
                    )
                )
            self.visit(value, where)


def _too_deep(how: str = "") -> str:
    return f"nested more than {MAX_DEPTH} levels deep{f' ({how})' if how else ''}"


def _line_column(before: str) -> tuple[int, int]:
    """1-based line and column of the character after ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _yaml_reason(err: yaml.YAMLError, text: str) -> str:
    """PyYAML's error as one line: where (line, column), the problem, and its context."""
    if isinstance(err, MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        reason = err.problem or err.context or "not valid YAML"
        if err.problem and err.context:
            context = err.context_mark
            at = f" at line {context.line + 1}, column {context.column + 1}" if context else ""
            reason += f" ({err.context}{at})"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return where + reason
    if isinstance(err, ReaderError):
        line, column = _line_column(text[: err.position])
        return f"line {line}, column {column}: character #x{err.character:04x}: {err.reason}"
    return " ".join(str(err).split())
