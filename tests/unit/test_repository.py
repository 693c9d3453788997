"""Repository invariants: generated stubs are current, and the import layers hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_the_protos() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a dev dependency (make venv)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_import_layers_hold() -> None:
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if linter is None:
        pytest.skip("import-linter is a dev dependency (make venv)")
    result = subprocess.run([linter], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_crds_and_their_docs_are_copies_of_crds() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_chart.py"), "--check", "--no-manifests"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, f"run `make chart`:\n{result.stdout}{result.stderr}"
