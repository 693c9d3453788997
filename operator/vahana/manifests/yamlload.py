"""YAML documents read the way `kubectl` reads them, not the way PyYAML does by default.

kubectl (go-yaml v2 through sigs.k8s.io/yaml) keeps timestamps as strings, reads `y`/`n` as
booleans and refuses a key given twice; PyYAML's safe loader turns timestamps into datetimes,
keeps `y` a string and lets the last duplicate win. This loader does what kubectl does, so a file
that `vahana run` accepts is one the API server accepts too.

It is also safe with hostile text: libyaml's parser when PyYAML has it (`CSafeLoader`, several
times faster than the pure-Python one), files past MAX_BYTES refused before parsing, and aliases
limited to ALIAS_BUDGET nodes of expansion, so a 600-byte "billion laughs" file is refused at
once instead of growing into gigabytes. Bytes that are not UTF-8 are reported with the file and
the byte offset.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_BYTES = 64 * 1024 * 1024
"""Largest task or pool file read (100,000 tasks of a few hundred bytes each fit)."""
ALIAS_BUDGET = 10_000
"""Nodes that aliases (`*name`) may add to a file in all, counted as if each were copied out;
a file's own nodes do not count, so only expansion is limited."""
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


SYNTAX_HINT = "fix the YAML syntax (indentation, quotes, ':' after keys)"


class YAMLProblem(ValueError):
    """Text that is not YAML; `line` and `column` are 1-based, 0 when unknown; `hint`: how to
    fix it."""

    def __init__(
        self, message: str, *, line: int = 0, column: int = 0, hint: str = SYNTAX_HINT
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.hint = hint


_STR = "tag:yaml.org,2002:str"
_SELF_ALIAS = "an alias refers to a node that contains it"
_SELF_ALIAS_HINT = "an alias (*name) must not sit inside the node its anchor (&name) marks"
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]", re.MULTILINE)
"""Where an anchor (`&name`) may begin: YAML wants one after a space, a line's start or a flow
indicator. Text without a match has no anchor, so no alias can expand (`*name` without one is
an error of its own); text with one (`a && b` in a command, say) is walked to be sure."""


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Safe loader with kubectl's scalars, its duplicate-key check and the alias budget."""

    aliased = 0
    """Nodes added by aliases so far in this stream."""
    count_aliases = True

    def construct_document(self, node: yaml.Node) -> Any:
        if self.count_aliases:
            self.aliased += _expansion(node)
        if self.aliased > ALIAS_BUDGET:
            raise YAMLProblem(
                f"aliases expand to more than {ALIAS_BUDGET} nodes",
                line=node.start_mark.line + 1,
                hint="write the values out, or use fewer aliases (*name)",
            )
        return super().construct_document(node)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        value = self.construct_scalar(node)
        return str(value).lower() in ("y", "yes", "true", "on")

    def construct_timestamp(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [key_node for key_node, _ in node.value]
        if all(k.tag == _STR for k in keys) and len({k.value for k in keys}) == len(keys):
            # Only strings, each written once (the usual mapping): no key can be there twice.
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice",
                        key_node.start_mark,
                    )
                if isinstance(key, str | int | float | bool):
                    seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp)


class _LoaderWithoutAnchors(_Loader):
    """For text without an anchor: there is no alias to count."""

    count_aliases = False


def _expansion(root: yaml.Node) -> int:
    """How many nodes aliases add to the document below `root`: its size with every alias
    expanded, minus its own nodes. Shared nodes are counted once per reference, without
    expanding them (sizes are memoised), so a bomb costs as little to count as to parse."""
    sizes: dict[int, int] = {}
    seen = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if key in sizes:
            continue
        if key in open_:
            raise YAMLProblem(_SELF_ALIAS, line=_line(node), hint=_SELF_ALIAS_HINT)
        seen += 1
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise YAMLProblem(_SELF_ALIAS, line=_line(child), hint=_SELF_ALIAS_HINT)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)] - seen


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1 if node.start_mark is not None else 0


def decode(data: bytes, *, source: str) -> str:
    """A file's bytes as text; raises YAMLProblem naming the file and the first bad byte's
    offset when it is too large or not UTF-8."""
    if len(data) > MAX_BYTES:
        raise YAMLProblem(
            f"{source}: larger than {MAX_BYTES} bytes", hint="split it into several files"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise YAMLProblem(
            f"{source}: not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} "
            f"(line {line})",
            line=line,
            hint="save the file as UTF-8",
        ) from None


def load_documents(text: str) -> list[Any]:
    """Every document in `text`, in order; empty documents are None. Raises YAMLProblem."""
    if len(text) > MAX_BYTES:
        raise YAMLProblem(f"larger than {MAX_BYTES} characters — split it into several files")
    try:
        loader = _Loader if _ANCHOR.search(text) else _LoaderWithoutAnchors
        return list(yaml.load_all(text, Loader=loader))  # noqa: S506 - a SafeLoader subclass
    except YAMLProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context and exc.context != problem:
            problem = f"{problem} ({exc.context})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise YAMLProblem(problem, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise YAMLProblem(str(exc)) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise YAMLProblem(f"cannot read the YAML: {exc}") from None
