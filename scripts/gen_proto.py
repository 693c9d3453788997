"""Generates the Python stubs of `proto/` for both distributions, or checks that they are current.

    python scripts/gen_proto.py           # regenerate
    python scripts/gen_proto.py --check   # exit 1 if any committed stub differs

The worker ships only `worker.proto`; the scheduler gets every proto. protoc writes absolute
imports (`import worker_pb2`), which would need the stub directory on sys.path, so they are
rewritten to package-relative imports.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
TARGETS: dict[Path, list[str]] = {
    ROOT / "operator" / "vahana" / "proto": ["worker.proto", "task_service.proto"],
    ROOT / "worker" / "vahana_worker" / "proto": ["worker.proto"],
}
_ABSOLUTE_IMPORT = re.compile(r"^import (\w+_pb2(?:_grpc)?) as (\w+)$", re.MULTILINE)
_INIT = '"""Generated from proto/ by scripts/gen_proto.py: do not edit."""\n'


def generate(out_dir: Path, protos: list[str]) -> None:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency only

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {protos}")
    for path in out_dir.glob("*_pb2*.py*"):
        text = _ABSOLUTE_IMPORT.sub(r"from . import \1 as \2", path.read_text())
        path.write_text(text)
    (out_dir / "__init__.py").write_text(_INIT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    options = parser.parse_args()
    stale: list[str] = []
    for target, protos in TARGETS.items():
        if not options.check:
            for old in target.glob("*_pb2*"):
                old.unlink()
            generate(target, protos)
            continue
        with tempfile.TemporaryDirectory() as scratch:
            fresh_dir = Path(scratch)
            generate(fresh_dir, protos)
            fresh = {p.name: p.read_text() for p in fresh_dir.iterdir() if p.is_file()}
            committed = {p.name: p.read_text() for p in target.glob("*") if p.is_file()}
            for name in sorted(set(fresh) | set(committed)):
                if fresh.get(name) != committed.get(name):
                    diff = difflib.unified_diff(
                        committed.get(name, "").splitlines(),
                        fresh.get(name, "").splitlines(),
                        f"committed/{name}",
                        f"generated/{name}",
                        lineterm="",
                        n=1,
                    )
                    stale.append(
                        f"{target.relative_to(ROOT)}/{name}\n" + "\n".join(list(diff)[:20])
                    )
    if stale:
        print("stale generated stubs (run `make proto`):\n" + "\n".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
