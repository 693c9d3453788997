"""Task files written to hurt: alias bombs, alias cycles, huge or non-UTF-8 files, misspelt
metadata, terminal escapes in names, paths no worker can use. Each is refused at once, with the
field and how to fix it, and nothing of it reaches a terminal raw."""

from __future__ import annotations

import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from vahana.manifests import errors, tasks, yamlload

HEADER = "apiVersion: vahana.dev/v1alpha1\nkind: Task\n"
BOMB = "".join(
    f"{a}: &{a} [{', '.join([f'*{b}'] * 9) if b else ', '.join(['lol'] * 9)}]\n"
    for a, b in zip("abcdefghi", ["", *"abcdefgh"], strict=True)
)
"""The billion laughs: 9 levels of 9 aliases each, 9⁹ strings once expanded."""


def refused(text: str) -> str:
    with pytest.raises(errors.ManifestError) as caught:
        tasks.parse_task_documents(text, source="t.yaml")
    return str(caught.value)


def test_an_alias_bomb_is_refused_at_once() -> None:
    assert len(BOMB) < 700
    started = time.perf_counter()
    message = refused(HEADER + "metadata: {name: a}\nspec: {command: x}\n---\n" + BOMB)
    assert time.perf_counter() - started < 1.0
    assert "aliases expand to more than 10000 nodes" in message
    assert "write the values out" in message and "fix the YAML syntax" not in message


def test_an_alias_cycle_is_refused() -> None:
    assert "refers to a node that contains it" in refused("a: &x [1, *x]\n")


def test_a_few_aliases_are_fine() -> None:
    task = "{apiVersion: vahana.dev/v1alpha1, kind: Task, metadata: {name: %s}, spec: %s}"
    text = "kind: List\nitems:\n" + "".join(
        f"- {task % (name, spec)}\n"
        for name, spec in (
            ("a", "{command: x, env: &env {A: '1', B: '2'}}"),
            ("b", "{command: z, env: *env}"),
        )
    )
    [a, b] = tasks.parse_task_documents(text, source="t.yaml")
    assert a.spec.environment == b.spec.environment == {"A": "1", "B": "2"}


def test_libyaml_reads_a_2000_task_file_at_least_as_fast_as_the_python_parser() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml: the pure-Python parser is the fallback")
    assert issubclass(yamlload._Loader, yaml.CSafeLoader)
    text = "---\n".join(
        HEADER + f"metadata: {{name: t{i}}}\nspec: {{command: echo {i}, env: {{A: '1'}}}}\n"
        for i in range(2000)
    )

    class PythonLoader(yaml.SafeLoader):
        yaml_implicit_resolvers = yamlload._Loader.yaml_implicit_resolvers

    def best(load: object) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            load()  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        return min(times)

    ours = best(lambda: yamlload.load_documents(text))
    python = best(lambda: list(yaml.load_all(text, Loader=PythonLoader)))  # noqa: S506
    assert ours <= python, (ours, python)


def test_bytes_that_are_not_utf8_are_named_by_file_and_offset() -> None:
    with pytest.raises(yamlload.YAMLProblem) as caught:
        yamlload.decode(b"kind: Task\nmetadata: {name: \xff}\n", source="t.yaml")
    assert caught.value.message.startswith("t.yaml: not UTF-8 text: byte 0xff at offset 28")
    assert caught.value.hint == "save the file as UTF-8"
    assert "(line 2)" in caught.value.message
    assert yamlload.decode(b"\xef\xbb\xbfkind: Task\n", source="t.yaml") == "kind: Task\n"


def test_a_file_past_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(yamlload.YAMLProblem) as caught:
        yamlload.decode(b" " * (yamlload.MAX_BYTES + 1), source="big.yaml")
    assert f"big.yaml: larger than {yamlload.MAX_BYTES} bytes" in caught.value.message


def test_an_unknown_metadata_field_is_reported_like_an_unknown_spec_field() -> None:
    message = refused(HEADER + "metadata: {name: a, lables: {x: y}}\nspec: {command: x}\n")
    assert "metadata.lables: unknown field" in message
    fine = (
        HEADER
        + "metadata: {name: a, labels: {app: web}, resourceVersion: '1'}\nspec: {command: x}\n"
    )
    assert tasks.parse_task_documents(fine, source="t.yaml")


def test_escapes_and_huge_names_are_shown_escaped_and_cut() -> None:
    evil = "\x1b]0;owned\x07\x1b[2J" + "n" * 100_000 + "\u202e"
    message = refused(
        HEADER + f'metadata: {{name: "{evil.encode("unicode_escape").decode()}"}}\n'
        "spec: {command: x}\n"
    )
    assert "\x1b" not in message and "\x07" not in message and "\u202e" not in message
    assert "\\x1b]0;owned\\x07" in message
    assert len(message) < 2_000


