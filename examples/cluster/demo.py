"""The whole example in one command: Redis, two nodes, four stations, the back office.

    python demo.py

Starts a throwaway redis-server (needs the binary: apt-get install
redis-server), nodes node-a and node-b, and stations.py; calls every station
through the cluster, stops node-a and calls them again once they moved to
node-b, then reads the events. Everything it started is stopped at the end.
"""
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ocpp_sync.cluster import Cluster

HERE = Path(__file__).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what, condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what}")
        threading.Event().wait(0.2)


def script(name, *args, **options):
    return subprocess.Popen([sys.executable, str(HERE / name), *args], **options)


def main():
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    started = []
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        redis_url = f"redis://127.0.0.1:{port}/0"
        redis_server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
        started.append(redis_server)
        try:
            with Cluster(redis_url) as cluster:
                wait_for("Redis", lambda: _pings(cluster))
                ports = [free_port(), free_port()]
                nodes = [script("node.py", "--id", node_id, "--port", str(p), "--redis", redis_url,
                                stderr=subprocess.DEVNULL)
                         for node_id, p in zip(("node-a", "node-b"), ports, strict=True)]
                started += nodes
                wait_for("both nodes", lambda: cluster.nodes() == ["node-a", "node-b"])
                started.append(script("stations.py", *(f"ws://127.0.0.1:{p}/ocpp" for p in ports),
                                      "--count", "4", stderr=subprocess.DEVNULL))
                wait_for("four stations", lambda: len(cluster.stations()) == 4)
                backoffice = [str(HERE / "backoffice.py"), "--redis", redis_url]
                print("== the stations, spread over both nodes")
                subprocess.run([sys.executable, *backoffice, "list"], check=True)
                subprocess.run([sys.executable, *backoffice, "call"], check=True)
                print("== node-a stops; its stations move to node-b")
                nodes[0].terminate()
                nodes[0].wait(10)
                wait_for("the move", lambda: {w.node_id for w in cluster.stations().values()}
                         == {"node-b"} and len(cluster.stations()) == 4)
                subprocess.run([sys.executable, *backoffice, "list"], check=True)
                subprocess.run([sys.executable, *backoffice, "call"], check=True)
                print("== the first events of the whole cluster")
                subprocess.run([sys.executable, *backoffice, "events", "--limit", "6"], check=True,
                               timeout=30)
        finally:
            for process in reversed(started):
                process.terminate()
                process.wait(10)


def _pings(cluster):
    try:
        cluster.nodes()
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
