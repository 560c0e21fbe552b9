"""The API reference: generated from the docstrings with the guides, and complete for the two
classes everyone constructs."""
from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ocpp_sync

ROOT = Path(__file__).resolve().parent.parent.parent


def documented_parameters(docstring: str) -> list[str]:
    """The names of a Google-style ``Args:`` section, in order."""
    section = re.search(r"^(\s*)Args:\n((?:\1 .*\n|\s*\n)+)", docstring + "\n", re.M)
    if section is None:
        return []
    indent = len(section.group(1)) + 4
    return re.findall(rf"^ {{{indent}}}(\w+)(?: \([^)]*\))?:", section.group(2), re.M)


def test_documented_parameters_reads_an_args_section() -> None:
    doc = "Summary.\n\n    Args:\n        a: one\n            more.\n        b_c: two\n\n    After.\n"
    assert documented_parameters(doc) == ["a", "b_c"]


@pytest.mark.parametrize("cls", [ocpp_sync.ChargePoint, ocpp_sync.CSMS], ids=["ChargePoint", "CSMS"])
def test_every_constructor_parameter_is_documented(cls: type) -> None:
    """In the order of the signature, so help() and the reference read like the call."""
    parameters = [name for name in inspect.signature(cls).parameters]
    assert documented_parameters(cls.__doc__ or "") == parameters


def test_every_guide_is_in_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w.-]+\.md)\s*$", config, re.M))
    assert listed == {path.name for path in (ROOT / "docs").glob("*.md")}


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """A docstring section griffe cannot parse, a reference to a missing object, a broken link
    between guides: each is a warning, and --strict makes it fail here. (A parameter documented
    under a wrong name is not one for a class docstring: the test above catches that.)"""
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[docs]' (or '.[test]')")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                             "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for expected in ("ocpp_sync.ChargePoint", "ocpp_sync.CSMS", "queue_path",
                     "max_pending_handshakes", "ocpp_sync.errors"):
        assert expected in reference, expected
    assert (site / "jupyter" / "index.html").exists()
