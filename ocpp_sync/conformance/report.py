"""The report of a run: a plain text table for a terminal, JSON for tools."""
from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ocpp_sync.conformance.case import ERROR, FAILED, INCONCLUSIVE, PASSED, Verdict

__all__ = ["Report"]

_OUTCOMES = (PASSED, FAILED, INCONCLUSIVE, ERROR)


@dataclass
class Report:
    """The verdicts of a run, in the order the cases ran.

    Args:
        target: What was tested, in a line (URL or port, station id, version).
        verdicts: One per case.
    """

    target: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(v.outcome for v in self.verdicts)
        return {outcome: counted.get(outcome, 0) for outcome in _OUTCOMES}

    @property
    def ok(self) -> bool:
        """No case failed or broke (inconclusive ones do not count against the target)."""
        counts = self.counts
        return counts[FAILED] == 0 and counts[ERROR] == 0

    def verdict(self, case_id: str) -> Verdict:
        for verdict in self.verdicts:
            if verdict.case_id == case_id:
                return verdict
        raise KeyError(f"{case_id} was not run")

    def text(self) -> str:
        """A table, one line per case, the failures spelled out under it, then the totals."""
        width = max([len(v.case_id) for v in self.verdicts] + [4])
        lines = [f"Conformance: {self.target}", "",
                 f"{'case':<{width}}  {'version':<7}  {'outcome':<12}  {'s':>6}  title",
                 f"{'-' * width}  {'-' * 7}  {'-' * 12}  {'-' * 6}  {'-' * 5}"]
        for v in self.verdicts:
            lines.append(f"{v.case_id:<{width}}  {v.version:<7}  {v.outcome:<12}  "
                         f"{v.seconds:>6.2f}  {v.title}")
        details = [v.describe() for v in self.verdicts if v.outcome != PASSED]
        if details:
            lines += ["", *details]
        counts = self.counts
        lines += ["", ", ".join(f"{counts[o]} {o}" for o in _OUTCOMES)]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "counts": self.counts, "ok": self.ok,
                "verdicts": [v.as_dict() for v in self.verdicts]}

    def json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, default=str)

    def _repr_html_(self) -> str:
        """Jupyter's view: the table, each failure's step, frame and field in its row."""
        rows = []
        for v in self.verdicts:
            detail = "" if v.passed else html.escape(v.describe().split("\n", 1)[-1])
            rows.append(f"<tr><td>{html.escape(v.case_id)}</td><td>{v.version}</td>"
                        f"<td>{v.outcome}</td><td>{v.seconds:.2f}</td>"
                        f"<td>{html.escape(v.title)}</td><td><pre>{detail}</pre></td></tr>")
        counts = ", ".join(f"{n} {o}" for o, n in self.counts.items())
        return (f"<p>{html.escape(self.target)}: {counts}</p><table><tr><th>case</th>"
                "<th>version</th><th>outcome</th><th>s</th><th>title</th><th>detail</th></tr>"
                + "".join(rows) + "</table>")

    def __str__(self) -> str:
        return self.text()
