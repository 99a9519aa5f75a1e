"""Where a desk's alerts and call status go: the terminal, a JSONL file, the supervisor hub."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Protocol

from monitor.events import CallStarted, Transcript, Violation
from monitor.hub.protocol import MAX_TEXT, Alert, TranscriptLine
from monitor.labels import evidence, mono_side, rule_name, withdrawn_reason
from monitor.scoring import FULL_SCORE


@dataclass
class CallSummary:
    """One finished call as the desk followed it."""

    call_id: str
    duration: float
    score: float
    violations: list[Violation]
    alerts: list[Alert]
    partial_skipped: int = 0
    how: str = ""  # what started it: "hook", "baresip", "speech", "file"
    peer: str | None = None  # the other party, when the softphone said
    why_ended: str = ""  # "hook", "baresip", "softphone lost", "busy tone", "silence", "desk stopped", ...
    hung_up_by: str | None = None  # when the softphone said
    started_at: float = field(default_factory=time.time)  # wall clock
    end_judged: bool = True  # False: the audio stopped first, closing and hang-up not judged

    def to_dict(self) -> dict:
        d: dict = {"call_id": self.call_id, "duration": round(self.duration, 2), "score": self.score,
                   "violations": [v.to_dict() for v in self.violations]}
        for k in ("how", "peer", "why_ended", "hung_up_by"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if not self.end_judged:
            d["not_judged"] = ["closing", "hangup"]
        return d


class AlertSink(Protocol):
    async def call_started(self, call: CallStarted, started_at: float) -> None: ...

    async def emit(self, alert: Alert) -> None: ...

    # optional: async def withdraw(self, alert: Alert, reason: str) -> None, an alert emitted
    # earlier that the call's final judgement does not hold

    async def call_ended(self, summary: CallSummary) -> None: ...

    async def close(self) -> None: ...


class PrintSink:
    """Alerts as lines on the terminal."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.out = out

    async def call_started(self, call: CallStarted, started_at: float) -> None:
        peer = f" with {call.peer}" if call.peer else ""
        self.out.write(f"[{call.call_id}] call starts ({call.how}){peer}\n")
        self.out.flush()

    async def emit(self, alert: Alert) -> None:
        said = f" 「{alert.text}」" if alert.text else ""
        self.out.write(f"[{alert.call_id} {alert.emitted:6.1f}s] {_named(alert):<16} {_phrase(alert)}"
                       f"{evidence(alert.evidence)}{mono_side(alert.role_confidence, alert.rule)}{said}\n")
        self.out.flush()

    async def withdraw(self, alert: Alert, reason: str) -> None:
        self.out.write(f"[{alert.call_id} {alert.start:6.1f}s] {_named(alert)} {_phrase(alert)}{withdrawn_reason(reason)}\n")
        self.out.flush()

    async def call_ended(self, summary: CallSummary) -> None:
        pass  # the command prints its own line per call

    async def close(self) -> None:
        pass


def _named(alert: Alert) -> str:
    """The rule id (scripts grep it) with its name from the one wording table."""
    return f"{alert.rule} {rule_name(alert.rule)}"


def _phrase(alert: Alert) -> str:
    return f"“{alert.phrase}” " if alert.phrase else ""


class JsonlSink:
    """Alerts appended to a JSONL file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    async def call_started(self, call: CallStarted, started_at: float) -> None:
        pass

    async def emit(self, alert: Alert) -> None:
        self._f.write(json.dumps(alert.to_wire(), ensure_ascii=False) + "\n")
        self._f.flush()

    async def withdraw(self, alert: Alert, reason: str) -> None:
        """The alert again, with `withdrawn`: the last line about an alert is its state."""
        self._f.write(json.dumps(replace(alert, withdrawn=reason).to_wire(), ensure_ascii=False) + "\n")
        self._f.flush()

    async def call_ended(self, summary: CallSummary) -> None:
        pass

    async def close(self) -> None:
        self._f.close()


class HubSink:
    """Pushes alerts and call status to the supervisor hub; alerts wait in a spool while it is away.

    The client starts with the desk, so alerts spooled by an earlier run go out at
    once, and a hub that is down or refuses the token is reported straight away.
    """

    def __init__(self, url: str, token: str, desk: str, spool: Path, profile: str = "",
                 cafile: Path | None = None, on_problem: Callable[[str], None] | None = None,
                 on_recovered: Callable[[str], None] | None = None) -> None:
        from monitor.hub.desk_client import DeskClient

        self.profile = profile
        # Retry often: spooled alerts should go out within seconds of the hub coming back.
        self.client = DeskClient(url, token, desk, spool, cafile=cafile, on_problem=on_problem,
                                 on_recovered=on_recovered, backoff_max=3.0)
        self._started = False
        self._sent: dict[Alert, str] = {}  # this call's alerts and the ids they were spooled with

    async def start(self) -> None:
        if not self._started:
            await self.client.start()
            self._started = True

    async def call_started(self, call: CallStarted, started_at: float) -> None:
        await self.start()
        await self.client.call_started(call.call_id, started_at, self.profile, peer=call.peer)
        self.client.progress(call.call_id, FULL_SCORE)

    async def emit(self, alert: Alert) -> None:
        await self.start()
        self._sent[alert] = await self.client.send(alert)

    async def withdraw(self, alert: Alert, reason: str) -> None:
        alert_id = self._sent.pop(alert, None)
        if alert_id is not None:
            await self.client.withdraw(alert_id, reason)

    async def transcript(self, call_id: str, line: Transcript) -> None:
        """A recognised line of the call: to a hub that takes transcripts (masked there)."""
        self.client.transcript(TranscriptLine(call_id, line.role, round(line.start, 2),
                                              round(line.end, 2), line.text[:MAX_TEXT]))

    async def call_progress(self, call_id: str, score: float) -> None:
        """The call's running score changed (a violation)."""
        self.client.progress(call_id, score)

    async def call_ended(self, summary: CallSummary) -> None:
        self._sent = {a: i for a, i in self._sent.items() if a.call_id != summary.call_id}
        await self.start()
        await self.client.call_ended(summary.call_id, summary.started_at + summary.duration, summary.score,
                                     len(summary.violations))

    def softphone(self, state: str | None) -> None:
        """The softphone link as the supervisor should see it ("baresip connected" / "baresip away")."""
        self.client.softphone(state)

    @property
    def pending(self) -> int:
        """Alerts not yet acknowledged by the hub (they stay in the spool)."""
        return self.client.pending

    async def close(self, timeout: float = 10.0) -> None:
        if self._started:
            # A hub that is down now will not answer in 10 s either: do not hold the exit.
            await self.client.flush(timeout=timeout if self.client.connected else min(timeout, 2.0))
            await self.client.close()
