"""Every ```python block of docs/*.md and README.md runs, so the documentation cannot rot.

A file's blocks run in order in one namespace, so a guide can build on its
earlier blocks. Blocks that talk to "the CSMS" at ws://127.0.0.1:9000 (or
localhost:9000) reach a loopback CSMS this test starts on a free port, one that
accepts every station (ocpp_sync.testing.running_csms); blocks that start their
own CSMS use ``port=0``. A block preceded by ``<!-- no-test -->`` is not run
(one that serves forever, say); use it sparingly. The block rules are in
tests/support/guides.py, which also runs the guides in a fresh virtualenv
(tests/api/test_install.py).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.guides import FIXED_CSMS, python_blocks

from ocpp_sync.testing import running_csms

ROOT = Path(__file__).resolve().parent.parent.parent
FILES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
WAIT = 10.0


def test_block_extraction() -> None:
    text = "x\n```python\na = 1\n```\n<!-- no-test -->\n```python\nb = 2\n```\n```\nc\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n")]


def test_the_docs_exist() -> None:
    names = {path.name for path in FILES}
    for guide in ("script.md", "flask.md", "django.md", "jupyter.md", "lab.md",
                  "handlers-and-errors.md", "threading.md", "security.md", "offline-queue.md"):
        assert guide in names


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Blocks may configure logging as a script would; the next test must not inherit that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.mark.usefixtures("logging_restored")
@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(ROOT).as_posix() for p in FILES])
def test_code_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{path.name} has no python blocks")
    monkeypatch.chdir(tmp_path)  # a block that writes a file writes it here
    before = set(threading.enumerate())
    with running_csms() as csms:
        namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
        for line, code in blocks:
            code = FIXED_CSMS.sub(f"127.0.0.1:{csms.port}", code)
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"the block at {path.name} line {line} failed: {exc!r}") from exc
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(WAIT)
    assert not [t.name for t in new if t.is_alive()], f"{path.name} leaves threads running"
