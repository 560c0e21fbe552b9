"""What a user sees of the package's names: ocpp_sync.X in tracebacks and help(), and guides
that import only what is public."""
from __future__ import annotations

import ast
import inspect
import json
import pickle
import pydoc
import re
import traceback
import typing
from pathlib import Path
from typing import Any

import pytest
from support.guides import FENCE

import ocpp_sync
from ocpp_sync import errors

ROOT = Path(__file__).resolve().parent.parent.parent
# The layout packages: their classes and functions are exported from ocpp_sync (or a public
# subpackage), and the modules themselves may be split or renamed in any release.
INTERNAL = {"protocol", "runtime", "websocket", "scheduling", "chargepoint", "csms"}


def _internal(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "ocpp_sync" and (
        any(p.startswith("_") and not p.startswith("__") for p in parts) or parts[1:2] in ([i] for i in INTERNAL))


def _exported(package: Any) -> list[tuple[str, Any]]:
    return [(name, getattr(package, name)) for name in package.__all__
            if inspect.isclass(getattr(package, name)) or inspect.isfunction(getattr(package, name))]


def test_exported_names_show_as_ocpp_sync() -> None:
    wrong = {name: obj.__module__ for name, obj in _exported(ocpp_sync) if _internal(obj.__module__)}
    assert not wrong
    assert repr(ocpp_sync.ChargePoint) == "<class 'ocpp_sync.ChargePoint'>"
    assert "class ChargePoint in module ocpp_sync\n" in pydoc.render_doc(ocpp_sync.ChargePoint,
                                                                         renderer=pydoc.plaintext)


def test_the_cluster_names_show_as_ocpp_sync_cluster() -> None:
    cluster = pytest.importorskip("ocpp_sync.cluster")
    wrong = {name: obj.__module__ for name, obj in _exported(cluster)
             if _internal(obj.__module__) and name != "Event"}  # why Event stays: cluster/__init__.py
    assert not wrong


def test_a_traceback_names_the_public_class() -> None:
    handle = ocpp_sync.QueuedCall(1, "StartTransaction")
    line = traceback.format_exception_only(ocpp_sync.Queued(handle, "offline"))[-1]
    assert line.startswith("ocpp_sync.Queued: ")


def test_type_hints_still_resolve_where_the_module_was_renamed() -> None:
    """get_type_hints (and cattrs) read a class's annotations in the namespace of its __module__."""
    classes = [obj for _, obj in _exported(ocpp_sync) if inspect.isclass(obj)]
    cluster = pytest.importorskip("ocpp_sync.cluster")
    classes += [obj for _, obj in _exported(cluster) if inspect.isclass(obj)]
    for cls in classes:
        typing.get_type_hints(cls)
        typing.get_type_hints(cls.__init__)


EXCEPTIONS = [
    errors.OCPPError("card blocked", code="SecurityError", details={"card": "X"}),
    errors.ValidationError("FormatViolation", "chargingStation.model", "too long"),
    errors.CallError("NotImplemented", "no handler", {"action": "Foo"}),
    errors.CallTimeout("no answer in 5 s"),
    errors.StationTimeout("CP_1 did not connect"),
    errors.ConnectionClosed("closed"),
    errors.StationNotConnected("CP_1 is on no node"),
    errors.Replaced("CP_1 was replaced"),
    errors.AddressInUse("port 9000 is in use by another program"),
    errors.NotRegistered("the station is Rejected"),
    errors.ClusterUnavailable("redis down"),
    errors.FramingError("RpcFrameworkError", "-1", "not JSON", None),
    errors.ProtocolError("bad frame"),
    errors.HandshakeError("refused", status=401, reason="unauthorized"),
    errors.UpgradeRefused(403, "forbidden", [("X-A", "1")], kind="refused", station_id="CP_1"),
    errors.CaseFailed("no boot", frame={"action": "BootNotification"}, field="$.status",
                      expected="Accepted", got="Rejected"),
    errors.CaseInconclusive("skipped at the prompt"),
]


@pytest.mark.parametrize("error", EXCEPTIONS, ids=[type(e).__name__ for e in EXCEPTIONS])
def test_exceptions_survive_pickling(error: errors.OCPPError) -> None:
    """Across processes (multiprocessing, a cluster worker): same class, message and fields."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (str(copy), copy.args, vars(copy)) == (str(error), error.args, vars(error))


def test_every_exception_class_is_covered_by_the_pickling_test() -> None:
    classes = {obj for obj in vars(errors).values()
               if inspect.isclass(obj) and issubclass(obj, errors.OCPPError)}
    assert classes == {type(e) for e in EXCEPTIONS}


# -- what the guides import ---------------------------------------------------------------

def _code() -> list[tuple[str, str]]:
    """(where, code) of every python block of docs/*.md and README.md, run or not, every
    example script and every code cell of the example notebooks."""
    out = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            out.append((f"{path.name}:{text.count(chr(10), 0, match.start()) + 2}", match.group(1)))
    for path in sorted((ROOT / "examples").rglob("*.py")):
        out.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    for path in sorted((ROOT / "examples").rglob("*.ipynb")):
        for n, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                out.append((f"{path.relative_to(ROOT)} cell {n}",
                            "\n".join(line for line in source.splitlines() if not line.startswith(("%", "!")))))
    return out


def private_uses(code: str) -> list[str]:
    """Internal names the code imports or reaches by attribute (ocpp_sync.protocol.versions.x)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _internal(a.name)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ocpp_sync"):
            module = node.module or ""
            found += [f"{module}.{a.name}" for a in node.names
                      if _internal(module) or (a.name.startswith("_") and a.name != "__version__")]
        elif isinstance(node, ast.Attribute):
            dotted = ast.unparse(node)
            if re.fullmatch(r"ocpp_sync(\.\w+)+", dotted) and _internal(dotted):
                found.append(dotted)
    return found


def test_the_private_name_check_catches_what_it_should() -> None:
    assert private_uses("from ocpp_sync.protocol.versions import version_module") == \
        ["ocpp_sync.protocol.versions.version_module"]
    assert private_uses("import ocpp_sync._version") == ["ocpp_sync._version"]
    assert private_uses("from ocpp_sync.cluster import _wire") == ["ocpp_sync.cluster._wire"]
    assert private_uses("import ocpp_sync\nocpp_sync.csms.csms.CSMS") != []
    assert private_uses("import ocpp_sync\nfrom ocpp_sync import v16, version_module, __version__\n"
                        "from ocpp_sync.errors import UpgradeRefused\nocpp_sync.CSMS\n"
                        "from ocpp_sync.contrib.flask import mount\nfrom ocpp_sync.sim import CSMS") == []


def test_no_guide_or_example_imports_a_private_name() -> None:
    """A guide, the README, an example script or notebook uses only public names.

    Private means a name or module segment starting with ``_`` (``ocpp_sync._version``,
    ``ocpp_sync.cluster._wire``), or anything in the layout packages ``ocpp_sync.protocol``,
    ``runtime``, ``websocket``, ``scheduling``, ``chargepoint`` and ``csms``, whose public
    classes are exported from ``ocpp_sync`` itself and whose modules may move in any release.
    Public: ``ocpp_sync`` and the version packages (``ocpp_sync.v16``...), ``errors``,
    ``security``, ``testing``, ``pytest_plugin``, ``sim``, ``station``, ``contrib.flask``,
    ``contrib.wsgi`` and ``cluster``. Prose may name internals (the Autobahn guide describes the
    listener); code a user copies may not.
    """
    found = {where: uses for where, code in _code() if (uses := private_uses(code))}
    assert not found
