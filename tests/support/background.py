"""A process in the background whose output the tests read line by line, with deadlines."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def ctrl_c_works() -> None:
    """For preexec_fn: a child started from a background job inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt, so Ctrl-C tests would hang until their
    deadline. The child gets the default back and installs its own handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    def __init__(self, argv: Sequence[str], *, wait: float, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``env``: variables to set on top of :data:`ENV`."""
        self.wait_limit = wait
        self.process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env={**ENV, **(env or {})}, cwd=cwd,
                                        preexec_fn=ctrl_c_works)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._pump, name="test-process-reader", daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """The next line matching ``pattern``; fails the test on a deadline or the process's end."""
        timeout = self.wait_limit if timeout is None else timeout
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.text}")
            if line is None:
                pytest.fail(f"the process ended without printing {pattern!r}:\n{self.text}")
            found = re.search(pattern, line)
            if found:
                return found

    def wait(self, timeout: float | None = None) -> int:
        timeout = self.wait_limit if timeout is None else timeout
        code = self.process.wait(timeout)
        self.reader.join(timeout)
        return code

    def interrupt(self, timeout: float | None = None) -> int:
        """Ctrl-C, then the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(self.wait_limit)
