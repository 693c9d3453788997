"""YAML documents read the way `kubectl` reads them, not the way PyYAML does by default.

kubectl (go-yaml v2 through sigs.k8s.io/yaml) keeps timestamps as strings, reads `y`/`n` as
booleans and refuses a key given twice; PyYAML's safe loader turns timestamps into datetimes,
keeps `y` a string and lets the last duplicate win. This loader does what kubectl does, so a file
that `vahana run` accepts is one the API server accepts too.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class YAMLProblem(ValueError):
    """Text that is not YAML; `line` and `column` are 1-based, 0 when unknown."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class _Loader(yaml.SafeLoader):
    """Safe loader with kubectl's scalars and duplicate-key check."""

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        value = self.construct_scalar(node)
        return str(value).lower() in ("y", "yes", "true", "on")

    def construct_timestamp(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp)


def load_documents(text: str) -> list[Any]:
    """Every document in `text`, in order; empty documents are None. Raises YAMLProblem."""
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 - a SafeLoader subclass
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
