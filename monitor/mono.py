"""The recognition stages of a mixed-mono call: one channel holds both sides.

tones on the mix -> VAD (shorter stop silence: turns follow each other closely) -> music
cut out -> utterances cut at short voice gaps (monitor.turns) -> every utterance transcribed once
-> roles decided from turns and words (monitor.roles), then with the call's two voices where they
differ (monitor.voices) -> transcripts tagged agent/caller with a confidence.

No echo or neighbour attribution: with one channel there is no other side to compare.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from monitor.asr import Transcriber
from monitor.attribution import dropped
from monitor.audio.files import CallAudio
from monitor.events import SAMPLE_RATE, ToneEvent, Transcript
from monitor.music import MUSIC, MusicOptions, split_music
from monitor.pauses import PauseOptions, junction_pause
from monitor.phrasebook import Profile
from monitor.roles import MonoRoleOptions, PauseOf, decide_roles, relabel
from monitor.tones import ToneDetector
from monitor.turns import TurnSplitOptions, split_turns
from monitor.vad import VadOptions, segment
from monitor.voices import voice_features


@dataclass(frozen=True)
class MonoResult:
    transcripts: list[Transcript]
    confirmed_tones: list[ToneEvent]  # as the live path learns of them
    tones: list[ToneEvent]  # with their true extent


def mono_call(call: CallAudio, profile: Profile, transcriber: Transcriber, direction: str = "inbound",
              vad: VadOptions = VadOptions(), music: MusicOptions = MusicOptions(),
              options: MonoRoleOptions = MonoRoleOptions(),
              turns: TurnSplitOptions = TurnSplitOptions(),
              ringing: list[tuple[float, float]] | None = None) -> MonoResult:
    """Transcripts of both sides of a call recorded as the one channel `call.channels["agent"]`;
    `ringing`: spans before the pick-up, where nobody is on the call."""
    mix = call.channels["agent"]
    # The busy tone after a hang-up is in the mix; it is the caller's line that carries it.
    detector = ToneDetector("caller")
    confirmed = detector.feed(mix)
    tones = detector.flush()
    masked = [(t.start, call.duration + 1.0) for t in tones] + list(ringing or [])
    mono_vad = replace(vad, stop_silence_s=min(vad.stop_silence_s, options.stop_silence_s))
    utts, music_utts = split_music(segment(mix, "agent", mono_vad, masked=masked), music)
    heard = sorted(transcriber.transcribe(split_turns(utts, turns)), key=lambda t: t.start)
    features = ([voice_features(mix[int(t.start * SAMPLE_RATE):int(t.end * SAMPLE_RATE)], options.voices)
                 if t.speech else None for t in heard] if options.voices.enabled else None)
    decided = relabel(heard, decide_roles(heard, profile, direction, options, features,
                                          pause_of=mix_pauses(mix, options.pauses)))
    music_dropped = [dropped(u, MUSIC) for u in music_utts]
    return MonoResult(sorted(decided + music_dropped, key=lambda t: (t.start, t.role)), confirmed, tones)


def mix_pauses(mix: np.ndarray, options: PauseOptions = PauseOptions()) -> PauseOf:
    """The pause between two lines, measured on `mix` (the call's one channel, from call time 0)."""
    def mix_over(start: float, end: float) -> np.ndarray:
        return mix[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]

    def pause(a: Transcript, b: Transcript) -> float | None:
        return junction_pause(mix_over, (a.start, a.end), (b.start, b.end), options)
    return pause
