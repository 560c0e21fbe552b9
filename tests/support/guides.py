"""Run the python blocks of guides (and example notebooks) the way tests/api/test_docs.py does,
with nothing but the standard library and an installed ocpp_sync.

tests/api/test_docs.py imports the block rules from here; tests/api/test_install.py runs this
file as a script in a fresh virtualenv, where neither pytest nor this checkout is importable:

    python tests/support/guides.py docs/script.md docs/lab.md
    python tests/support/guides.py --notebook examples/test_bench.ipynb   # needs nbclient, ipykernel

A file's blocks run in order in one namespace. Blocks that talk to "the CSMS" at
ws://127.0.0.1:9000 (or localhost:9000) reach a loopback CSMS started on a free port;
a block preceded by ``<!-- no-test -->`` is not run.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

NO_TEST = "<!-- no-test -->"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
FIXED_CSMS = re.compile(r"(127\.0\.0\.1|localhost):9000\b")
VERDICT = "guides.py: "  # the prefix of the lines that say how each file did


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each block to run."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip()
        if before.endswith(NO_TEST):
            continue
        blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return blocks


def run_guide(path: Path) -> None:
    """Run one guide's blocks against a loopback CSMS; raises on the first block that fails."""
    from ocpp_sync.testing import running_csms

    with running_csms() as csms:
        namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
        for line, code in python_blocks(path.read_text(encoding="utf-8")):
            code = FIXED_CSMS.sub(f"127.0.0.1:{csms.port}", code)
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"the block at {path.name} line {line} failed: {exc!r}") from exc


def run_notebook(path: Path) -> None:
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("guides", nargs="*", type=Path)
    parser.add_argument("--notebook", action="append", type=Path, default=[])
    args = parser.parse_args(argv)
    guides = [path.resolve() for path in args.guides]
    notebooks = [path.resolve() for path in args.notebook]
    failed = 0
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # a block that writes a file writes it here
        for path in guides:
            try:
                run_guide(path)
            except Exception as exc:  # report every guide, then fail
                failed += 1
                print(f"{VERDICT}FAILED {path.name}: {exc}", file=sys.stderr, flush=True)
            else:
                print(f"{VERDICT}ok {path.name}", flush=True)
        for path in notebooks:
            try:
                run_notebook(path)
            except Exception as exc:
                failed += 1
                print(f"{VERDICT}FAILED {path.name}: {exc}", file=sys.stderr, flush=True)
            else:
                print(f"{VERDICT}ok {path.name}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
