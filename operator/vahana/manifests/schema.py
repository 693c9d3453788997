"""The CRDs' OpenAPI schemas as JSON Schema validators: files are checked as the API server would.

`crds/` at the repository root is the one source (shipped as `vahana/crds`, a symlink in the
source tree and real files in the wheel). The conversion follows Kubernetes' structural-schema
rules: an object with neither `additionalProperties` nor `x-kubernetes-preserve-unknown-fields`
refuses unknown fields (as `kubectl apply --validate=strict` does), `x-kubernetes-int-or-string`
accepts an integer or a string, and the CEL rules (`x-kubernetes-validations`) are checked by
Python equivalents of the few forms the CRDs use. A rule of any other form fails loudly at load
time, so a new rule in a CRD cannot be silently skipped here. Rules on `oldSelf` only apply to
updates and are skipped.

Two validators come from one schema: `is_valid`, compiled once to Python code (fastjsonschema)
plus the CEL checks at the places the schema names, answers yes or no in a few µs per object
without walking the schema again; `validator` (jsonschema, loaded only then) gives every
problem with its path, for the objects `is_valid` refused.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import jsonschema
    import jsonschema.protocols

GROUP = "vahana.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CRD_FILES = {
    "Task": "tasks.vahana.dev.yaml",
    "WorkerPool": "workerpools.vahana.dev.yaml",
    "Worker": "workers.vahana.dev.yaml",
    "Queue": "queues.vahana.dev.yaml",
}

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 253,
            "pattern": rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$",
        },
        "namespace": {"type": "string", "maxLength": 63, "pattern": rf"^{_DNS_LABEL}$"},
        "uid": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        # The rest of Kubernetes' ObjectMeta: the API server sets them; any value passes.
        **{
            field: {}
            for field in (
                "generateName",
                "selfLink",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "ownerReferences",
                "finalizers",
                "managedFields",
            )
        },
    },
    "additionalProperties": False,
}
"""What a file's `metadata` may hold: Kubernetes' ObjectMeta fields; a misspelt one (`lables`)
is reported as an unknown field, as in `spec`."""


class SchemaError(Exception):
    """A CRD cannot be turned into a validator (a bug in `crds/`, not in a user's file)."""


CelCheck = Callable[[Any], Iterator[tuple[tuple[str, ...], str]]]
"""Checks one value against a rule; yields (field path below the value, detail) per violation."""


_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML has it: the Task CRD in 6 ms instead of 40."""


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of `kind` (Task, WorkerPool, Worker) as shipped; a copy of
    the one read once per process, so the caller may change it."""
    try:
        name = CRD_FILES[kind]
    except KeyError:
        raise SchemaError(f"no CRD for kind {kind!r}; known: {', '.join(CRD_FILES)}") from None
    return copy.deepcopy(_read_crd(name))


@functools.cache
def _read_crd(name: str) -> dict[str, Any]:
    text = importlib.resources.files("vahana").joinpath("crds", name).read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_Loader)
    if not isinstance(document, dict):
        raise SchemaError(f"crds/{name} does not hold a CustomResourceDefinition")
    return document


