"""The operating system's limits that a CSMS of thousands of stations meets first.

Every station holds one socket, so the limit on open files (``RLIMIT_NOFILE``,
often a soft 1,024 out of the box) caps the stations long before memory does.
At start the CSMS raises its soft limit toward the hard one when it is short
of what the expected stations need (a process may do that without privileges);
when even the hard limit is short it says so once, with the way to raise it.
A listener whose ``accept()`` then runs out of descriptors logs that once per
episode (not once per attempt), backs off, and keeps serving the stations it
has; ``AcceptFailures`` keeps that state.
"""
from __future__ import annotations

import errno
import logging
import sys

__all__ = ["ASSUMED_CONNECTIONS", "SPARE_DESCRIPTORS", "AcceptFailures", "descriptors_needed",
           "raise_descriptor_limit"]

log = logging.getLogger("ocpp_sync.transport")

# What a CSMS without max_connections is assumed to serve when its file limit is checked.
ASSUMED_CONNECTIONS = 10_000
# Descriptors besides the stations' sockets: the listener, its wake-up pair, log files,
# the metrics port, pipes and whatever the application opens.
SPARE_DESCRIPTORS = 256
# Backing off after accept() failed: the first wait, doubled per failure up to the last.
FIRST_BACK_OFF = 0.05
LAST_BACK_OFF = 1.0

_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
_HOW_TO_RAISE = ("raise it with `ulimit -n` in the shell that starts the CSMS, LimitNOFILE= in "
                 "a systemd unit, or --ulimit nofile= for a container")


def descriptors_needed(max_connections: int | None) -> int:
    """The open files a CSMS with at most ``max_connections`` stations (None:
    ``ASSUMED_CONNECTIONS``) needs: one socket per station plus ``SPARE_DESCRIPTORS``."""
    connections = ASSUMED_CONNECTIONS if max_connections is None else max_connections
    return connections + SPARE_DESCRIPTORS


def raise_descriptor_limit(needed: int) -> int | None:
    """Raise the soft limit on open files toward ``needed``, never past the hard limit, and
    return the soft limit now in force (None where the platform has no such limit).

    A hard limit short of ``needed`` is logged once here, with how to raise it.
    """
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _at_least(soft, needed):
        return soft
    target = needed if _at_least(hard, needed) else hard
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            target = soft
        else:
            log.info("raised the open-file limit (RLIMIT_NOFILE) from %d to %d", soft, target)
    if target < needed:
        log.warning("the open-file limit is %d (hard limit %s) but %d stations need about %d: "
                    "stations beyond it will not be accepted; %s", target, _show(hard),
                    needed - SPARE_DESCRIPTORS, needed, _HOW_TO_RAISE)
    return target


def _at_least(limit: int, needed: int) -> bool:
    import resource

    return limit == resource.RLIM_INFINITY or limit >= needed


def _show(limit: int) -> str:
    import resource

    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def _soft_limit() -> str:
    if sys.platform == "win32":
        return "the system's"
    import resource

    return _show(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


class AcceptFailures:
    """The accept loop's failures in a row: how long to back off, and what to log.

    Running out of descriptors is logged once as an error naming the limit, until
    an accept succeeds again; other errors are logged each time (they are rare).
    """

    def __init__(self) -> None:
        self.in_a_row = 0
        self._out_of_descriptors = False

    def failed(self, exc: OSError) -> float:
        """Note a failed accept(); return the seconds to wait before the next one."""
        self.in_a_row += 1
        if exc.errno in _OUT_OF_DESCRIPTORS:
            if not self._out_of_descriptors:
                self._out_of_descriptors = True
                which = "this process's" if exc.errno == errno.EMFILE else "the system's"
                log.error("cannot accept more stations: out of file descriptors (%s limit; "
                          "RLIMIT_NOFILE soft limit %s): %s; the stations already connected "
                          "are still served, new ones wait in the listen backlog until some "
                          "leave; %s", which, _soft_limit(), exc, _HOW_TO_RAISE)
            else:
                log.debug("accept failed again for want of descriptors (%d in a row)", self.in_a_row)
        else:
            log.error("accept failed: %s", exc)
        return float(min(LAST_BACK_OFF, FIRST_BACK_OFF * 2 ** min(self.in_a_row - 1, 10)))

    def succeeded(self) -> None:
        """Note an accept() that worked: a later shortage is news again."""
        if self._out_of_descriptors:
            log.warning("accepting stations again after %d failed attempt(s)", self.in_a_row)
        self.in_a_row = 0
        self._out_of_descriptors = False
