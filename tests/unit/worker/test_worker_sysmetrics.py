"""Host metrics return sane numbers."""

import hashlib
from pathlib import Path

from vahana_worker import sysmetrics


def test_cpu_percent_is_between_0_and_100() -> None:
    sampler = sysmetrics.CpuSampler()
    data = b"x" * 1_000_000
    for _ in range(50):  # some work so the counters move
        hashlib.sha256(data).digest()
    value = sampler.percent()
    assert 0.0 <= value <= 100.0


def test_cpu_percent_from_fake_proc(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 1 1 1\n")
    sampler = sysmetrics.CpuSampler(tmp_path)
    stat.write_text("cpu  175 0 125 900 0 0 0 0 0 0\n")
    assert sampler.percent() == 50.0  # 100 busy of 200


def test_memory_is_plausible() -> None:
    mem = sysmetrics.memory()
    assert mem.total_bytes > 64 * 2**20
    assert 0 < mem.used_bytes <= mem.total_bytes
    assert 0.0 < mem.percent <= 100.0


def test_memory_from_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text(
        "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n"
    )
    mem = sysmetrics.memory(tmp_path)
    assert (mem.total_bytes, mem.used_bytes) == (1024000, 768000)
    assert mem.percent == 75.0


def test_load_average_and_cpu_count() -> None:
    assert sysmetrics.load_average() >= 0.0
    assert sysmetrics.cpu_count() >= 1
