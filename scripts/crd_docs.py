"""Writes docs/crds.md, the CRD reference, from the CRD files in `crds/` (their one source).

    python scripts/crd_docs.py            # print the reference
    python scripts/sync_chart.py          # writes it to docs/crds.md (and --check checks it)

Every field of each CRD's OpenAPI schema becomes a table row: its path, type, default, the
validation the API server applies (required, enum, minimum, pattern, …) and its description;
the CEL rules (`x-kubernetes-validations`) are listed with the message they refuse with.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"
# The order a reader meets them in.
ORDER = ["tasks.vahana.dev.yaml", "workerpools.vahana.dev.yaml", "workers.vahana.dev.yaml"]

INTRO = """\
# CRD reference

Generated from `crds/` by `scripts/crd_docs.py` (run `python scripts/sync_chart.py`): do not edit.
The API server applies everything in the *validation* column itself: a `kubectl apply` of an
object that breaks a rule is refused with the field named, before the operator sees it. Unknown
fields are refused too (the schemas are structural; `kubectl` validates strictly).

All three kinds are in the API group `vahana.dev`, version `v1alpha1`, namespaced, in the
category `vahana` (`kubectl get vahana` lists them all).
"""


def type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {})) or 'any'}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_of(schema['additionalProperties'])}"
    if schema.get("format") in ("date-time", "int32", "int64"):
        return f"{kind} ({schema['format']})"
    return str(kind)


def rules_of(schema: dict[str, Any], *, required: bool) -> str:
    rules = []
    if required:
        rules.append("**required**")
    for key, label in (
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minLength", "length ≥ {}"),
        ("maxLength", "length ≤ {}"),
        ("minItems", "items ≥ {}"),
        ("maxProperties", "entries ≤ {}"),
    ):
        if key in schema:
            rules.append(label.format(schema[key]))
    if "enum" in schema:
        rules.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "pattern" in schema:
        rules.append("a " + pattern_name(schema["pattern"]))
    value_schema = schema.get("additionalProperties")
    if isinstance(value_schema, dict) and "maxLength" in value_schema:
        rules.append(f"values: length ≤ {value_schema['maxLength']}")
    if schema.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(schema.get("x-kubernetes-list-map-keys", []))
        rules.append(f"list keyed by {keys}")
    for rule in schema.get("x-kubernetes-validations", []):
        rules.append(f"rule: {rule['message']}")
    return "; ".join(rules)


def pattern_name(pattern: str) -> str:
    if "ms|s|m|h" in pattern:
        return "duration (`90s`, `1h30m`, `500ms`)"
    if "KMGTPE" in pattern:
        return "Kubernetes quantity (`2`, `500m`, `512Mi`)"
    return f"match of `{pattern}`"


def rows(
    schema: dict[str, Any], prefix: str, *, required: bool = False
) -> Iterator[tuple[str, str, str, str, str]]:
    """(path, type, default, validation, description) of `schema` and everything below it."""
    if prefix:
        default = schema.get("default")
        yield (
            f"`{prefix}`",
            type_of(schema),
            "" if default is None else f"`{default}`",
            rules_of(schema, required=required),
            " ".join(str(schema.get("description", "")).split()),
        )
    needed = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        yield from rows(child, f"{prefix}.{name}" if prefix else name, required=name in needed)
    items = schema.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield from rows({**items, "description": ""}, f"{prefix}[]")


def table(lines: list[str], schema: dict[str, Any], root: str, *, required: bool) -> None:
    lines += ["| field | type | default | validation | description |", "|---|---|---|---|---|"]
    for path, kind, default, validation, description in rows(schema, root, required=required):
        if path.endswith("[]`") and not description:
            continue  # the array's own row already says what its items are
        cells = [path, kind, default, validation, description]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")


def reference(paths: list[Path]) -> str:
    lines = [INTRO]
    for path in paths:
        crd = yaml.safe_load(path.read_text())
        names = crd["spec"]["names"]
        (version,) = crd["spec"]["versions"]
        schema = version["schema"]["openAPIV3Schema"]
        lines += [
            f"## {names['kind']}",
            "",
            " ".join(schema.get("description", "").split()),
            "",
            f"`kubectl get {names['plural']}` (short name"
            f" {', '.join(f'`{n}`' for n in names.get('shortNames', []))}); source"
            f" `crds/{path.name}`. Columns: "
            + ", ".join(
                f"{c['name']}{' (with `-o wide`)' if c.get('priority') else ''}"
                for c in version.get("additionalPrinterColumns", [])
            )
            + ".",
            "",
        ]
        for part in ("spec", "status"):
            if part in schema.get("properties", {}):
                lines += [f"### {names['kind']} {part}", ""]
                required = part in schema.get("required", [])
                table(lines, schema["properties"][part], part, required=required)
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def crd_paths() -> list[Path]:
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(CRDS.glob("*.yaml"), key=lambda p: (rank.get(p.name, len(ORDER)), p.name))


if __name__ == "__main__":
    sys.stdout.write(reference(crd_paths()))
