"""The committed ocpp_sync/v16, v201, v21 (messages, per-action calls, profile tables) are exactly
what the generator makes of the schemas, and they carry none of the schemas' description prose."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import schemas

TAGS = ("v16", "v201", "v21")
GENERATOR = schemas.REPO / "tools" / "generate_messages.py"
PACKAGE = schemas.REPO / "ocpp_sync"
GENERATED = ("__init__.py", "calls.py", "profiles.py")


@pytest.fixture(scope="module")
def schema_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding v16/, v201/, v21/: ../shared/ocpp-schemas, or links to the ocpp package's copies."""
    dirs = schemas.version_dirs()
    if dirs is None:
        pytest.skip(schemas.SKIP_REASON)
    parents = {d.parent for d in dirs.values()}
    if len(parents) == 1 and all(d.name == tag for tag, d in dirs.items()):
        return parents.pop()
    root = tmp_path_factory.mktemp("schemas")
    for tag, folder in dirs.items():
        (root / tag).symlink_to(folder, target_is_directory=True)
    return root


def test_generated_modules_are_up_to_date(schema_root: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--schemas", str(schema_root), "--out", str(tmp_path)],
                   check=True, timeout=120, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "v16").iterdir()) == sorted(GENERATED)
    stale = [f"{tag}/{name}" for tag in TAGS for name in GENERATED
             if (tmp_path / tag / name).read_bytes() != (PACKAGE / tag / name).read_bytes()]
    assert not stale, f"regenerate with `python tools/generate_messages.py`: {stale} differ from the schemas"


def test_generator_check_mode_agrees(schema_root: Path) -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--schemas", str(schema_root), "--check"],
                            timeout=120, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _descriptions(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            else:
                yield from _descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _descriptions(value)


def _fragments(schema_root: Path) -> list[str]:
    """40-character openings of every prose sentence of 40 characters or more in the schemas."""
    found = set()
    for tag in TAGS:
        for path in sorted((schema_root / tag).glob("*.json")):
            for text in _descriptions(json.loads(path.read_text(encoding="utf-8-sig"))):
                for sentence in re.split(r"(?<=[.:;])\s+|\s*\n\s*", text):
                    sentence = " ".join(sentence.split())
                    if len(sentence) >= 40 and " " in sentence:
                        found.add(sentence[:40])
    return sorted(found)


def test_no_schema_prose_in_the_code(schema_root: Path) -> None:
    fragments = _fragments(schema_root)
    assert len(fragments) > 500  # the check is only as good as its sample
    files = [PACKAGE / tag / name for tag in TAGS for name in GENERATED] + [GENERATOR, GENERATOR.with_name(
        "generate_actions.py")] + sorted(PACKAGE.glob("*.py"))
    for path in files:
        code = " ".join(path.read_text(encoding="utf-8").split())
        copied = [f for f in fragments if f in code]
        assert not copied, f"{path.name} carries schema description text: {copied[:5]}"
