"""One call, live: the batch stages fed block by block, with no I/O and no clock.

The runner (monitor/live/desk.py) feeds audio blocks per channel, sends the
utterances this returns to the recogniser, and hands the transcripts back.
Transcripts reach the rule engine in the same order batch scoring uses (by
start time, up to a watermark below which nothing is still being heard or
transcribed), so a replayed recording raises the same violations as `monitor
score`. Rules that judge one transcript alone (forbidden phrases) also see
words as soon as they are recognised, including pieces of an utterance that
is still going on, so the alert does not wait for the agent to stop talking.

A mixed-mono call (one channel, "agent", with both sides: `LiveOptions.mono_roles` "auto") runs
the batch mono stages (monitor.mono): the busy tone is looked for in the mix, the VAD closes
utterances at the mono pause, long utterances are cut at voice gaps (monitor.turns), and each
finished line gets its side from the lines so far (monitor.roles over them: for the newest line
that is the forward pass alone). A forbidden phrase is raised live only when its line is the
agent's at MIN_ROLE_CONFIDENCE_LIVE or more (stricter than batch's bar, which is measured for sides
decided over the whole call): when the line ends, or when the next line ends and makes it so (one
line of hindsight). There are no early pieces: a line's side is decided from the whole
line. At the call's end the sides are decided with all the hindsight (as `monitor score`) and the
call is judged afresh; the summary holds that judgement, and findings only it makes are raised
then. Measured with cached recognition of the dev calls mixed to mono: of the agent's 12
forbidden lines, 4 are raised when the line ends, 7 by the next line's end, 7 in the end; on a
held-out-style set (scripts/make_synth_corpus.py, 40 calls) 4 / 7 / 10 of 20 heard, with one
caller line raised when it ended (0.83 from the lines so far) that hindsight clears (0.73).
"""
from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.attribution import FRAME, AttributionOptions, Attributor, dropped, echo_ends, split_echo_ends
from monitor.events import SAMPLE_RATE, CallEvent, Role, ToneEvent, Transcript, Utterance, Violation
from monitor.music import MUSIC, MusicOptions, music_spans, split_music
from monitor.pauses import junction_pause
from monitor.phrasebook import Profile
from monitor.roles import MonoRoleOptions, RoleDecision, decide_roles, line_evidence, relabel
from monitor.rules import RuleEngine, RuleOptions
from monitor.rules.engine import TimelineItem, timeline_key, timeline_time
from monitor.rules.forbidden import MIN_ROLE_CONFIDENCE_LIVE
from monitor.tones import ToneDetector
from monitor.turns import TurnSplitOptions, split_turns
from monitor.vad import VadOptions, VadSegmenter
from monitor.voices import voice_features

RECENT_S = 45.0  # audio kept per channel: longer than any utterance the VAD lets through
TONE_SLACK_S = 0.3  # utterances starting this close to a tone onset (pre-roll included) are the tone


