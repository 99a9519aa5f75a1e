"""Whose voice is an utterance: this side's own speaker, the other side leaking in, or a neighbour.

Real lines leak: a headset's sidetone and line echo put each side on the other's
channel 15-25 dB down, and other agents on the floor talk 10-15 dB below the desk's
own agent. Both pass the VAD and give fluent words, so they are judged by level (and pitch):

- echo: where the utterance is loudest it is much weaker than the other channel, and the
  other side is talking then (its level comes and goes; a line noise an AGC lifts is level);
- echo at an end: the VAD glued the other side's echo to the start or end of this side's
  words (the caller's complaint, then the agent's apology); that end is cut off;
- background: the utterance is much weaker than this channel's own main speaker
  (the level most of its utterances so far have had), or, on the agent's channel, a few dB
  weaker than the agent's voice and another voice (its pitch): a neighbour an AGC lifted.

Thresholds were measured on the dev corpus and two or three 40-call field-style sets (echo,
neighbours, music on hold, packet loss, AGC, speakerphones; scripts/make_synth_corpus.py
--field with two or three seeds), see `AttributionOptions`. Batch and live use this same object, fed each
channel's utterances in time order, so `monitor replay` equals `monitor score`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.audio.lead import LeadOptions, frame_sides, leads
from monitor.audio.levels import frame_levels, level_db
from monitor.events import SAMPLE_RATE, Role, Transcript, Utterance
from monitor.voices import median_log_pitch

FRAME = 480  # 30 ms: levels are compared frame by frame at this size


@dataclass(frozen=True)
class EchoEndOptions:
    """When an utterance starts or ends with the other side's echo, glued on by the VAD (the
    caller's 你们怎么这么差 leaking in, then the agent's apology: one utterance that is neither
    echo as a whole nor the agent's as a whole). Frame by frame (30 ms): echo where the frame is
    `echo_db` below the other channel and that side is talking, own speech where it is much less
    below; an end is cut when it is echo up to a run of own speech.

    Checked against the labels over every VAD utterance of the dev and three field-style sets:
    90 ends cut, 88 of them with no labelled own speech in the cut; the 2 others on the caller's
    side (0.35 s and 1.0 s of a caller's words under the agent). Counting quieter frames as
    possible echo (the 30th percentile instead of the median) cut 173 ends but 6 wrongly, one
    of them an agent's greeting. An end where the other line is flat over it (loud frames less
    than `other_active_db` above its quiet ones: noise an AGC holds up, not words) is not cut:
    over the dev and four field-style sets that left 2 ends uncut, both the side's own words
    (field33 syn-021's greeting under the caller line's lifted noise, 1.9 s, and 0.6 s of a
    caller's), and changed no other cut.

    A frame also counts as own speech where the other side is not talking and the frame is among
    the utterance's loudest (`quiet_other_own_percentile`): under a caller line's noise that an
    AGC holds above the agent's greeting, the greeting's frames were not "own" by the level gap,
    so no end was found and the whole utterance, greeting and the caller's echo after it, was
    dropped as echo (field35 syn-034). Over every VAD utterance of the dev and six field-style
    sets (270 calls): labelled own speech in the dropped pieces 53.0 s -> 40.4 s (1156 -> 1152
    pieces), two pieces with none of it (1.2 s and 2.2 s at two calls' ends) no longer dropped;
    end to end one greeting false alert fewer, no other finding changed."""

    min_end_s: float = 0.6  # an echo end this long at least ...
    min_rest_s: float = 0.5  # ... and this much left for the side's own words
    echo_share: float = 0.8  # of the end's telling frames, this share sound like echo
    echo_percentile: float = 50.0  # an echo frame is at least this percentile of the utterance's frame levels
    own_gap_db: float = 6.0  # a frame this much less below the other side than `echo_db` is own speech
    own_run_frames: int = 10  # own speech starts where this many frames (0.3 s) ...
    own_run_share: float = 0.6  # ... are this share own-speech frames
    lead_frames: int = 3  # the own words' onset is kept this many frames before that run
    quiet_other_own_percentile: float = 75.0  # see the class's text
    enabled: bool = True


@dataclass(frozen=True)
class BackgroundEndOptions:
    """When an utterance starts or ends with someone else quieter than this side's speaker (a
    neighbour, a babble of the floor, line noise the VAD took for speech), glued on by the VAD
    to the side's own words: one utterance that is neither background as a whole nor all the
    side's. Frame by frame (30 ms): own speech where a frame is within `gap_db` of the channel's
    main speaker level (`Attributor`); an end is cut when it runs `min_end_s` or more before
    own speech starts (a run of `run_frames` that is `run_share` own-level frames).

    Checked against the labels over every kept VAD utterance of the dev corpus and five
    40-call field-style sets (scripts/make_synth_corpus.py --field, seeds 20240611, 777, 4242,
    90210, 31337): at 10 dB, 95 ends cut (149 s), 6 of them holding 0.2-0.9 s of the side's
    own words (its quietest syllables); at 9 dB 126 cuts, 8 with own words; at 12 dB 52, 4.
    Scored on the five sets (micro-F1 before -> after): .93 -> .93, .85 -> .86, .89 -> .89,
    .94 -> .96, .86 -> .88. Hold found 2 more times (a return line whose start the VAD had put
    seconds early on a neighbour or babble), a neighbour's words cut off the agent's (2
    forbidden false alerts fewer), one rude line more heard and one polite 不管多晚都 heard
    worse (a false alert more): the shorter input changes what the recogniser makes of it. The
    dev calls score the same. At 8 dB field2's hold gain was lost."""

    gap_db: float = 10.0
    run_frames: int = 10
    run_share: float = 0.6
    lead_frames: int = 3  # the own words' onset is kept this many frames before that run
    min_end_s: float = 1.0  # a background end this long at least ...
    min_rest_s: float = 0.5  # ... and this much left for the side's own words
    enabled: bool = True


def background_ends(own: np.ndarray, main_db: float, options: BackgroundEndOptions = BackgroundEndOptions()
                    ) -> tuple[int, int]:
    """Samples a:b of an utterance (`own`) that hold the side's own speaker, whose level is
    `main_db`; before a and after b, quieter voices or noise (a, b = 0, len(own) when neither
    end is)."""
    whole = (0, len(own))
    o = frame_levels(own, FRAME)
    run = options.run_frames
    if not options.enabled or len(o) < run:
        return whole
    loud = o >= main_db - options.gap_db

    head = own_speech_start(loud, run, options.run_share, options.lead_frames)
    if head is None:
        return whole  # the whole utterance is quiet: `Attributor.judge` decides on it
    tail = own_speech_start(loud[::-1], run, options.run_share, options.lead_frames) or 0
    min_end = round(options.min_end_s * SAMPLE_RATE / FRAME)
    a = head * FRAME if head >= min_end else 0
    b = min(len(own), (len(o) - tail) * FRAME) if tail >= min_end else len(own)
    if b - a < options.min_rest_s * SAMPLE_RATE:
        return whole
    return a, b


@dataclass(frozen=True)
class AttributionOptions:
    # this far below the channel's main speaker: someone else's voice. Own speech was never
    # below -6.3 dB of it (dev, and two 40-call field-style sets: 824 utterances); an AGC
    # squeezes neighbours up to -7..-9 dB: of 87 other voices the recogniser heard, 10 were
    # 8-9 dB below and 27 were 7-9 dB below.
    background_db: float = 7.5
    # This far below the other channel where the utterance is loudest: the other side. Compared
    # frame by frame (30 ms) at the utterance's loudest 30 % of frames, against the other
    # channel's loudest frame of the `echo_reach_frames` up to then (an echo comes 50-100 ms
    # after its source): the median gap. Over whole spans a short back-channel or a pause made
    # the levels lie. Measured on every VAD utterance of the dev and two field-style sets (1,362
    # own speech, 330 other): at 12 dB 3 own and 180 others are below it (whole-span levels: 7
    # and 174).
    echo_db: float = 12.0
    echo_reach_frames: int = 5
    # ... and only while the other side is talking: its loud frames (90th percentile of 30 ms
    # frame levels) this far above its quiet ones (20th). A line whose noise an AGC lifts to
    # -10 dBFS is louder than a quiet agent, but flat; it echoes no one. Measured on the dev and
    # two field-style sets: 15 of 20 own-speech utterances dropped as echo had the other channel
    # flat (0.9-4.5 dB), against 5 of 179 true echoes (tones, 0.9-1.4 dB; the next at 5.3 dB).
    other_active_db: float = 5.0
    main_percentile: float = 75.0  # "main speaker" level: this percentile of the channel's utterances
    # Utterances a channel needs before its main level means anything. From the first on: the
    # agent's greeting sets it, so a neighbour's words early in the call are caught too. Simulated
    # over the dev and three field-style sets, 1 instead of 3 dropped 29 more utterances, none of
    # them a side's own words (neighbours' sentences, hallucinated hot words); micro-F1 equal or
    # up 0.01.
    min_known: int = 1
    # A neighbour an AGC lifts to within a few dB of the agent: another voice this far below
    # the main voice. The main voice: the kept lines of `voice_min_s` or more within
    # `voice_near_db` of the loudest such line so far (the loudest, not the first: a neighbour
    # may talk before the agent does), their median level and median pitch; another voice: a
    # median pitch this far from theirs (log, 0.1 = 10.5 %). Simulated over every VAD utterance
    # of the agent channels of the dev and three field-style sets (760 own, 77 others kept by
    # level): 33 more others dropped, no own line and no line partly own; at 4 dB an own line
    # went. Measured from the channel's 75th-percentile level instead (which a talkative
    # neighbour pulls down) 4.5 dB dropped 31. A level cue alone at 5 dB dropped 24 but left an
    # own line 4.9 dB below; on the caller side (a caller's level varies with emotion and
    # distance) the two cues together still dropped 4-6 own lines, so only `voice_roles` use it.
    voice_gap_db: float = 5.0
    voice_pitch_diff: float = 0.1
    voice_min_s: float = 1.0
    voice_near_db: float = 3.0
    voice_roles: tuple[Role, ...] = ("agent",)
    echo_ends: EchoEndOptions = EchoEndOptions()
    background_ends: BackgroundEndOptions = BackgroundEndOptions()
    # Which channel has the sound first (monitor.audio.lead): where this side's channel clearly
    # leads the other, it is this side speaking, however much louder the other channel is (an
    # AGC on the other line lifts this side's echo there above this side's own channel).
    lead: LeadOptions = LeadOptions()
    min_lead_windows: int = 2  # at least this many windows (0.75 s) of this side leading ...
    lead_over_lag: float = 2.0  # ... and this many times as many as windows of it lagging
    # Echo however loud (an AGC on this line lifted it): lagging the other channel in this share of
    # the utterance's windows at least (and the two counts above, the other way round). Echoes of
    # the field-style sets lag in 55-100 % of their windows; own words over the dev calls' shared
    # babble in up to 23 %.
    echo_lag_share: float = 0.5
    # Dropped for its timing only when at most this much louder than the other channel. The 28
    # utterances of the five field-style sets dropped so were echoes (of the side's own words: 0 s
    # in 24, 0.3-0.4 s of back-channel in 4), -11 to +9 dB; a side's own words over a faint leak
    # whose leg the recorder wrote 60 ms early (a stalled jitter buffer) came 11-15 dB louder.
    time_within_db: float = 10.0


def _spread_db(db: np.ndarray) -> float:
    """How far a span's loud frames (levels `db`) are above its quiet ones: speech comes and goes
    in syllables, noise stays level."""
    if len(db) < 2:
        return float("inf")  # too short to tell: as before, by level alone
    return float(np.percentile(db, 90) - np.percentile(db, 20))


def _recent_max(t: np.ndarray, reach: int) -> np.ndarray:
    """Per frame, the loudest of the other channel's frame levels `t` over the last `reach` frames
    (an echo comes after its source)."""
    return np.max([np.concatenate([np.full(k, -120.0), t[:len(t) - k]]) for k in range(reach)], axis=0)


def _below_other_db(o: np.ndarray, t: np.ndarray, reach: int) -> float:
    """How far the utterance's loud frames (levels `o`) are below the other channel's (`t`, over
    the same span); at least 4 frames of each."""
    n = min(len(o), len(t))
    o, recent = o[:n], _recent_max(t[:n], reach)
    loud = o >= np.percentile(o, 70)
    return float(np.median((recent - o)[loud]))


def own_speech_start(own_frames: np.ndarray, run: int, share: float, lead: int) -> int | None:
    """Frames before the side's own speech begins: the first `run` frames of which `share` are
    own-speech frames (`own_frames`, booleans), less a `lead` of frames for its onset; None when
    no such run comes."""
    for k in range(0, len(own_frames) - run + 1):
        if own_frames[k:k + run].mean() >= share:
            return max(0, k - lead)
    return None


def echo_ends(own: np.ndarray, other: np.ndarray, echo: AttributionOptions = AttributionOptions(),
              options: EchoEndOptions = EchoEndOptions()) -> tuple[int, int]:
    """Samples a:b of an utterance that may be this side; before a and after b, the other side's
    echo (a, b = 0, len(own) when neither end is)."""
    o, t = frame_levels(own, FRAME), frame_levels(other, FRAME)
    n = min(len(o), len(t))
    whole = (0, len(own))
    if not options.enabled or n < round((options.min_end_s + options.min_rest_s) * SAMPLE_RATE / FRAME):
        return whole
    o, t = o[:n], t[:n]
    recent = _recent_max(t, echo.echo_reach_frames)
    gap = recent - o
    talking = recent >= np.percentile(t, 20) + echo.other_active_db
    # an echo is weaker than the side's own words, but not the line's quiet
    loud = o >= np.percentile(o, options.echo_percentile)
    is_echo = loud & talking & (gap >= echo.echo_db)
    # own speech: not far below the other line, or among the loudest while the other side is not
    # talking (under a caller line's noise an AGC holds up, the agent's greeting may be quieter than it)
    is_own = ((o >= np.percentile(o, 50)) & (gap <= echo.echo_db - options.own_gap_db)) | \
        ((o >= np.percentile(o, options.quiet_other_own_percentile)) & ~talking)
    run, min_end = options.own_run_frames, round(options.min_end_s * SAMPLE_RATE / FRAME)
    # Which channel has the sound first overrules the levels, which an AGC on either line upsets
    # (timed only where the other side talks long enough for an end of its echo to matter).
    if talking.sum() >= min_end // 2:
        first, after = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        lead_first, lead_after = frame_sides(own, other, FRAME, echo.lead)
        first[:len(lead_first)], after[:len(lead_after)] = lead_first[:n], lead_after[:n]
        is_echo = (is_echo | (loud & after)) & ~first
        is_own = (is_own & ~after) | first

    def echo_run(e: np.ndarray, m: np.ndarray, other_db: np.ndarray) -> int:
        """Frames at the start of (e, m) that are the other side's, before own speech begins."""
        k = own_speech_start(m, run, options.own_run_share, options.lead_frames)
        if k is None:
            return 0
        telling = e[:k].sum() + m[:k].sum()
        # the other line flat over that end: its noise, lifted by an AGC, not its words
        if _spread_db(other_db[:k]) < echo.other_active_db:
            return 0
        if k >= min_end and e[:k].sum() >= min_end // 2 and e[:k].sum() >= options.echo_share * telling:
            return k
        return 0

    head = echo_run(is_echo, is_own, t)
    tail = echo_run(is_echo[::-1], is_own[::-1], t[::-1])
    a, b = head * FRAME, (n - tail) * FRAME if tail else len(own)
    if b - a < options.min_rest_s * SAMPLE_RATE:
        return whole
    return a, b


def side_of(w: np.ndarray, options: AttributionOptions) -> int:
    """`Attributor.sides` from the per-window leads `w` (monitor.audio.lead.leads)."""
    first, after = int(np.sum(w > 0)), int(np.sum(w < 0))
    if first >= options.min_lead_windows and first >= options.lead_over_lag * after:
        return 1
    # an echo lags through most of its length; a voice over a background both lines share
    # (the dev calls' babble reaches both channels 90-160 ms apart) only here and there
    if after >= options.min_lead_windows and after >= options.lead_over_lag * first \
            and after >= options.echo_lag_share * len(w):
        return -1
    return 0


def lead_run_ends(own: np.ndarray, other: np.ndarray, echo: AttributionOptions = AttributionOptions()) -> tuple[int, int]:
    """Samples a:b of an utterance that lags the other channel through most of its length (its
    echo, by `Attributor.sides`) but opens or closes with this side clearly first: the side's own
    words glued by the VAD to the other side's echo, on a line whose noise held it open (the agent's
    你有意见找领导去 and the caller's next 5 s echoed 80 ms late on a noisy 8 kHz line: all of it
    was dropped as echo). a, b = 0, len(own) when there is no such run."""
    whole = (0, len(own))
    o, t = frame_levels(own, FRAME), frame_levels(other, FRAME)
    if min(len(o), len(t)) < 4 or _below_other_db(o, t, echo.echo_reach_frames) <= -echo.time_within_db:
        return whole  # far louder than the other channel: never dropped for lagging (Attributor.judge)
    w = leads(own, other, echo.lead)
    first, after = np.flatnonzero(w > 0), np.flatnonzero(w < 0)
    if side_of(w, echo) >= 0 or len(first) < echo.min_lead_windows:
        return whole  # not dropped for lagging, or no run of its own to keep
    hop, win = int(echo.lead.hop_s * SAMPLE_RATE), int(echo.lead.window_s * SAMPLE_RATE)
    if first.max() < after.min():  # its own words, then the echo
        return 0, min(len(own), int(first.max()) * hop + win)
    if first.min() > after.max():  # the echo, then its own words
        return int(first.min()) * hop, len(own)
    return whole


class Attributor:
    """Decides, utterance by utterance and per channel in time order, what to keep."""

    def __init__(self, options: AttributionOptions = AttributionOptions()) -> None:
        self.opt = options
        self._levels: dict[Role, list[float]] = {}
        self._voices: dict[Role, list[tuple[float, float]]] = {}  # (level, median log pitch) of kept lines

    def _main_voice(self, voices: list[tuple[float, float]]) -> tuple[float, float]:
        """(level, log pitch) of the channel's main voice so far (see AttributionOptions)."""
        top = max(level for level, _ in voices)
        main = np.array([v for v in voices if v[0] >= top - self.opt.voice_near_db])
        return float(np.median(main[:, 0])), float(np.median(main[:, 1]))

    def main_level(self, role: Role) -> float | None:
        """The level of this channel's main speaker so far (None before it is known)."""
        known = self._levels.get(role, [])
        return float(np.percentile(known, self.opt.main_percentile)) if len(known) >= self.opt.min_known else None

    def background_ends(self, u: Utterance) -> tuple[int, int]:
        """Samples a:b of the utterance that may be this side's speaker (see `background_ends`)."""
        main = self.main_level(u.role)
        return (0, len(u.samples)) if main is None else background_ends(u.samples, main, self.opt.background_ends)

    def split_background_ends(self, u: Utterance) -> tuple[Utterance, list[Transcript]]:
        """(the utterance without quieter voices at its ends, transcripts of those ends)."""
        a, b = self.background_ends(u)
        return split_ends(u, a, b, "background voice")

    def sides(self, own: np.ndarray, other: np.ndarray) -> int:
        """+1: this side's channel mostly has the sound first (this side is speaking); -1: mostly
        after the other channel (its echo); 0: cannot be told."""
        return side_of(leads(own, other, self.opt.lead), self.opt)

    def judge(self, role: Role, own: np.ndarray, other: np.ndarray | None, remember: bool = True) -> str | None:
        """Why an utterance (its samples `own`, the other channel's over the same span) is not
        this side speaking; None to keep it. Remembers kept levels for the channel's main level."""
        level = level_db(own)
        if other is not None and len(other):
            o, t = frame_levels(own, FRAME), frame_levels(other, FRAME)
            below = _below_other_db(o, t, self.opt.echo_reach_frames) if min(len(o), len(t)) >= 4 \
                else level_db(other) - level
            # far louder than the other channel: no echo of it, whatever the timing (and no need to time it)
            side = self.sides(own, other) if below > -self.opt.time_within_db else 0
            if below >= self.opt.echo_db and _spread_db(t) >= self.opt.other_active_db and side <= 0:
                return f"echo of the other side ({-below:.0f} dB)"
            if side < 0:  # as loud as its source or louder (an AGC lifted it), but later
                return f"echo of the other side ({-below:.0f} dB, later than it)"
        known = self._levels.setdefault(role, [])
        main = self.main_level(role)
        if main is not None and main - level >= self.opt.background_db:
            return f"background voice ({level - main:.0f} dB below this side's speaker)"
        voices = self._voices.setdefault(role, [])
        by_voice = role in self.opt.voice_roles
        pitch = float("nan")
        if by_voice and voices:
            voice_level, voice_pitch = self._main_voice(voices)
            if voice_level - level >= self.opt.voice_gap_db:
                pitch = median_log_pitch(own)
                if abs(pitch - voice_pitch) >= self.opt.voice_pitch_diff:
                    return f"background voice ({level - voice_level:.0f} dB below this side's speaker, another voice)"
        if remember:
            known.append(level)
            if by_voice and len(own) >= self.opt.voice_min_s * SAMPLE_RATE:
                pitch = median_log_pitch(own) if np.isnan(pitch) else pitch
                if not np.isnan(pitch):
                    voices.append((level, pitch))
        return None


def split_echo_ends(u: Utterance, own: np.ndarray, other: np.ndarray | None,
                    options: AttributionOptions) -> tuple[Utterance, list[Transcript]]:
    """(the utterance without the other side's echo at its ends, transcripts of those ends);
    `own`, `other`: both channels over the utterance's span."""
    if other is None:
        return u, []
    a, b = echo_ends(own, other, options, options.echo_ends)
    if (a, b) == (0, len(own)):
        a, b = lead_run_ends(own, other, options)
    # `own` is the channel's span of the utterance, which may differ from its samples by a sample
    return split_ends(u, a, len(u.samples) if b >= len(own) else b, "echo of the other side")


def split_ends(u: Utterance, a: int, b: int, what: str) -> tuple[Utterance, list[Transcript]]:
    """(samples a:b of the utterance, transcripts of what is cut before and after, as `what`)."""
    ends = [dropped(u.piece(0, a), f"{what} (before this side's words)")] if a else []
    if b < len(u.samples):
        ends.append(dropped(u.piece(b, len(u.samples)), f"{what} (after this side's words)"))
    return (u.piece(a, b) if ends else u), ends


def dropped(u: Utterance, why: str) -> Transcript:
    """The transcript of an utterance that is not this side speaking (not sent to the recogniser)."""
    return Transcript(role=u.role, start=u.start, end=u.end, text="", speech=False, dropped_because=why)


def is_leak(tr: Transcript) -> bool:
    """Heard on the channel but not this side's words: an echo, a neighbour, music on hold."""
    return tr.dropped_because.startswith(("echo of", "background voice", "music"))
