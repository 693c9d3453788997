"""The Dockerfile, checked as far as this machine allows: no container engine runs here.

What the image would hold is rebuilt without one: the same build context (the Dockerfile's
COPY sources, through .dockerignore), the same `pip wheel` of worker/ and operator/, the same
offline install of those wheels into a fresh virtualenv; then both entry points start.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DISTRIBUTIONS = {"vahana": ROOT / "operator", "vahana-worker": ROOT / "worker"}
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make", "python3-dev", "libpq-dev")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with continuation lines joined and comments dropped."""
    logical = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    return args, stages


def exec_form(value: str) -> list[str]:
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def console_scripts() -> dict[str, str]:
    """Console script -> the distribution that declares it."""
    scripts = {}
    for distribution, directory in DISTRIBUTIONS.items():
        project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
        assert project["name"] == distribution
        scripts.update(dict.fromkeys(project.get("scripts", {}), distribution))
    return scripts


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_the_dockerfile_is_multi_stage_on_python_slim_and_non_root(stages: list[Stage]) -> None:
    builder, runtime = stages[0], stages[-1]
    assert len(stages) >= 2
    assert runtime.base == builder.base == "python:3.11-slim"
    assert any("pip wheel" in run for run in builder.all("RUN"))
    assert runtime.all("USER") == ["65532:65532"]
    labels = " ".join(runtime.all("LABEL"))
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in labels
    # Small: the runtime copies nothing from the build context (only the builder's worker
    # zipapp) and installs no compilers.
    assert all(copy.startswith("--from=builder ") for copy in runtime.all("COPY"))
    assert not runtime.all("ADD")
    runs = " ".join(runtime.all("RUN"))
    assert "--no-index" in runs
    assert not [tool for tool in COMPILERS if re.search(rf"\b{re.escape(tool)}\b", runs)]


def test_the_entry_points_it_names_are_console_scripts_of_the_installed_distributions(
    stages: list[Stage],
) -> None:
    scripts = console_scripts()
    runtime = stages[-1]
    install = re.search(r"--find-links=\S+\s+(.*?)\s*(?:&&|$)", " ".join(runtime.all("RUN")))
    assert install is not None, "the runtime stage installs no wheels"
    installed = set(install.group(1).split())
    assert installed == set(DISTRIBUTIONS)
    commands = [exec_form(v)[0] for key in ("CMD", "ENTRYPOINT") for v in runtime.all(key)]
    assert commands, "the image names no command"
    # What runs in a cluster: the chart's operator command, and kubernetes WorkerPools' workers.
    chart = (ROOT / "helm" / "vahana" / "templates" / "deployment.yaml").read_text()
    chart_command = re.search(r"command: \[(\S+?),", chart)
    jobs = (ROOT / "operator" / "vahana" / "pools" / "jobs.py").read_text()
    job_command = re.search(r'command: Sequence\[str\] = \("([\w-]+)",\)', jobs)
    assert chart_command is not None and job_command is not None
    commands += [chart_command.group(1), job_command.group(1)]
    assert set(commands) >= {"vahana", "vahana-worker"}
    for command in commands:
        assert scripts.get(command) in installed, f"{command}: no console script in the image"


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """The last .dockerignore pattern matching the path or a parent decides; `!` re-includes."""
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        anywhere = bare.removeprefix("**/")
        if any(
            fnmatch.fnmatch(prefix, bare) or fnmatch.fnmatch(Path(prefix).name, anywhere)
            for prefix in prefixes
        ):
            ignored = not negated
    return ignored


def build_context(destination: Path, stages: list[Stage]) -> None:
    """Copies what the builder stage COPYs from the context, minus what .dockerignore drops."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for copy in stages[0].all("COPY"):
        source, target = copy.split()
        assert not dockerignored(source.rstrip("/"), patterns), f"{source} is in .dockerignore"
        shutil.copytree(
            ROOT / source,
            destination / target,
            symlinks=True,
            ignore=lambda directory, names: [
                n
                for n in names
                if dockerignored(str((Path(directory) / n).relative_to(ROOT)), patterns)
            ],
        )


@pytest.fixture(scope="module")
def image_venv(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The runtime stage's virtualenv, built as the Dockerfile builds it (without docker)."""
    work = tmp_path_factory.mktemp("image")
    context, wheels, target = work / "src", work / "wheels", work / "opt-vahana"
    build_context(context, stages)
    (build,) = [run for run in stages[0].all("RUN") if "pip wheel" in run]
    words = shlex.split(build)
    sources = [word for word in words if word.startswith("./")]
    assert sorted(sources) == ["./operator", "./worker"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), *sources],
        cwd=context,
        check=True,
        timeout=600,
    )
    venv.create(target, with_pip=True)
    subprocess.run(
        [
            str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
            f"--find-links={wheels}", *DISTRIBUTIONS,
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    yield target


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["vahana", "--help"], "operator"),
        (["vahana", "operator", "--help"], "--worker-server-address"),
        (["vahana-worker", "--help"], "--server-address"),
    ],
)
def test_both_entry_points_start_from_a_clean_install_of_the_same_wheels(
    image_venv: Path, command: list[str], expected: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(image_venv / "bin" / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: nothing may be imported from the source tree
        env={"PATH": f"{image_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


@pytest.mark.timeout(900)
def test_the_installed_package_carries_its_crds_and_migrations(image_venv: Path) -> None:
    script = (
        "import importlib.resources as r; v = r.files('vahana'); "
        "print(sorted(p.name for p in v.joinpath('crds').iterdir())); "
        "print(any(p.name.endswith('.sql') for p in v.joinpath('store', 'migrations').iterdir()))"
    )
    result = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        cwd=image_venv,
        check=True,
    )
    crds, migrations = result.stdout.splitlines()
    assert crds == str(sorted(p.name for p in (ROOT / "crds").glob("*.yaml")))
    assert migrations == "True"


@pytest.mark.timeout(600)
def test_the_image_carries_the_worker_zipapp_its_remote_pools_serve(
    stages: list[Stage], tmp_path: Path
) -> None:
    builder, runtime = stages[0], stages[-1]
    (build,) = [run for run in builder.all("RUN") if "build_pyz.py" in run]
    built = re.search(r"build_pyz\.py --output (\S+)", build)
    assert built is not None
    (copy,) = runtime.all("COPY")
    source, target = shlex.split(copy)[1:]
    assert source == built[1]
    assert f"VAHANA_POOLS_WORKER_PYZ={target}" in " ".join(runtime.all("ENV"))
    # The build script needs nothing outside the build context, and its zipapp starts.
    context = tmp_path / "src"
    build_context(context, stages)
    pyz = tmp_path / "worker.pyz"
    subprocess.run(
        [sys.executable, "worker/build_pyz.py", "--output", str(pyz)],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=300,
    )
    started = subprocess.run(
        [sys.executable, str(pyz), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")},
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    assert "--server-address" in started.stdout
