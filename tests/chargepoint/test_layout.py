"""The offline queue in two modules: storage knows nothing of delivery, delivery nothing of SQL."""
from __future__ import annotations

import ast
from pathlib import Path

import ocpp_sync
from ocpp_sync.chargepoint import outbox, store

CHARGEPOINT = Path(__file__).resolve().parent.parent.parent / "ocpp_sync" / "chargepoint"


def _imports(name: str) -> set[str]:
    tree = ast.parse((CHARGEPOINT / name).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def test_the_store_does_not_deliver() -> None:
    imported = _imports("store.py")
    assert not {m for m in imported if m.startswith(("ocpp_sync.chargepoint.outbox", "ocpp_sync.runtime",
                                                      "ocpp_sync.protocol.retry", "concurrent"))}


def test_the_outbox_does_not_touch_sqlite() -> None:
    assert "sqlite3" not in _imports("outbox.py")


def test_the_public_names_stay() -> None:
    assert ocpp_sync.QueuedCall is outbox.QueuedCall
    assert store.OfflineQueue.__module__ == "ocpp_sync.chargepoint.store"
    assert not (CHARGEPOINT / "offline.py").exists()
