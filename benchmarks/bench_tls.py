"""TLS round trips through ocpp_sync's own transports, by message size, optionally A/B.

    python benchmarks/bench_tls.py                       # this tree
    python benchmarks/bench_tls.py --base ../base --rounds 5

A ``WebSocketServer`` with TLS echoes text in a child process; the parent connects with
``ocpp_sync.websocket.connect`` (a charge point's transport) and times send() + receive(timeout)
for each size. With ``--base``, each round runs the base tree, then this one, each with its own
``ocpp_sync`` on the path (interleaved, so a slow spell hurts both alike); a cell is the median
of its rounds, in microseconds per round trip. Certificates come from trustme (the test extra).
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SIZES = ((200, 2000), (4_000, 1000), (16_000, 500), (64_000, 100), (200_000, 50))

SERVER = """
import ssl, sys, trustme
from ocpp_sync.runtime.listener import WebSocketServer
ca = trustme.CA()
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(context)
ca.cert_pem.write_to_path(sys.argv[1])
def echo(transport, station_id, request):
    while (text := transport.receive()) is not None:
        transport.send(text)
server = WebSocketServer("127.0.0.1", 0, subprotocols=["ocpp1.6"], on_connection=echo,
                         ssl_context=context)
server.start()
print(server.port, flush=True)
sys.stdin.read()
server.stop()
"""


def measure() -> dict[str, float]:
    """One run in this process's tree: microseconds per round trip, by size."""
    from ocpp_sync.websocket import connect

    with tempfile.TemporaryDirectory() as tmp:
        ca_file = os.path.join(tmp, "ca.pem")
        child = subprocess.Popen([sys.executable, "-c", SERVER, ca_file], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            port = int(child.stdout.readline())   # type: ignore[union-attr]
            context = ssl.create_default_context(cafile=ca_file)
            client = connect(f"wss://127.0.0.1:{port}/ocpp/CP_1", "CP_1",
                             subprotocols=["ocpp1.6"], ssl_context=context, timeout=10)
            figures = {}
            for size, count in SIZES:
                text = "x" * size
                start = time.perf_counter()
                for _ in range(count):
                    client.send(text)
                    client.receive(timeout=10)
                figures[str(size)] = (time.perf_counter() - start) / count * 1e6
            client.close()
        finally:
            child.stdin.close()   # type: ignore[union-attr]
            child.wait(30)
    return figures


def run_in(tree: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one"],
                         env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, help="a checkout to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure()))
        return
    trees = {"base": args.base.resolve(), "head": HERE} if args.base else {"head": HERE}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(run_in(tree))
    print("bytes  " + "  ".join(f"{name:>10}" for name in trees) + "   (us per round trip)")
    for size, _ in SIZES:
        cells = [statistics.median(run[str(size)] for run in runs[name]) for name in trees]
        print(f"{size:>7}" + "".join(f"  {cell:>10.0f}" for cell in cells))


if __name__ == "__main__":
    main()