@pytest.mark.parametrize(
    ("files", "path"),
    [
        ("inputFiles: [{source: a, destination: /etc/passwd}]", "spec.inputFiles[0].destination"),
        ("inputFiles: [{source: a, destination: x/../../y}]", "spec.inputFiles[0].destination"),
        ("outputFiles: [{source: ../secret, destination: out/}]", "spec.outputFiles[0].source"),
        ("outputFiles: [{source: /abs, destination: out/}]", "spec.outputFiles[0].source"),
        ("outputFiles: [{source: a, destination: ../../up}]", "spec.outputFiles[0].destination"),
        (
            "outputFiles: [{source: a, destination: 'file://../up'}]",
            "spec.outputFiles[0].destination",
        ),
    ],
)
def test_paths_no_worker_accepts_are_refused_before_anything_runs(files: str, path: str) -> None:
    message = refused(HEADER + f"metadata: {{name: a}}\nspec:\n  command: x\n  {files}\n")
    assert path in message


def test_a_nul_byte_in_a_command_is_refused_before_submitting() -> None:
    message = refused(HEADER + 'metadata: {name: a}\nspec: {command: "echo \\0 x"}\n')
    assert "spec.command: must not contain NUL bytes" in message


def test_an_alias_bomb_in_flow_style_is_refused_too() -> None:
    """Anchors right after a flow indicator (`[&a`, `{x: &a`) are found like any other."""
    flow = (
        "{"
        + ", ".join(
            f"{a}: &{a} [" + (", ".join([f"*{b}"] * 9) if b else ", ".join(["lol"] * 9)) + "]"
            for a, b in zip("abcdefghi", ["", *"abcdefgh"], strict=True)
        )
        + "}\n"
    )
    nested = "[" + "[&a [lol, lol], " + ", ".join(["*a"] * 20_000) + "]]\n"  # `[&a`
    assert "aliases expand" in refused(flow)
    assert "aliases expand" in refused(nested)


def test_a_file_without_anchors_skips_the_alias_count_and_one_with_an_ampersand_does_not() -> None:
    plain = HEADER + "metadata: {name: a}\nspec: {command: true}\n"
    ampersand = HEADER + "metadata: {name: b}\nspec: {command: 'make && make install &> log'}\n"
    assert yamlload._ANCHOR.search(plain) is None
    assert yamlload._ANCHOR.search(ampersand) is not None  # walked, to be sure
    [task] = tasks.parse_task_documents(ampersand, source="t.yaml")
    assert task.spec.command == "make && make install &> log"


@settings(max_examples=200, deadline=None)
@given(
    shared=st.recursive(
        st.one_of(st.integers(), st.text(max_size=5)),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    flow=st.booleans(),
)
def test_every_anchor_yaml_writes_is_found(shared: object, flow: bool) -> None:
    """What PyYAML's emitter writes for a value used twice (an anchor and an alias), in block
    or flow style, is text in which the anchor is found: its aliases are counted."""
    text = yaml.safe_dump({"a": shared, "b": [shared]}, default_flow_style=flow)
    if isinstance(shared, list | dict):  # a collection used twice: written with an anchor
        assert yamlload._ANCHOR.search(text) is not None, text


def test_duplicate_keys_are_found_however_they_are_written() -> None:
    for text in ("{a: 1, a: 2}", "{1: x, 1: y}", "{'a': 1, a: 2}", "{true: 1, yes: 2}"):
        with pytest.raises(yamlload.YAMLProblem, match="twice"):
            yamlload.load_documents(text)
    assert yamlload.load_documents("{a: 1, 'b': 2, 3: c}") == [{"a": 1, "b": 2, 3: "c"}]


def test_a_value_over_its_size_bound_is_told_to_be_smaller_not_how_to_write_it() -> None:
    long_command = refused(HEADER + "metadata: {name: a}\nspec: {command: " + "x" * 70_000 + "}\n")
    assert "spec.command: must be at most 65536 characters long" in long_command
    assert "put a long script in a file" in long_command
    assert "give the shell command to run" not in long_command
    env = ", ".join(f"V{i}: x" for i in range(300))
    many = refused(HEADER + "metadata: {name: a}\nspec: {command: x, env: {" + env + "}}\n")
    assert "spec.env: must have at most 256 entries" in many
    assert "give at most 256 entries" in many and "name variables" not in many


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority: 2147483648", "spec.priority: must be ≤ 2147483647"),
        ("priority: -2147483649", "spec.priority: must be ≥ -2147483648"),
        ("resources: {gpu: 2147483648}", "spec.resources.gpu: must be ≤ 2147483647"),
        ("retry: {maxTaskRetries: 4294967296}", "spec.retry.maxTaskRetries: must be ≤ 2147483647"),
    ],
)
def test_a_number_past_what_the_protocol_carries_is_refused_naming_the_field(
    field: str, value: str
) -> None:
    assert value in refused(HEADER + "metadata: {name: a}\nspec:\n  command: x\n  " + field + "\n")
