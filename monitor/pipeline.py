"""Batch scoring of one recorded call: the same stages the live path uses.

load -> tones (caller) -> VAD per channel -> transcriber -> rule engine -> report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from monitor.asr import Transcriber
from monitor.attribution import AttributionOptions, Attributor, dropped, is_leak, split_echo_ends
from monitor.audio.files import AudioError, CallAudio, ChannelRoles, load_call
from monitor.audio.lead import same_audio
from monitor.events import SAMPLE_RATE, CallEvent, ToneEvent, Transcript, Utterance, Violation
from monitor.judge_input import JudgeInput
from monitor.metrics import call_metrics
from monitor.mono import mono_call
from monitor.music import MUSIC, MusicOptions, split_music
from monitor.phrasebook import Profile
from monitor.roles import MonoRoleOptions
from monitor.rules import RuleEngine, RuleOptions
from monitor.rules.engine import TimelineItem, timeline_key
from monitor.scoring import score
from monitor.tones import ToneDetector, ringback
from monitor.vad import VadOptions, segment

# Both channels one recording: as two sides, each would have every word of the call.
COPIED_MONO = "both channels hold the same audio (a mono recording copied to both): scored as a mixed-mono call"


@dataclass(frozen=True)
class ScoreOptions:
    roles: ChannelRoles = ChannelRoles()
    vad: VadOptions = VadOptions()
    rules: RuleOptions = RuleOptions()
    use_events_sidecar: bool = True
    attribution: AttributionOptions = AttributionOptions()
    music: MusicOptions = MusicOptions()
    # A mono file: "auto" splits the mix into agent and caller (monitor.roles); "agent" hears it all as the agent.
    mono_roles: str = "auto"
    mono: MonoRoleOptions = MonoRoleOptions()


@dataclass
class CallReport:
    call: str
    path: str
    duration: float
    profile: str
    score: float
    violations: list[Violation]
    transcript: list[Transcript]
    not_judged: list[str] = field(default_factory=list)
    hangup_evidence: str = ""
    recommended_used: list[str] = field(default_factory=list)  # the norms' 服务用语 the agent used
    tones: list[ToneEvent] = field(default_factory=list)
    truncated: bool = False  # the recording ends before its header says: its end is not judged
    note: str = ""  # why it is truncated, one line
    warnings: list[str] = field(default_factory=list)  # what the QA lead should know before trusting it
    judge_input: JudgeInput | None = None  # what the rules were fed: `monitor rescore` re-judges from it
    meta: dict[str, str] = field(default_factory=dict)  # agent, team, date, ... (monitor.meta)
    profile_version: str = ""  # which version of the profile judged it (Profile.version)

    def to_dict(self) -> dict:
        return {
            "call": self.call,
            **({"meta": self.meta} if self.meta else {}),
            "duration": round(self.duration, 2),
            "profile": self.profile,
            **({"profile_version": self.profile_version} if self.profile_version else {}),
            "score": self.score,
            "violations": [v.to_dict() for v in self.violations],
            "transcript": [t.to_dict() for t in self.transcript if t.speech],
            # Heard, but not this side speaking: the other side leaking in, or a neighbour.
            "not_their_words": [{**t.to_dict(), "why": t.dropped_because} for t in self.transcript if is_leak(t)],
            "not_judged": self.not_judged,
            "hangup_evidence": self.hangup_evidence,
            "recommended_used": self.recommended_used,
            "tones": [{"channel": t.role, "start": round(t.start, 2), "end": round(t.end, 2), "kind": t.kind}
                      for t in self.tones],
            "truncated": self.truncated,
            **({"note": self.note} if self.note else {}),
            **({"warnings": self.warnings} if self.warnings else {}),
            "metrics": call_metrics(self.transcript, self.duration).to_dict(),
            **({"judge_input": self.judge_input.to_dict()} if self.judge_input else {}),
        }


def read_events_sidecar(audio_path: Path) -> list[CallEvent]:
    """CALL.events.json beside the audio: [{"t": s, "type": "hangup", "by": "agent"|"caller"}, ...]."""
    side = audio_path.with_name(audio_path.stem + ".events.json")
    if not side.exists():
        return []
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError("must be a JSON list")
        events = []
        for i, e in enumerate(raw):
            if not isinstance(e, dict) or not isinstance(e.get("t"), (int, float)) or not isinstance(e.get("type"), str):
                raise ValueError(f"entry {i} needs a number 't' and a string 'type'")
            by = e.get("by")
            if by not in (None, "agent", "caller"):
                raise ValueError(f"entry {i}: 'by' must be agent or caller")
            events.append(CallEvent(t=float(e["t"]), type=e["type"], by=by))
        return sorted(events, key=lambda e: e.t)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AudioError(f"{side.name}: bad events file ({exc})") from None


def caller_tones(call: CallAudio) -> tuple[list[ToneEvent], list[ToneEvent]]:
    """(tones as the live path learns of them, ending when confirmed; tones with their true extent)."""
    if "caller" not in call.channels:
        return [], []
    detector = ToneDetector("caller")
    confirmed = detector.feed(call.channels["caller"])
    return confirmed, detector.flush()


def rang_before_pickup(call: CallAudio) -> ToneEvent | None:
    """The ringback a recording made from the ring opens with, on either channel (monitor.tones)."""
    found = [t for role, x in call.channels.items() if (t := ringback(x, role)) is not None]
    return min(found, key=lambda t: t.start) if found else None


def utterances_of(call: CallAudio, tones: list[ToneEvent], vad: VadOptions,
                  ringing: list[tuple[float, float]] | None = None) -> list[Utterance]:
    utts: list[Utterance] = []
    for role, samples in call.channels.items():
        # A busy tone looks like speech to webrtcvad, and nothing after its onset is anyone talking to
        # the other side: the caller has hung up. Its echo on the agent's channel, which an AGC can lift
        # to the tone's own level, would otherwise be glued to the agent's goodbye. Before the pick-up
        # (`ringing`) nobody is on the call.
        masked = [(t.start, call.duration + 1.0) for t in tones] + list(ringing or [])
        utts.extend(segment(samples, role, vad, masked=masked))
    return utts


def attribute(call: CallAudio, utts: list[Utterance],
              options: AttributionOptions) -> tuple[list[Utterance], list[Transcript]]:
    """(utterances of each side's own speaker, transcripts of the echoes and background voices)."""
    attributor = Attributor(options)
    keep: list[Utterance] = []
    leaks: list[Transcript] = []
    for u in sorted(utts, key=lambda u: u.start):  # each channel in time order, as live
        a, b = int(u.start * SAMPLE_RATE), int(u.end * SAMPLE_RATE)
        other = next((r for r in call.channels if r != u.role), None)
        u, ends = split_echo_ends(u, call.channels[u.role][a:b], call.channels[other][a:b] if other else None, options)
        leaks += ends
        u, ends = attributor.split_background_ends(u)
        leaks += ends
        a, b = int(u.start * SAMPLE_RATE), int(u.end * SAMPLE_RATE)
        why = attributor.judge(u.role, call.channels[u.role][a:b],
                               call.channels[other][a:b] if other else None)
        if why is None:
            keep.append(u)
        else:
            leaks.append(dropped(u, why))
    return keep, leaks


def judge(profile: Profile, options: RuleOptions, roles, transcripts: list[Transcript],
          tones: list[ToneEvent], events: list[CallEvent], duration: float,
          end_heard: bool = True) -> RuleEngine:
    """Feed everything to a rule engine in time order, as the live path would. `end_heard` False:
    the recording stops before the call did (RuleEngine.end)."""
    engine = RuleEngine(profile, options, roles)
    timeline: list[TimelineItem] = [*events, *tones, *transcripts]
    for item in sorted(timeline, key=timeline_key):
        engine.feed(item)
    engine.tick(duration)
    engine.end(duration, end_heard)
    return engine


def recommended_used(profile: Profile, transcripts: list[Transcript]) -> list[str]:
    """The recommended service phrases (服务用语) the agent said, in order, once each."""
    found: list[str] = []
    for t in transcripts:
        if t.role == "agent" and t.speech:
            found += [m.pattern for m in profile.recommended.find(t.text) if m.pattern not in found]
    return found


def score_call(path: Path, profile: Profile, transcriber: Transcriber, options: ScoreOptions = ScoreOptions()) -> CallReport:
    call = load_call(path, options.roles)
    if len(call.channels) == 2 and same_audio(call.channels["agent"], call.channels["caller"]):
        call = replace(call, channels={"agent": call.channels["agent"]}, warnings=(*call.warnings, COPIED_MONO))
    events = read_events_sidecar(path) if options.use_events_sidecar else []
    ring = rang_before_pickup(call)
    if ring is not None and not any(e.type == "start" for e in events):
        events = [CallEvent(t=ring.end, type="start"), *events]
        call = replace(call, warnings=(*call.warnings, f"recorded from the ring: ringback until {ring.end:.1f} s, "
                                       "taken as the pick-up (the greeting is timed from it)"))
    ringing = [(ring.start, ring.end)] if ring is not None else []
    roles = call.roles
    if options.mono_roles == "auto" and roles == ("agent",):  # mixed mono: both sides in one channel
        mono = mono_call(call, profile, transcriber, options.rules.direction, options.vad, options.music, options.mono,
                         ringing=ringing)
        confirmed, tones, transcripts, roles = mono.confirmed_tones, mono.tones, mono.transcripts, ("agent", "caller")
    else:
        confirmed, tones = caller_tones(call)
        utts, music = split_music(utterances_of(call, tones, options.vad, ringing), options.music)
        own_voice, leaks = attribute(call, utts, options.attribution)
        leaks += [dropped(u, MUSIC) for u in music]
        transcripts = sorted(transcriber.transcribe(own_voice) + leaks, key=lambda t: (t.start, t.role))
    return judged_report(path.name, profile, JudgeInput(
        roles=roles, direction=options.rules.direction, rules=options.rules.rules, transcripts=transcripts,
        confirmed_tones=confirmed, tones=sorted([*tones, *([ring] if ring else [])], key=lambda t: t.start),
        events=events, duration=call.duration,
        truncated=call.truncated, note=call.note,
        path=str(path), hotwords=profile.hotwords, warnings=call.warnings))


def swapped_greeting(profile: Profile, inp: JudgeInput) -> str:
    """The caller's first line, when it is a greeting with the company's name, said before the agent
    said anything, and the agent's first line names no company: a stereo file whose channels are the
    other way round."""
    if inp.roles != ("agent", "caller") or any(t.role_confidence is not None for t in inp.transcripts):
        return ""  # a mono call's sides are decided from the words themselves
    first = {role: next((t for t in inp.transcripts if t.role == role and t.speech), None) for role in inp.roles}
    caller, agent = first["caller"], first["agent"]
    if caller is None or not (profile.greeting_company.patterns and profile.greeting_company.first(caller.text)
                              and profile.greeting_inbound.first(caller.text)):
        return ""
    if agent is not None and (agent.start < caller.start or profile.greeting_company.first(agent.text)):
        return ""  # the agent spoke first (a missed greeting, then the caller's 是中兴通讯吗), or named the company
    return caller.text


def judged_report(call: str, profile: Profile, inp: JudgeInput) -> CallReport:
    """Judge what was heard in a call against a profile (`score` after recognition, and `rescore`)."""
    engine = judge(profile, RuleOptions(direction=inp.direction, rules=inp.rules), inp.roles, inp.transcripts,
                   inp.confirmed_tones, inp.events, inp.duration, end_heard=not inp.truncated)
    violations = sorted(engine.violations, key=lambda v: (v.start, v.rule))
    hangup = next((r for r in engine.rules if r.name == "hangup"), None)
    warnings = list(inp.warnings)
    if not any(t.speech for t in inp.transcripts):  # a ghost call, or a line that failed
        warnings.append("no speech heard on either side; judged as a call in which nobody spoke")
    swapped = swapped_greeting(profile, inp)
    if swapped:
        warnings.append(f"the caller's side opens with the agent's greeting (“{swapped}”) and the agent's "
                        "does not: are the channels swapped? (--agent-channel, --caller-channel)")
    return CallReport(call=call, path=inp.path, duration=inp.duration, profile=profile.name,
                      profile_version=profile.version,
                      score=score(violations), violations=violations, transcript=inp.transcripts,
                      not_judged=engine.not_judged, hangup_evidence=getattr(hangup, "evidence", ""),
                      recommended_used=recommended_used(profile, inp.transcripts),
                      tones=inp.tones, truncated=inp.truncated, note=inp.note, warnings=warnings,
                      judge_input=inp)
