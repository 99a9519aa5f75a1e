"""Where calls begin and end in the audio of a desk that listens all day.

`CallDetector` is a plain object: feed it the desk's one ordered stream (audio
frames in desk time, the softphone's `Control`s where they arrived, the end of
the stream) and it returns that stream cut into calls: `CallStarted`, the
frames re-timed to the call, `CallEnded`. Best evidence first: the softphone
says so (a hook or baresip); otherwise the audio: speech after idle starts a
call, and the caller's busy tone or a long silence on both sides ends it.

During a call it asks the call's own session what it heard (`CallActivity`)
instead of running a second VAD and tone detector over the same frames.
"""
from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitor.events import (
    SAMPLE_RATE,
    AudioFrame,
    CallEnded,
    CallStarted,
    Control,
    EndOfStream,
    Role,
)
from monitor.tones import ToneDetector
from monitor.vad import VadSegmenter

log = logging.getLogger("monitor.live")

StreamItem = AudioFrame | Control | EndOfStream
CallItem = CallStarted | AudioFrame | CallEnded | EndOfStream


@dataclass(frozen=True)
class CallDetectOptions:
    """How calls are found in continuous audio."""

    from_audio: bool = True  # start/end calls by audio (until a softphone speaks up)
    pre_roll_s: float = 1.0  # audio kept before detected speech becomes t = 0 of the call
    idle_end_s: float = 60.0  # both sides silent this long ends a call
    tone_end_s: float = 3.0  # the caller's busy tone this long ends a call
    max_call_s: float = 4 * 3600.0


class CallActivity(Protocol):
    """What the call being followed has heard so far (a `CallSession` is one)."""

    @property
    def last_voice(self) -> float: ...  # call time of the last speech on any channel

    @property
    def tones(self) -> ToneDetector | None: ...  # the caller channel's tone detector


def tone_channel(roles: tuple[Role, ...]) -> Role:
    """The channel that carries the caller's busy tone: the caller's, or the one mixed channel."""
    return "agent" if roles == ("agent",) else "caller"


class Ears:
    """The detector's own VAD and tone detector, for when no call session listens."""

    def __init__(self, roles: tuple[Role, ...], vad: bool = True) -> None:
        self.roles = roles
        self.vad = {r: VadSegmenter(r) for r in roles} if vad else {}
        self.tone_role = tone_channel(roles)
        self.tones: ToneDetector | None = ToneDetector("caller") if self.tone_role in roles else None
        self.last_voice = 0.0

    def forget_speech(self) -> None:
        """Start the VADs afresh: what they heard was a tone, not speech."""
        self.vad = {r: VadSegmenter(r) for r in self.vad}

    def feed(self, frame: AudioFrame, t: float) -> bool:
        """True when the frame holds speech (not a call-progress tone)."""
        if frame.role == self.tone_role and self.tones is not None:
            self.tones.feed(frame.samples)
            if self.tones.active is not None:
                return False
        v = self.vad.get(frame.role)
        if v is None:
            return False
        speech = bool(v.feed(frame.samples)) or v.in_speech
        if speech:
            self.last_voice = t
        return speech


