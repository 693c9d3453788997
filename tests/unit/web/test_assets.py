"""The dashboard's assets: all in the package, nothing fetched from elsewhere, no markup from
data, the vendored chart library with its licence."""

from __future__ import annotations

import importlib.resources
import re

from vahana.web import server

ASSETS = importlib.resources.files("vahana.web") / "assets"
UPLOT_VERSION = "1.6.32"


def ours() -> dict[str, str]:
    """Our own html, css and js (not the vendored library)."""
    return {
        path: body.decode()
        for path, (body, _kind, _etag) in server._load_assets().items()
        if not path.startswith("vendor/") and path.endswith((".html", ".css", ".js"))
    }


def test_every_asset_the_page_loads_ships_in_the_package() -> None:
    assets = server._load_assets()
    index = assets["index.html"][0].decode()
    referenced = re.findall(r'(?:src|href)="/assets/([^"]+)"', index)
    assert referenced and all(path in assets for path in referenced), referenced
    for path, text in ours().items():
        for module in re.findall(r'from "\./([^"]+)"', text):
            assert f"js/{module}" in assets, f"{path} imports a missing {module}"


def test_nothing_is_fetched_from_another_host() -> None:
    for path, text in ours().items():
        external = re.findall(r"https?://[^\s\"')]+", text)
        assert external == [] or path == "favicon.svg", f"{path} refers to {external}"


def test_no_script_turns_data_into_markup() -> None:
    for path, text in ours().items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path} uses {sink}"


def test_the_vendored_chart_library_comes_with_its_licence_and_version() -> None:
    vendor = ASSETS / "vendor" / "uplot"
    assert "MIT License" in (vendor / "LICENSE").read_text()
    assert f"uPlot {UPLOT_VERSION}" in (vendor / "README.md").read_text()
    assert (
        (vendor / "uPlot.iife.min.js")
        .read_bytes()
        .startswith(b"/*! https://github.com/leeoniya/uPlot")
    )
