"""Durations and sizes as given on the command line."""

import pytest
from vahana_worker import durations, sizes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2m3s", 123.0),
        ("45", 45.0),
        ("0.25", 0.25),
        (" 10s ", 10.0),
        ("0", 0.0),
        ("1d", 86400.0),
    ],
)
def test_parse_duration_accepts_go_style_and_plain_seconds(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "h", "1h 30m", "-5", "5s3", "nan", "inf"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        durations.parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.25, "250ms"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert durations.format_duration(seconds) == text
    assert durations.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("512Mi", 512 * 2**20),
        ("2Gi", 2 * 2**30),
        ("1G", 10**9),
        ("64Ki", 65536),
        ("1.5Gi", int(1.5 * 2**30)),
        ("10k", 10000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert sizes.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "Gi", "12Zi", "-1", "1 Gi x"])
def test_parse_size_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        sizes.parse_size(text)
