"""A YAML reader for files nobody vetted: bounded alias expansion and nesting, no tracebacks.

PyYAML shares an aliased node instead of copying it, so the damage of an alias bomb ("billion laughs")
comes later, when the document is walked as a tree. The composed node graph is therefore measured first:
its size as a tree is counted without expanding it (each node once, memoised), and a file whose aliases
would expand past a budget, that refers to itself, or nests absurdly deep is refused before any Python
object is built. Values YAML cannot construct (`2026-13-45`, `!!int x`) become errors with their line.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

LINES = "__lines__"
LINE = "__line__"
# Nodes aliases may add beyond those written out; a real registry needs none, a bomb needs billions.
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 50

_Base: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class UnsafeYaml(Exception):
    """The file's structure is refused; `line` is where the problem starts (1-based, 0 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_graph(root: Node) -> None:
    """Refuse recursion, deep nesting and alias expansion over budget, in time linear in distinct nodes."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    distinct = 0

    def size(node: Node, depth: int) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise UnsafeYaml(_line(node), "an alias refers to the node that contains it (recursive alias)")
        if depth > MAX_DEPTH:
            raise UnsafeYaml(_line(node), f"nested deeper than {MAX_DEPTH} levels")
        open_nodes.add(key)
        distinct += 1
        total = 1 + sum(size(child, depth + 1) for child in _children(node))
        open_nodes.discard(key)
        sizes[key] = total
        if total - distinct > MAX_ALIAS_NODES:
            raise UnsafeYaml(
                _line(node), f"aliases expand to more than {MAX_ALIAS_NODES} extra values (alias bomb?)"
            )
        return total

    size(root, 0)


class LineLoader(_Base):  # type: ignore[misc]
    """Safe loader that remembers the line of every mapping and of each of its fields."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError):
            # The value itself is not quoted: it could be a secret pasted in the wrong place.
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise ConstructorError(None, None, f"cannot read this value as {tag}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        mapping[LINE] = _line(node)
        mapping[LINES] = {k.value: _line(k) for k, _ in node.value if isinstance(k, ScalarNode)}
        return mapping

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        """An impossible date stays text, so the field that holds it reports it with its line."""
        try:
            value: datetime.date = super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError, AttributeError):
            return str(node.value)
        return value


LineLoader.add_constructor("tag:yaml.org,2002:timestamp", LineLoader.construct_yaml_timestamp)


def load(text: str) -> Any:
    """The document in `text`; raises yaml.YAMLError (with a mark) or UnsafeYaml."""
    loader = LineLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise UnsafeYaml(0, f"nested deeper than {MAX_DEPTH} levels") from None
        if root is None:
            return None
        check_graph(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def strip_marks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_marks(v) for k, v in value.items() if k not in (LINE, LINES)}
    if isinstance(value, list):
        return [strip_marks(v) for v in value]
    return value
