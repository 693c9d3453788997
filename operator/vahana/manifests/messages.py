"""Schema validation errors turned into messages a user can act on: the field, what is wrong, a fix.

jsonschema's own messages quote regular expressions; these name the field
(`spec.resources.cpu`) and say what a good value looks like.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vahana.manifests import quantity, schema

if TYPE_CHECKING:  # jsonschema loads only when a document has a problem to describe
    import jsonschema

_DURATION_HINT = f"give a duration like {quantity.DURATION_EXAMPLES}"
_COUNT_HINT = "give a whole number, 0 or more"

HINTS: Mapping[str, str] = {
    "apiVersion": f"write apiVersion: {schema.API_VERSION}",
    "metadata": "give the object a metadata section with a name",
    "name": "use lower-case letters, digits, '-' and '.'; start and end with a letter or digit",
    "namespace": "use lower-case letters, digits and '-', like my-team",
    "spec": "give the object a spec",
    "command": "give the shell command to run",
    "cpu": f"give CPU cores like {quantity.CPU_EXAMPLES}; fractions must be quoted",
    "memory": f"give memory like {quantity.MEMORY_EXAMPLES}",
    "gpu": "give a whole number of GPUs, 0 or more",
    "env": "name variables with a letter or _, then letters, digits or _",
    "source": "give a path or URL to copy from",
    "destination": "give a path or URL to copy to",
    "priority": "give a whole number; higher runs first",
    "deadline": "give an RFC 3339 time with a zone, like 2030-01-31T18:00:00Z",
    "timeout": _DURATION_HINT,
    "backoff": _DURATION_HINT,
    "maxBackoff": _DURATION_HINT,
    "idleTimeout": _DURATION_HINT,
    "heartbeatInterval": _DURATION_HINT,
    "walltime": _DURATION_HINT,
    "drainTimeout": _DURATION_HINT,
    "maxTaskRetries": _COUNT_HINT,
    "maxInfraRetries": _COUNT_HINT,
    "ttlSecondsAfterFinished": "give a whole number of seconds, 0 or more",
}

_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "empty",
}


def format_path(parts: Iterable[Any]) -> str:
    """`["spec", "inputFiles", 0, "source"]` → `spec.inputFiles[0].source`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def describe_value(value: Any) -> str:
    """A short account of a value for messages: `the string "x"`, `the number 0.5`, `a list`."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f'the string "{shown}"'
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _hint(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return HINTS.get(leaf, "")


def _too_long_hint(path: str) -> str:
    """A value over its length bound: the field's own hint says what to write, not how to
    shorten it."""
    if path.endswith("command"):
        return "put a long script in a file (inputFiles can bring it) and run that"
    return "shorten it"


def _unknown_field(path: str, key: Any, known: Iterable[str]) -> tuple[str, str, str]:
    known = sorted(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        hint = f"did you mean {close[0]}?"
    elif known:
        hint = f"known fields here: {', '.join(known)}"
    else:
        hint = "this section takes no fields"
    return _join(path, key), "unknown field", hint


def describe(error: jsonschema.ValidationError) -> list[tuple[str, str, str]]:
    """(field path, what is wrong, how to fix it) for one validation error."""
    path = format_path(error.absolute_path)
    kind, instance = error.validator, error.instance
    value: Any = error.validator_value
    if kind == "required":
        match = re.match(r"^'(.*)' is a required property$", error.message)
        key = match[1] if match else ", ".join(str(v) for v in value)
        return [(_join(path, key), "required", _hint(_join(path, key)))]
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return [_unknown_field(path, key, known) for key in instance if key not in known]
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        names = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in wanted)
        return [(path, f"must be {names}, not {describe_value(instance)}", _hint(path))]
    if kind == "anyOf" and isinstance(error.schema, Mapping):
        if error.schema.get("x-kubernetes-int-or-string"):
            what = f"must be a whole number or a string, not {describe_value(instance)}"
            return [(path, what, _hint(path))]
        return [(path, f"{describe_value(instance)} is not valid here", _hint(path))]
    if kind in ("minimum", "maximum"):
        sign = "≥" if kind == "minimum" else "≤"
        return [(path, f"must be {sign} {value}, not {instance!r}", _hint(path))]
    if kind == "minLength" and value == 1:
        return [(path, "must not be empty", _hint(path))]
    if kind in ("minLength", "maxLength"):
        bound = "at least" if kind == "minLength" else "at most"
        hint = _hint(path) if kind == "minLength" else _too_long_hint(path)
        return [(path, f"must be {bound} {value} characters long", hint)]
    if kind in ("minItems", "maxItems", "minProperties", "maxProperties"):
        bound = "at least" if kind.startswith("min") else "at most"
        noun = "items" if kind.endswith("Items") else "entries"
        hint = _hint(path) if kind.startswith("min") else f"give at most {value} {noun}"
        return [(path, f"must have {bound} {value} {noun}", hint)]
    if kind == "pattern" and path.endswith("memory") and str(instance)[-1:] in ("m", "u", "n"):
        wrong = f"{describe_value(instance)} means milli-bytes"
        return [(path, wrong, f"did you mean {str(instance)[:-1]}Mi?")]
    if kind == "pattern":
        return [(path, f"{describe_value(instance)} is not valid", _hint(path) or f"match {value}")]
    if kind == "enum":
        choices = ", ".join(str(v) for v in value)
        return [(path, f"must be one of {choices}, not {describe_value(instance)}", _hint(path))]
    if kind == "format":
        return [(path, f"{describe_value(instance)} is not a valid {value}", _hint(path))]
    if kind == "x-kubernetes-validations":
        return [(path, error.message, "")]
    return [(path, error.message, _hint(path))]
