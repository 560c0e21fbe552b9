"""The package as a user gets it: built from this checkout, installed into a fresh virtualenv.

The other tests import the checkout itself, so a file missing from the wheel, a
dependency missing from setup.cfg, a console script that does not start, or a guide
that needs the test extra would pass them all. These build the distributions (with
`python -m build` when it is installed, as the `test` extra asks, else `pip wheel`),
check them with twine, and run the installed `ocpp-sync`, the guides and the example
notebook in virtualenvs that have only the wheel, the dependencies pip fetched for it
from the package index, and what a guide itself says to install.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import venv
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from support.guides import VERDICT, python_blocks

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
        ".*_cache", ".hypothesis", "site"))
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


# What a guide needs besides ocpp_sync, as the guide itself says; every other guide, the README
# and ocpp_sync.testing must work after `pip install <wheel>` alone. {wheel} is the wheel's path.
GUIDE_NEEDS = {
    "flask.md": ["{wheel}[flask]"],
    "django.md": ["werkzeug"],      # its example serves with werkzeug, not Django
    "security.md": ["trustme"],     # throw-away certificates for the profile 3 example
    "metrics.md": ["{wheel}[metrics,flask]"],   # prometheus_client, and the Flask mount
}
NOTEBOOK_NEEDS = ["nbclient", "ipykernel"]  # what runs a notebook without a Jupyter server
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
GUIDES = [p for p in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
          if python_blocks(p.read_text(encoding="utf-8"))]
RUNNER = ROOT / "tests" / "support" / "guides.py"


def _fresh_venv(where: Path, wheel: Path, extra: Sequence[str] = ()) -> Path:
    """A new virtualenv with the wheel (and ``extra``) installed by pip from the index; its bin/."""
    venv.EnvBuilder(with_pip=True).create(where)
    bin_dir = where / ("Scripts" if sys.platform == "win32" else "bin")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel),
          *(e.format(wheel=wheel) for e in extra)], cwd=where, env=_clean_env())
    return bin_dir


def _verdicts(out: str) -> list[str]:
    return [line[len(VERDICT):] for line in out.splitlines() if line.startswith(VERDICT)]


@pytest.fixture(scope="module")
def plain_venv(dists: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where only `pip install <wheel>` happened: no pytest, and not this checkout."""
    (wheel,) = [d for d in dists if d.suffix == ".whl"]
    return _fresh_venv(tmp_path_factory.mktemp("plain") / "venv", wheel)


def test_the_wheel_installs_and_runs_in_a_fresh_virtualenv(plain_venv: Path, tmp_path: Path) -> None:
    env = _clean_env()
    version = _run([str(plain_venv / "ocpp-sync"), "--version"], cwd=tmp_path, env=env)
    assert version.strip() == f"ocpp-sync {ocpp_sync.__version__}"
    demo = _run([str(plain_venv / "ocpp-sync"), "demo"], cwd=tmp_path, env=env)
    assert "OCPP 1.6 session completed" in demo
    where = _run([str(plain_venv / "python"), "-c",
                  "import importlib.util, ocpp_sync, ocpp_sync.testing; "
                  "assert importlib.util.find_spec('pytest') is None, 'pytest is installed'; "
                  "print(ocpp_sync.__file__)"], cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(plain_venv.parent), where


def test_the_guides_run_after_pip_install_alone(plain_venv: Path, tmp_path: Path) -> None:
    """jupyter.md, lab.md, offline-queue.md and the rest: what a newcomer copies into a
    notebook or a script after `pip install ocpp_sync`, without pytest or the test extra."""
    plain = [g for g in GUIDES if g.name not in GUIDE_NEEDS]
    assert {"jupyter.md", "lab.md", "offline-queue.md", "README.md"} <= {g.name for g in plain}
    out = _run([str(plain_venv / "python"), str(RUNNER), *map(str, plain)], cwd=tmp_path,
               env=_clean_env())
    assert _verdicts(out) == [f"ok {g.name}" for g in plain], out


def test_the_other_guides_and_the_notebook_run_with_what_they_install(
        dists: list[Path], tmp_path: Path) -> None:
    assert set(GUIDE_NEEDS) <= {g.name for g in GUIDES}
    (wheel,) = [d for d in dists if d.suffix == ".whl"]
    needs = [n for g in GUIDE_NEEDS.values() for n in g] + NOTEBOOK_NEEDS
    bin_dir = _fresh_venv(tmp_path / "venv", wheel, needs)
    guides = [g for g in GUIDES if g.name in GUIDE_NEEDS]
    notebooks = [arg for nb in NOTEBOOKS for arg in ("--notebook", str(nb))]
    out = _run([str(bin_dir / "python"), str(RUNNER), *map(str, guides), *notebooks],
               cwd=tmp_path, env=_clean_env())
    assert _verdicts(out) == [f"ok {p.name}" for p in [*guides, *NOTEBOOKS]], out
