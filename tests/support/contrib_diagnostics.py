"""Test-only WSGI layer, run inside the contrib server processes: what the tests can't see from outside.

GET /_test/gone/<id>   waits (bounded) until the CSMS has let go of the station: {"gone": bool}
GET /_test/threads     waits (bounded) for the library's threads to end: {"threads": [names left]}
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ocpp_sync import CSMS

WAIT = 10.0
_OURS = ("ocpp-", "simple_websocket")


class Diagnostics:
    def __init__(self, app: Callable[..., Iterable[bytes]], csms: CSMS) -> None:
        self.app = app
        self.csms = csms
        self._changed = threading.Condition()
        csms.on_disconnect(self._notify)

    def _notify(self, station: Any) -> None:
        with self._changed:
            self._changed.notify_all()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_test/gone/"):
            station_id = path.rsplit("/", 1)[-1]
            with self._changed:
                gone = self._changed.wait_for(lambda: station_id not in self.csms.stations, WAIT)
            return self._json(start_response, {"gone": gone})
        if path == "/_test/threads":
            return self._json(start_response, {"threads": self._settle()})
        return self.app(environ, start_response)

    @staticmethod
    def _settle() -> list[str]:
        """Names of our threads still alive after a bounded wait for them to go.

        A server's pool thread carries our name only while it serves a station, and lives on
        afterwards: names are checked again after each short join instead of joining it for good.
        """
        deadline = time.monotonic() + WAIT
        me = threading.current_thread()
        while True:
            ours = [t for t in threading.enumerate() if t is not me and t.name.startswith(_OURS)]
            remaining = deadline - time.monotonic()
            if not ours or remaining <= 0:
                return [t.name for t in ours]
            try:
                ours[0].join(min(0.05, remaining))
            except RuntimeError:  # listed while still starting: cannot be joined yet
                continue

    @staticmethod
    def _json(start_response: Callable[..., Any], body: Any) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
