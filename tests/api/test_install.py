"""The package as a user gets it: built from this checkout, installed into a fresh virtualenv.

The other tests import the checkout itself, so a file missing from the wheel, a
dependency missing from setup.cfg or a console script that does not start would
pass them all. These build the distributions (with `python -m build` when it is
installed, as the `test` extra asks, else `pip wheel`), check them with twine, and
run the installed `ocpp-sync` in a virtualenv that has only the wheel and the
dependencies pip fetched for it from the package index.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

import ocpp_sync

ROOT = Path(__file__).resolve().parent.parent.parent
# The whole module builds once and installs once; each step is bounded on its own.
STEP_TIMEOUT = 120

pytestmark = pytest.mark.install


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=STEP_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _clean_env() -> dict[str, str]:
    """The user's environment, without what points Python at this checkout or at our venv."""
    return {k: v for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """The distributions built from a copy of the checkout (a build writes into its source tree)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "dist", ".tox", ".venv", ".ci-venv",
        ".*_cache", ".hypothesis"))
    out = work / "dist"
    if importlib.util.find_spec("build") is not None:
        # An sdist, then the wheel built from that sdist: a file the sdist forgets fails here.
        _run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=work)
    else:
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
             cwd=work)
    yield sorted(out.iterdir())


def test_the_distributions_carry_this_version(dists: list[Path]) -> None:
    wheels = [d.name for d in dists if d.suffix == ".whl"]
    assert wheels == [f"ocpp_sync-{ocpp_sync.__version__}-py3-none-any.whl"]
    for sdist in (d for d in dists if d.name.endswith(".tar.gz")):
        with tarfile.open(sdist) as tar:
            names = {n.split("/", 1)[-1] for n in tar.getnames()}
        assert {"LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "pyproject.toml",
                "docs/index.md"} <= names


def test_twine_accepts_the_distributions(dists: list[Path]) -> None:
    if importlib.util.find_spec("twine") is None:
        pytest.skip("twine is not installed (it comes with the `test` extra)")
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)], cwd=ROOT)
    assert out.count("PASSED") == len(dists), out


def test_the_wheel_installs_and_runs_in_a_fresh_virtualenv(dists: list[Path],
                                                            tmp_path: Path) -> None:
    """Where only `pip install <wheel>` happened: no pytest, and not this checkout."""
    (wheel,) = [d for d in dists if d.suffix == ".whl"]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    env = _clean_env()
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, env=env)

    version = _run([str(bin_dir / "ocpp-sync"), "--version"], cwd=tmp_path, env=env)
    assert version.strip() == f"ocpp-sync {ocpp_sync.__version__}"
    demo = _run([str(bin_dir / "ocpp-sync"), "demo"], cwd=tmp_path, env=env)
    assert "OCPP 1.6 session completed" in demo
    where = _run([str(python), "-c",
                  "import importlib.util, ocpp_sync, ocpp_sync.testing; "
                  "assert importlib.util.find_spec('pytest') is None, 'pytest is installed'; "
                  "print(ocpp_sync.__file__)"], cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(env_dir), where
