"""The architecture as contracts: imports point down the layers, and the protocol core does no I/O.

The contracts are in setup.cfg ([importlinter]); this runs them as `lint-imports` would.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "ocpp_sync"
MAX_WRITTEN_LINES = 600


def test_import_contracts_hold() -> None:
    """In a child process: import-linter configures logging with dictConfig, which would
    disable every logger of the library for the tests after this one."""
    pytest.importorskip("importlinter")
    script = ("import sys; from importlinter.cli import lint_imports; "
              f"sys.exit(lint_imports(config_filename={str(ROOT / 'setup.cfg')!r}, no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, "an import points up the layers:\n" + result.stdout + result.stderr


# What the generators write at the top of every file they make (tools/generate_messages.py).
GENERATED_MARKER = "Do not edit: change the generator"


def _generated(path: Path) -> bool:
    """A file the generators wrote says so near its top; a docstring that merely mentions
    generated code (codec.py) is still a written module."""
    return GENERATED_MARKER in "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:5])


def test_no_written_module_is_over_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if not _generated(p) and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_WRITTEN_LINES}
    assert not long, f"split these by responsibility: {long}"


def test_the_protocol_core_imports_no_io_module_even_lazily() -> None:
    """import-linter sees module-level imports; this also catches one inside a function."""
    forbidden = {"socket", "select", "selectors", "ssl", "threading", "concurrent"}
    found = []
    for path in (PACKAGE / "protocol").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert not found
