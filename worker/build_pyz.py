"""Builds the worker into one self-contained zipapp with shiv: `dist/worker.pyz`.

    .venv/bin/python worker/build_pyz.py                 # writes dist/worker.pyz
    .venv/bin/python worker/build_pyz.py -o /tmp/w.pyz   # elsewhere
    python3 dist/worker.pyz --server-address=sched:50051 ...

The zipapp bundles `vahana_worker` and the grpcio, protobuf, obstore, asyncssh (with
cryptography) and setproctitle installed in the interpreter that runs this script (the versions
the tests ran with); nothing is downloaded. shiv extracts it to
~/.shiv (or $SHIV_ROOT) on first run.

The pyz is tied to the Python version and platform it was built for: grpcio (and obstore,
cryptography, cffi) ship compiled extensions (`cygrpc.cpython-<major><minor>-<platform>.so`),
so a pyz built with CPython 3.11 on Linux x86_64 runs only on CPython 3.11 on Linux x86_64.
Build it with the interpreter the compute nodes will run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER_DIR = Path(__file__).resolve().parent
ROOT = WORKER_DIR.parent
PACKAGE = WORKER_DIR / "vahana_worker"
BUNDLED_DISTRIBUTIONS = (
    "grpcio",
    "protobuf",
    "typing_extensions",
    # storage: s3:// through obstore, sftp:// through asyncssh (and its cryptography).
    "obstore",
    "asyncssh",
    "cryptography",
    "cffi",
    "pycparser",
    "setproctitle",  # local pools' forked workers only; bundled as every dependency is
)
ENTRY_POINT = "vahana_worker.cli:main"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def stage(site_packages: Path) -> None:
    """Fills `site_packages` with the worker package and its installed dependencies."""
    shutil.copytree(PACKAGE, site_packages / "vahana_worker", ignore=_IGNORE)
    for name in BUNDLED_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # scripts outside site-packages, caches
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                target = site_packages / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def build(output: Path, *, python: str = "/usr/bin/env python3") -> Path:
    """Builds the zipapp at `output` and returns its path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vahana-pyz-") as tmp:
        site_packages = Path(tmp) / "site-packages"
        stage(site_packages)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "shiv",
                "--site-packages",
                str(site_packages),
                "--entry-point",
                ENTRY_POINT,
                "--output-file",
                str(output),
                "--python",
                python,
                "--compressed",
                "--reproducible",
            ],
            check=True,
        )
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the worker zipapp (dist/worker.pyz).")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "dist" / "worker.pyz")
    parser.add_argument(
        "--python",
        default="/usr/bin/env python3",
        help="shebang interpreter (default: /usr/bin/env python3)",
    )
    args = parser.parse_args()
    path = build(args.output, python=args.python)
    print(
        f"built {path} for CPython {platform.python_version()} on "
        f"{sys.platform}-{platform.machine()}; it runs only there"
    )


if __name__ == "__main__":
    main()