class CallDetector:
    """Cuts a desk's stream into calls. No I/O, no clock: time is the audio's."""

    def __init__(self, roles: tuple[Role, ...], options: CallDetectOptions = CallDetectOptions(),
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12]) -> None:
        self.roles = roles
        self.opt = options
        self.new_id = new_id
        self.softphone = False  # a softphone has spoken: from now on only it starts calls
        self.call: CallStarted | None = None
        self._heard: dict[Role, float] = {r: 0.0 for r in roles}  # desk time per channel
        self._ring: dict[Role, deque[AudioFrame]] = {r: deque() for r in roles}
        self._ears = Ears(roles, vad=options.from_audio)
        self._activity: CallActivity | None = None
        self._own: Ears | None = None  # in a call nobody else listens to
        self._tone_after: ToneDetector | None = None  # the busy tone that ended the last call

    def follow(self, activity: CallActivity) -> None:
        """The session of the call in progress: its VAD and tones decide an audio end."""
        self._activity = activity
        self._own = None

    @property
    def now(self) -> float:
        return max(self._heard.values(), default=0.0)

    def feed(self, item: StreamItem) -> list[CallItem]:
        if isinstance(item, Control):
            return self._control(item)
        if isinstance(item, EndOfStream):
            out: list[CallItem] = []
            if self.call is not None:
                out.append(self._end("end of audio", t=self.now - self.call.at))
            return out + [EndOfStream(t=self.now)]
        self._heard[item.role] = max(self._heard.get(item.role, 0.0), item.end)
        if self.call is None:
            return self._idle(item)
        return self._in_call(item)

    # -- softphone --------------------------------------------------------------------
    def _control(self, ctl: Control) -> list[CallItem]:
        self.softphone = True
        out: list[CallItem] = []
        if ctl.action == "start":
            if self.call is not None:
                log.info("call %s: the softphone starts another call", self.call.call_id)
                out.append(self._end("new call", t=self.now - self.call.at))
            out.append(self._start(ctl.call_id or self.new_id(), self.now, ctl.source, ctl.peer))
            return out
        if self.call is None:
            log.info("softphone: call end without a call in progress (ignored)")
            return out
        if ctl.call_id and ctl.call_id != self.call.call_id:
            log.info("softphone: end of call %s, not the one in progress (ignored)", ctl.call_id)
            return out
        source = f"{ctl.source}: {ctl.reason}" if ctl.reason else ctl.source
        why = "softphone lost" if ctl.lost else ctl.source
        out.append(self._end(why, t=self.now - self.call.at, by=None if ctl.lost else ctl.by, source=source))
        return out

    # -- audio --------------------------------------------------------------------------
    def _idle(self, frame: AudioFrame) -> list[CallItem]:
        if not self.opt.from_audio or self.softphone:
            return []
        ring = self._ring[frame.role]
        ring.append(frame)
        while ring and frame.end - ring[0].start > self.opt.pre_roll_s:
            ring.popleft()
        if frame.role == tone_channel(self.roles) and self._tone_after is not None:
            # The busy tone goes on until the agent hangs up: it is not a new call.
            self._tone_after.feed(frame.samples)
            if self._tone_after.active is not None:
                self._ears.forget_speech()
                return []
            self._tone_after = None
        if not self._ears.feed(frame, frame.end):
            return []
        t0 = min(f.start for r in self.roles for f in self._ring[r])
        backlog = sorted((f for r in self.roles for f in self._ring[r]), key=lambda f: f.start)
        out: list[CallItem] = [self._start(self.new_id(), t0, "speech", None)]
        return out + [AudioFrame(f.role, f.start - t0, f.samples) for f in backlog]

    def _in_call(self, frame: AudioFrame) -> list[CallItem]:
        assert self.call is not None
        t0 = self.call.at
        out: list[CallItem] = []
        heard: AudioFrame | None = None
        if frame.end > t0:
            skip = max(0, int(round((t0 - frame.start) * SAMPLE_RATE)))  # a channel lagging the start
            samples = frame.samples[skip:] if skip else frame.samples
            heard = AudioFrame(frame.role, max(0.0, frame.start - t0), samples)
            out.append(heard)
        t = frame.end - t0
        activity = self._activity
        if activity is None:
            if self._own is None:
                self._own = Ears(self.roles)
            if heard is not None:
                self._own.feed(heard, t)
            activity = self._own
        why = None
        tones = activity.tones
        tone = tones.active if tones is not None else None
        if self.opt.from_audio and tone is not None and t - tone.start >= self.opt.tone_end_s:
            why = "busy tone"
        elif self.opt.from_audio and not self.softphone and t - activity.last_voice >= self.opt.idle_end_s:
            why = "silence"
        elif t >= self.opt.max_call_s:
            why = "too long"
        if why:
            self._tone_after = tones if why == "busy tone" else None
            out.append(self._end(why, t=t))
        return out

    # -- state ----------------------------------------------------------------------------
    def _start(self, call_id: str, at: float, how: str, peer: str | None) -> CallStarted:
        self.call = CallStarted(call_id=call_id, at=at, how=how, peer=peer)
        self._activity, self._own = None, None
        self._ring = {r: deque() for r in self.roles}
        log.info("call %s starts (%s)", call_id, how)
        return self.call

    def _end(self, why: str, t: float, by: Role | None = None, source: str = "") -> CallEnded:
        assert self.call is not None
        log.info("call %s ends (%s) at %.1f s", self.call.call_id, why, t)
        self.call = None
        self._activity, self._own = None, None
        self._ears = Ears(self.roles, vad=self.opt.from_audio)
        return CallEnded(t=max(0.0, t), why=why, by=by, source=source)

