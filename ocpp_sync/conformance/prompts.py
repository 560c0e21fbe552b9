"""Prompts: how a case asks for what only a person (or a script) can do.

A prompt is ``prompt(key, text)``: ``key`` names the action (see the constants
below) and ``text`` says it for a person. It returns once the action is done,
or raises CaseInconclusive to skip the case. The kit never guesses that a
person acted: a case that needs a prompt and has none is inconclusive.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ocpp_sync.errors import CaseInconclusive

__all__ = ["Prompt", "REBOOT", "PLUG_IN", "UNPLUG", "PRESENT_CARD", "CSMS_ACTION", "no_prompt",
           "console_prompt", "input_prompt", "ScriptedPrompt"]

Prompt = Callable[[str, str], None]

#: Reboot (power-cycle) the station under test; it reconnects and boots.
REBOOT = "reboot"
#: Plug the EV cable into the station under test (EVSE and connector of the configuration).
PLUG_IN = "plug_in"
#: Unplug it again.
UNPLUG = "unplug"
#: Present the configured valid card (id token) to the station under test.
PRESENT_CARD = "present_card"
#: Prefix of the keys that ask the operator of a CSMS under test to make it send a
#: request: ``csms.GetVariables``, ``csms.SetVariables``, ``csms.Reset``, ...
CSMS_ACTION = "csms."

_SKIP = ("s", "skip")


def no_prompt(key: str, text: str) -> None:
    """No one to ask: every case that needs a person is inconclusive."""
    raise CaseInconclusive(f"needs a person ({key}: {text}) and no prompt was given")


def _ask(key: str, text: str, read: Callable[[str], str]) -> None:
    answer = read(f"\n[{key}] {text}\n  press Enter when done, or type s to skip the case: ")
    if answer.strip().lower() in _SKIP:
        raise CaseInconclusive(f"skipped at the prompt {key!r}")


def console_prompt(key: str, text: str, *, stream: TextIO | None = None,
                   read: TextIO | None = None) -> None:
    """Ask on the terminal: the question goes to ``stream`` (stderr, so that ``--json``
    output stays clean), the answer comes from ``read`` (stdin); end of input skips."""
    out = stream if stream is not None else sys.stderr
    source = read if read is not None else sys.stdin

    def ask(question: str) -> str:
        out.write(question)
        out.flush()
        line = source.readline()
        return line if line else "s"
    _ask(key, text, ask)


def input_prompt(key: str, text: str) -> None:
    """Ask with ``input()``: in Jupyter it shows an input box under the cell."""
    _ask(key, text, input)


class ScriptedPrompt:
    """Prompts answered by code: ``actions`` maps a prompt key to a callable that does it.

    For a station under test that is our own simulator (reboot = close it and
    boot a new one) or a ChargePoint in a test, and for a CSMS under test that
    a test drives itself (``csms.GetVariables`` = ``station.send(...)``). A
    key without an action makes the case inconclusive.

    Args:
        actions: Prompt key -> ``action()``, run in the kit's thread.
    """

    def __init__(self, actions: Mapping[str, Callable[[], Any]]) -> None:
        self.actions = dict(actions)
        self.asked: list[str] = []

    def __call__(self, key: str, text: str) -> None:
        self.asked.append(key)
        action = self.actions.get(key)
        if action is None:
            raise CaseInconclusive(f"no scripted action for the prompt {key!r} ({text})")
        action()
