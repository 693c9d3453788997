"""Kubernetes quantities and durations: parsing, errors, and round trips through the formatters."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vahana.manifests import quantity


@pytest.mark.parametrize(
    ("value", "cores"),
    [
        ("500m", 0.5),
        (2, 2.0),
        ("2", 2.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("100m", 0.1),
        ("1k", 1000.0),
        ("1e3", 1000.0),
        ("250000u", 0.25),
        (".5", 0.5),
        (0.5, 0.5),
    ],
)
def test_cpu(value: int | float | str, cores: float) -> None:
    assert quantity.parse_cpu(value) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1e3", 1000),
        (1024, 1024),
        ("1Ki", 1024),
        ("1.5Gi", 3 * 2**29),
        ("2Ti", 2 * 2**40),
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("0", 0),
        ("1e-3", 1),
    ],
)
def test_memory(value: int | str, size: int) -> None:
    assert quantity.parse_memory(value) == size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2m3s", 123.0),
        ("0s", 0.0),
        ("1h1ms", 3600.001),
    ],
)
def test_duration(value: str, seconds: float) -> None:
    assert quantity.parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["-1", "-500m", -1, "abc", "", "1.2.3", "5x", True, None, "1Mb"])
def test_bad_cpu_says_what_is_valid(value: object) -> None:
    with pytest.raises(ValueError, match=r"CPU"):
        quantity.parse_cpu(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["500m", "-1Gi", -5, "lots", "1GB"])
def test_bad_memory_says_what_is_valid(value: object) -> None:
    with pytest.raises(ValueError, match=r"memory|Mi"):
        quantity.parse_memory(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1d", "90", "", "h", "1 h", "-5s", "1.s", 90])
def test_bad_duration_says_what_is_valid(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        quantity.parse_duration(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**7))
def test_cpu_millicores_round_trip(millis: int) -> None:
    cores = millis / 1000
    assert quantity.parse_cpu(quantity.format_cpu(cores)) == pytest.approx(cores)
    assert quantity.parse_cpu(f"{millis}m") == pytest.approx(cores)


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_round_trip(size: int) -> None:
    assert quantity.parse_memory(quantity.format_memory(size)) == size


@given(st.integers(min_value=0, max_value=10**5), st.sampled_from(sorted(quantity._BINARY)))
def test_binary_suffixes(number: int, suffix: str) -> None:
    assert quantity.parse_memory(f"{number}{suffix}") == number * quantity._BINARY[suffix]


@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trip(millis: int) -> None:
    seconds = millis / 1000
    text = quantity.format_duration(seconds)
    assert quantity.parse_duration(text) == pytest.approx(seconds, abs=1e-6)


@given(st.text(max_size=20))
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (quantity.parse_cpu, quantity.parse_memory, quantity.parse_duration):
        with contextlib.suppress(ValueError):
            parse(text)
