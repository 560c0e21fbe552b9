"""settle(): one helper resolves a future that may be cancelled or resolved already."""
from __future__ import annotations

import ast
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ocpp_sync.scheduling.futures import settle

PACKAGE = Path(__file__).resolve().parent.parent.parent / "ocpp_sync"
# The lead switches runtime/connection.py to settle() while rewriting it.
NOT_YET_SWITCHED = {"runtime/connection.py"}


def test_settle_sets_a_result_or_an_exception() -> None:
    answered: Future[Any] = Future()
    failed: Future[Any] = Future()
    assert settle(answered, 42) and answered.result(0) == 42
    error = ValueError("no")
    assert settle(failed, exc=error) and failed.exception(0) is error


def test_the_first_outcome_stands_and_a_later_one_does_not_raise() -> None:
    future: Future[Any] = Future()
    assert settle(future, "first")
    assert not settle(future, exc=RuntimeError("late"))
    assert not settle(future, "late")
    assert future.result(0) == "first"


def test_a_cancelled_future_stays_cancelled() -> None:
    future: Future[Any] = Future()
    future.cancel()
    assert not settle(future, 1)
    assert not settle(future, exc=RuntimeError("late"))
    assert future.cancelled()


def test_no_other_module_writes_its_own_settle() -> None:
    """The helper exists once: nobody else catches InvalidStateError around set_result."""
    own = []
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix()
        if name in NOT_YET_SWITCHED or name == "scheduling/futures.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and "InvalidStateError" in ast.dump(node.type or node):
                own.append(name)
    assert not own, f"use ocpp_sync.scheduling.futures.settle: {sorted(set(own))}"
