"""Which commands serve the dashboard: server and operator unless told not to, run when asked."""

from __future__ import annotations

import pytest
from vahana.cli import main


def settings_of(argv: list[str], fixed: dict[str, object]):
    options = main.build_parser().parse_args(argv)
    return main._settings(options, **fixed)


def test_server_and_operator_serve_it_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAHANA_UI_ENABLED", raising=False)
    served = settings_of(["server"], main._dashboard_on({}))
    assert served.ui.enabled and served.ui.port == 8080
    assert not settings_of(["server", "--no-ui"], main._dashboard_on({})).ui.enabled
    monkeypatch.setenv("VAHANA_UI_ENABLED", "false")
    assert not settings_of(["operator"], main._dashboard_on({})).ui.enabled
    on_port = settings_of(["server", "--ui", "--ui-port", "0"], main._dashboard_on({}))
    assert on_port.ui.enabled and on_port.ui.port == 0


def test_run_leaves_it_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAHANA_UI_ENABLED", raising=False)
    assert not settings_of(["run", "-f", "x.yaml"], {}).ui.enabled