def openapi_schema(kind: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of the served version of `kind`."""
    for version in crd(kind)["spec"]["versions"]:
        if version["name"] == VERSION:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise SchemaError(f"the {kind} CRD has no version {VERSION}")


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Kubernetes structural schema → JSON Schema with the API server's strictness."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "x-kubernetes-validations":
            for rule in value:
                compile_rule(rule["rule"], rule.get("message", ""))  # fail early on unknown forms
            out[key] = value
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


# --- CEL rules: the forms the CRDs use, each with its Python equivalent -----------------------

_MAP_KEYS_MATCH = re.compile(r"self\.all\((\w+), \1\.matches\('([^']*)'\)\)")
_LE = re.compile(r"self\.(\w+) <= self\.(\w+)")
_TYPE_NEEDS_SECTION = re.compile(r"self\.(\w+) != '(\w+)' \|\| has\(self\.(\w+)\)")
_SECTION_ONLY_FOR_TYPE = re.compile(r"!has\(self\.(\w+)\) \|\| self\.(\w+) == '(\w+)'")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@functools.cache
def compile_rule(rule: str, message: str) -> CelCheck | None:
    """A Python check for a CEL rule of a known form; None for update-only (`oldSelf`) rules."""
    if "oldSelf" in rule:
        return None
    if match := _MAP_KEYS_MATCH.fullmatch(rule):
        key_re = re.compile(match[2])

        def keys_match(value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
            if isinstance(value, Mapping):
                for key in value:
                    if not isinstance(key, str) or not key_re.search(key):
                        yield (), f"{message} (got {key!r})"

        return keys_match
    if match := _LE.fullmatch(rule):
        low, high = match[1], match[2]

        def less_or_equal(value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
            if isinstance(value, Mapping):
                a: Any = value.get(low)
                b: Any = value.get(high)
                if _is_number(a) and _is_number(b) and a > b:
                    yield (low,), f"{message} (got {low} {a}, {high} {b})"

        return less_or_equal
    if match := _TYPE_NEEDS_SECTION.fullmatch(rule):
        field, kind, section = match[1], match[2], match[3]

        def needs_section(value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
            if isinstance(value, Mapping) and value.get(field) == kind and section not in value:
                yield (section,), message

        return needs_section
    if match := _SECTION_ONLY_FOR_TYPE.fullmatch(rule):
        section, field, kind = match[1], match[2], match[3]

        def section_only_for(value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
            if isinstance(value, Mapping) and section in value and value.get(field) != kind:
                yield (section,), message

        return section_only_for
    raise SchemaError(
        f"CEL rule {rule!r} has no Python equivalent in vahana.manifests.schema; add one"
    )


def _check_cel(
    validator: jsonschema.protocols.Validator,
    rules: list[Mapping[str, Any]],
    instance: Any,
    schema: Mapping[str, Any],
) -> Iterator[jsonschema.ValidationError]:
    import jsonschema

    for rule in rules:
        check = compile_rule(rule["rule"], rule.get("message", ""))
        if check is None:
            continue
        for below, detail in check(instance):
            yield jsonschema.ValidationError(detail, path=below)


def _is_rfc3339(value: object) -> bool:
    return not isinstance(value, str) or _RFC3339_RE.fullmatch(value) is not None


def object_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of a whole `kind` object as found in a file: apiVersion, kind, metadata, spec.

    `status` is not checked: the API server ignores it on create, and so does `vahana run`.
    """
    schema = to_json_schema(openapi_schema(kind))
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "enum": [API_VERSION]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    properties["metadata"] = METADATA_SCHEMA
    properties["status"] = {}
    schema["required"] = ["apiVersion", "kind", "metadata", *schema.get("required", [])]
    return schema


@functools.cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    """A validator for whole `kind` objects; errors come from `iter_errors`."""
    import jsonschema

    schema = object_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_is_rfc3339)
    extended = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"x-kubernetes-validations": _check_cel}
    )
    result: jsonschema.protocols.Validator = extended(schema, format_checker=formats)
    return result


CelSite = tuple[tuple[str, ...], tuple[CelCheck, ...]]
"""Where rules apply (keys from the object's root, "*" for every item or value) and their checks."""


def cel_sites(node: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[CelSite]:
    """Every place of a JSON schema that carries CEL rules, with the rules' checks."""
    checks = tuple(
        check
        for rule in node.get("x-kubernetes-validations", ())
        if (check := compile_rule(rule["rule"], rule.get("message", ""))) is not None
    )
    if checks:
        yield path, checks
    for name, sub in node.get("properties", {}).items():
        yield from cel_sites(sub, (*path, name))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), Mapping):
            yield from cel_sites(node[key], (*path, "*"))


def _values_at(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield value
    elif path[0] == "*":
        items = value.values() if isinstance(value, Mapping) else value
        if isinstance(value, Mapping | list):
            for item in items:
                yield from _values_at(item, path[1:])
    elif isinstance(value, Mapping) and path[0] in value:
        yield from _values_at(value[path[0]], path[1:])


@functools.cache
def is_valid(kind: str) -> Callable[[Any], bool]:
    """A yes/no check of whole `kind` objects, the same verdict as `validator(kind)`'s errors.

    The schema is compiled once to Python code (fastjsonschema), so each object costs a few
    µs: a file of 100,000 Tasks is not 100,000 walks of the schema. Defaults are not filled
    in (the object is left as it was read).
    """
    import fastjsonschema

    schema = object_schema(kind)
    # Without detailed exceptions (a refusal is explained by `validator`), the generated code
    # does not quote the schema at each check: a third as long, the Task's 25 ms less to build.
    compiled = fastjsonschema.compile(
        schema, formats={"date-time": _is_rfc3339}, use_default=False, detailed_exceptions=False
    )
    sites = list(cel_sites(schema))

    def check(obj: Any) -> bool:
        try:
            compiled(obj)
        except fastjsonschema.JsonSchemaException:
            return False
        return not any(
            next(iter(rule(value)), None) is not None
            for path, rules in sites
            for value in _values_at(obj, path)
            for rule in rules
        )

    return check