class _Recent:
    """The last RECENT_S seconds of one channel, addressable by call time."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._start = 0  # sample index of the first kept chunk
        self._end = 0

    def add(self, x: np.ndarray) -> None:
        self._chunks.append(x)
        self._end += len(x)
        while self._chunks and self._end - self._start - len(self._chunks[0]) > RECENT_S * SAMPLE_RATE:
            self._start += len(self._chunks.popleft())

    def span(self, start: float, end: float) -> np.ndarray:
        a, b = max(int(start * SAMPLE_RATE), self._start), min(int(end * SAMPLE_RATE), self._end)
        parts: list[np.ndarray] = []
        pos = self._end
        for chunk in reversed(self._chunks):  # only the chunks the span covers, newest first
            pos -= len(chunk)
            if pos >= b:
                continue
            if pos + len(chunk) <= a:
                break
            parts.append(chunk[max(0, a - pos):b - pos])
        return np.concatenate(parts[::-1]) if parts else np.zeros(0, dtype=np.float32)

    def holds(self, start: float, end: float) -> bool:
        """The whole span is still kept."""
        return int(start * SAMPLE_RATE) >= self._start and int(end * SAMPLE_RATE) <= self._end


@dataclass(frozen=True)
class LiveOptions:
    """How a live call is followed."""

    vad: VadOptions = field(default_factory=VadOptions)
    attribution: AttributionOptions = field(default_factory=AttributionOptions)
    music: MusicOptions = field(default_factory=MusicOptions)
    rules: RuleOptions = field(default_factory=RuleOptions)
    partial_every_s: float = 2.0  # re-transcribe a long open agent utterance this often
    partial_min_s: float = 3.0  # ... once it has gone on this long
    # One channel ("agent" only): "auto" tells the agent from the caller in the mix (monitor.roles),
    # "agent" hears every word as the agent's.
    mono_roles: str = "auto"
    mono: MonoRoleOptions = field(default_factory=MonoRoleOptions)
    turns: TurnSplitOptions = field(default_factory=TurnSplitOptions)


@dataclass(frozen=True)
class Work:
    """Audio for the recogniser. `partial`: a piece of an utterance still going on."""

    utterance: Utterance
    partial: bool = False


class CallSession:
    def __init__(self, call_id: str, profile: Profile, roles: tuple[Role, ...] = ("agent", "caller"),
                 options: LiveOptions = LiveOptions()) -> None:
        self.call_id = call_id
        self.profile = profile
        self.roles = roles
        self.opt = options
        # Both sides in one channel: the mono stages (see the module's doc).
        self.mono = roles == ("agent",) and options.mono_roles == "auto"
        vad = options.vad
        if self.mono:
            vad = replace(vad, stop_silence_s=min(vad.stop_silence_s, options.mono.stop_silence_s))
        self.vad = {r: VadSegmenter(r, vad) for r in roles}
        self.attributor = Attributor(options.attribution)
        self._audio = {r: _Recent() for r in roles}  # for telling a side's own voice from leaks
        # The channel that carries the caller's busy tone: the mix, in a mono call.
        self._tone_channel: Role = "agent" if self.mono else "caller"
        self.tones = ToneDetector("caller") if "caller" in roles or self.mono else None
        judged: tuple[Role, ...] = ("agent", "caller") if self.mono else roles
        # mono: until the call's end a line's side rests on the lines so far: a stricter bar to raise
        self.engine = RuleEngine(profile, replace(options.rules, min_role_confidence=MIN_ROLE_CONFIDENCE_LIVE)
                                 if self.mono else options.rules, judged)
        self._lines: list[Transcript] = []  # mono: the lines as heard, before their side was decided
        # mono: each line's voice (monitor.voices) and words' log-odds (monitor.roles), by its times
        self._voices: dict[tuple[float, float], np.ndarray | None] = {}
        self._voice_at_submit: dict[tuple[float, float], np.ndarray | None] = {}  # by the utterance's span
        self._words: dict[tuple[float, float], float] = {}
        self._pauses: dict[tuple[float, float, float, float], float | None] = {}  # mono: between two lines
        self._last_line: Utterance | None = None  # mono: the last piece sent to the recogniser
        self._events: list[CallEvent] = []
        self._heard = {r: 0.0 for r in roles}  # audio seconds fed per channel
        self.last_voice = 0.0  # call time of the last speech heard on any channel
        self._pending: dict[tuple[Role, float], Utterance] = {}  # at the recogniser
        self._timeline: list[tuple[tuple, int, TimelineItem]] = []  # waiting for the watermark
        self._order = itertools.count()
        self._partial_at: dict[Role, float] = {}
        self.tone_events: list[ToneEvent] = []
        self.transcripts: list[Transcript] = []
        self.finished = False
        self.ended = False
        # mono: violations raised live that the call's final judgement does not hold, with why
        self.withdrawn: list[tuple[Violation, str]] = []

    # -- audio in -------------------------------------------------------------------
    def feed(self, role: Role, samples: np.ndarray) -> tuple[list[Work], list[Violation]]:
        """A block of 16 kHz audio of one channel; returns (work for the recogniser, violations)."""
        if self.finished:
            raise RuntimeError("call already finished")
        found: list[Violation] = []
        cut: list[Utterance] = []  # other channels' utterances a tone closed
        if role == self._tone_channel and self.tones is not None:
            for tone in self.tones.feed(samples):
                cut += self._on_tone(tone)
        utts = self.vad[role].feed(samples)
        self._heard[role] += len(samples) / SAMPLE_RATE
        self._audio[role].add(samples)
        if utts or self.vad[role].in_speech:
            self.last_voice = max(self.last_voice, self._heard[role])
        work = [w for u in self._turns(self._speech(cut + utts))
                if not self._is_tone(u) and (w := self._submit(u)) is not None]
        work += self._partials(role)
        found += self.release()
        return work, found

    def event(self, ev: CallEvent) -> list[Violation]:
        self._events.append(ev)
        self._push(ev)
        return self.release()

    def finish(self) -> list[Work]:
        """End of audio: the last open utterances go to the recogniser."""
        self.finished = True
        utts = sorted((u for r in self.roles for u in self._turns(self._speech(self.vad[r].flush()))
                       if not self._is_tone(u)), key=lambda u: u.start)
        return [w for u in utts if (w := self._submit(u)) is not None]

    def close(self, t_end: float | None = None, end_heard: bool = True) -> list[Violation]:
        """Everything is transcribed: judge what only the end of the call decides.

        `end_heard` False: the audio stopped before the call did (a lost device, the
        desk stopped), so the goodbye and who hung up cannot be judged.
        """
        if self.ended:
            return []
        t_end = self.duration if t_end is None else t_end
        found = self.release(final=True)
        found += self.engine.tick(t_end)
        if self.mono:
            found += self._rejudge(t_end, end_heard)
        else:
            found += self.engine.end(t_end, end_heard)
        self.ended = True
        return found

    def _rejudge(self, t_end: float, end_heard: bool) -> list[Violation]:
        """Mono: the sides decided again with hindsight and the call judged afresh, as `monitor score`
        does; the new engine holds the call's violations, and those not raised live are returned."""
        lines = sorted(self._lines, key=lambda t: t.start)
        decided = relabel(lines, self._decide(lines, voices=True))
        others = [t for t in self.transcripts if t.dropped_because == MUSIC]  # music on hold, never transcribed
        transcripts = sorted(decided + others, key=lambda t: (t.start, t.role))
        raised = {finding(v) for v in self.engine.violations}
        engine = RuleEngine(self.profile, self.opt.rules, ("agent", "caller"))
        timeline: list[TimelineItem] = [*self._events, *self.tone_events, *transcripts]
        for item in sorted(timeline, key=timeline_key):
            engine.feed(item)
        engine.tick(t_end)
        engine.end(t_end, end_heard)
        held = {finding(v) for v in engine.violations}
        self.withdrawn = [(v, _why_withdrawn(v, transcripts)) for v in self.engine.violations
                          if finding(v) not in held]
        self.engine = engine
        self.transcripts = transcripts
        return [v for v in engine.violations if finding(v) not in raised]

    # -- recogniser results -----------------------------------------------------------
    def transcribed(self, work: Work, tr: Transcript) -> list[Violation]:
        if work.partial:
            return self.engine.on_partial(tr) if not self._is_tone(work.utterance) else []
        key = (work.utterance.role, work.utterance.start)
        span = (work.utterance.start, work.utterance.end)
        voice = self._voice_at_submit.pop(span, None)  # measured in _submit, where every line is sent
        if self._pending.pop(key, None) is None:
            return []  # cancelled: it turned out to be a tone
        found: list[Violation] = []
        if self.mono:  # the side, from the lines so far; the line before gets one line of hindsight
            self._lines.append(tr)
            self._lines.sort(key=lambda t: t.start)
            self._words[(tr.start, tr.end)] = line_evidence(tr, self.profile, self.opt.mono)
            if tr.speech and self.opt.mono.voices.enabled:
                if (tr.start, tr.end) != span:
                    voice = self._voice(tr.start, tr.end)
                self._voices[(tr.start, tr.end)] = voice
            so_far = relabel(self._lines, self._decide(self._lines, voices=False))
            k = next(i for i, t in enumerate(self._lines) if t is tr)
            tr = so_far[k]
            if k > 0:
                found += self.engine.on_partial(so_far[k - 1])  # a finding is reported once
        self.transcripts.append(tr)
        found += self.engine.on_partial(tr)  # forbidden words: no need to wait for the watermark
        self._push(tr)
        return found + self.release()

    # -- ordering -----------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return max(self._heard.values(), default=0.0)

    @property
    def watermark(self) -> float:
        """Time up to which every word has been transcribed and every tone confirmed."""
        marks: list[float] = []
        for r in self.roles:
            since = self.vad[r].open_since
            marks.append(since if since is not None else self._heard[r])
        marks += [u.start for u in self._pending.values()]
        return min(marks) if marks else 0.0

    def release(self, final: bool = False) -> list[Violation]:
        mark = float("inf") if final else self.watermark
        found: list[Violation] = []
        while self._timeline and (final or timeline_time(self._timeline[0][2]) <= mark):
            _, _, item = heapq.heappop(self._timeline)
            found += self.engine.feed(item)
        if not final:
            found += self.engine.tick(mark)
        return found

    def _push(self, item: TimelineItem) -> None:
        heapq.heappush(self._timeline, (timeline_key(item), next(self._order), item))

    # -- helpers ------------------------------------------------------------------------
    def _leak(self, u: Utterance, remember: bool = True) -> str | None:
        other = next((r for r in self.roles if r != u.role), None)
        own = self._audio[u.role].span(u.start, u.end)
        return self.attributor.judge(u.role, own, self._audio[other].span(u.start, u.end) if other else None,
                                     remember=remember)

    def _speech(self, utts: list[Utterance]) -> list[Utterance]:
        """The speech in closed utterances; music on hold is said in the report, never transcribed."""
        speech, music = split_music(utts, self.opt.music)
        for m in music:
            tr = dropped(m, MUSIC)
            self.transcripts.append(tr)
            self._push(tr)
        return speech

    def _decide(self, lines: list[Transcript], voices: bool) -> list[RoleDecision]:
        """Mono: the side of each of these lines (time order), from their words and turns, and with
        `voices` from the call's two voices too (monitor.voices): only at the call's end, since a
        voice model of the first few lines can be sure by chance (dev-000 mixed to mono: the caller's
        我不知道 line at 0.90 for the agent with the voices of the lines so far, 0.71 without)."""
        features = ([self._voices.get((t.start, t.end)) for t in lines]
                    if voices and self.opt.mono.voices.enabled else None)
        words = [self._words.get((t.start, t.end), 0.0) for t in lines]
        return decide_roles(lines, self.profile, self.opt.rules.direction, self.opt.mono, features, words,
                            pause_of=self._pause)

    def _pause(self, a: Transcript, b: Transcript) -> float | None:
        """Mono: the pause between two lines measured on the mix (monitor.pauses), as batch measures it;
        kept, since the mix of old lines leaves the recent audio."""
        key = (a.start, a.end, b.start, b.end)
        if key not in self._pauses:
            self._measure_pause(key)
        return self._pauses[key]

    def _voice(self, start: float, end: float) -> np.ndarray | None:
        """Mono: a line's voice features (monitor.voices) from the mix, as batch takes them."""
        return voice_features(self._audio["agent"].span(start, end), self.opt.mono.voices)

    def _measure_pause(self, key: tuple[float, float, float, float]) -> None:
        mix = self._audio["agent"]
        self._pauses[key] = junction_pause(lambda s, e: mix.span(s, e) if mix.holds(s, e) else None,
                                           key[:2], key[2:], self.opt.mono.pauses)

    def _turns(self, utts: list[Utterance]) -> list[Utterance]:
        """Mono: long utterances cut where the voice stops for a moment (a turn may change there)."""
        return split_turns(utts, self.opt.turns) if self.mono else utts

    def _own_part(self, u: Utterance, growing: bool = False) -> Utterance:
        """The utterance without the other side's echo and quieter voices glued to its ends (as
        batch, monitor.pipeline.attribute), which are said in the report. `growing`: a partial
        piece, whose end is not its end yet: only its start is cut, and nothing is reported."""
        u = self._without_echo_ends(u, growing)
        if growing:
            start, _ = self.attributor.background_ends(u)
            return u.piece(start, len(u.samples)) if start else u
        kept, ends = self.attributor.split_background_ends(u)
        self._report(ends)
        return kept

    def _report(self, dropped_ends: list[Transcript]) -> None:
        for tr in dropped_ends:
            self.transcripts.append(tr)
            self._push(tr)

    def _without_echo_ends(self, u: Utterance, growing: bool) -> Utterance:
        other = next((r for r in self.roles if r != u.role), None)
        if other is None:
            return u
        own, theirs = self._audio[u.role].span(u.start, u.end), self._audio[other].span(u.start, u.end)
        if abs(len(own) - len(u.samples)) > FRAME:  # older than the recent audio kept: as it is
            return u
        if growing:
            start, _ = echo_ends(own, theirs, self.opt.attribution, self.opt.attribution.echo_ends)
            return u.piece(start, len(u.samples)) if start else u
        kept, ends = split_echo_ends(u, own, theirs, self.opt.attribution)
        self._report(ends)
        return kept

    def _submit(self, u: Utterance) -> Work | None:
        if not self.mono:  # one channel: no other side to compare with
            u = self._own_part(u)
        why = None if self.mono else self._leak(u)
        if why is not None:  # not this side speaking: never transcribed, said in the report
            tr = dropped(u, why)
            self._partial_at.pop(u.role, None)
            self.transcripts.append(tr)
            self._push(tr)
            return None
        if self.mono:  # the pause before this line, measured while the mix around it is surely kept (a
            # recogniser behind an unpaced replay reads it after the recent audio has moved on)
            if self._last_line is not None:
                self._measure_pause((self._last_line.start, self._last_line.end, u.start, u.end))
            self._last_line = u
            if self.opt.mono.voices.enabled:  # its voice too, for the same reason
                self._voice_at_submit[(u.start, u.end)] = self._voice(u.start, u.end)
        self._pending[(u.role, u.start)] = u
        self._partial_at.pop(u.role, None)
        return Work(u)

    def _partials(self, role: Role) -> list[Work]:
        if role != "agent" or self.mono:  # only the agent's words can break a rule early
            return []
        v = self.vad[role]
        since = v.open_since
        if since is None:
            return []
        now = self._heard[role]
        last = self._partial_at.get(role, since + self.opt.partial_min_s - self.opt.partial_every_s)
        if now - since < self.opt.partial_min_s or now - last < self.opt.partial_every_s:
            return []
        self._partial_at[role] = now
        piece = self._own_part(Utterance(role=role, start=since, end=now, samples=v.open_samples()),
                                        growing=True)
        if self._leak(piece, remember=False) is not None or music_spans(piece.samples, self.opt.music):
            return []  # music: the closed utterance is split and judged
        return [Work(piece, partial=True)]

    def _on_tone(self, tone: ToneEvent) -> list[Utterance]:
        """The caller hung up at the tone's onset: from then on no channel holds anyone talking to the
        other (the tone's echo on the agent's channel neither; batch masks both channels alike).
        Returns the utterances this closes (open since before the tone, they end where their speech did)."""
        self.tone_events.append(tone)
        closed: list[Utterance] = []
        for vad in self.vad.values():
            closed += vad.mask(tone.start, float("inf"))
        for key in [k for k in self._pending if k[1] >= tone.start - TONE_SLACK_S]:
            del self._pending[key]
        self._push(tone)
        return closed

    def _is_tone(self, u: Utterance) -> bool:
        return any(u.start >= t.start - TONE_SLACK_S for t in self.tone_events)


def _why_withdrawn(v: Violation, final: list[Transcript]) -> str:
    """Why the call's final judgement (mono: sides decided with hindsight) does not hold `v`: a reason
    of monitor.hub.protocol.WITHDRAW_REASONS."""
    line = next((t for t in final if t.speech and t.start <= v.start + 0.01 and v.end <= t.end + 0.01), None)
    if line is None or line.role_confidence is None:
        return "not_held"
    if line.role != "agent":
        return "caller_line"
    # still the agent's, below the bar a forbidden alert needs: left to review (forbidden_unsure)
    return "side_unsure" if v.rule == "forbidden" else "not_held"


def finding(v: Violation) -> tuple[str, str | None, float]:
    """One finding, whichever engine made it (mono: the live one and the one at the call's end)."""
    return v.rule, v.phrase, round(v.start, 1)
