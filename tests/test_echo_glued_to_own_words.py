"""Line echo the VAD glues to a side's own words on a noisy line: the words are kept, the echo cut."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from monitor.asr.scripted import Line, ScriptedTranscriber
from monitor.audio.files import load_call
from monitor.events import SAMPLE_RATE as SR
from monitor.phrasebook import load_profile
from monitor.pipeline import score_call


def test_the_agents_rude_words_stay_when_the_callers_echo_follows_them_in_one_utterance(corpus_dir, tmp_path):
    """dev-002 (noisy 8 kHz) with line echo both ways, 80 ms late (caller -> agent -22 dB, agent ->
    caller -26 dB): the agent's 你有意见找领导去 and the echo of the caller's next 5 s make one
    utterance that lags the caller's channel through most of its length. It used to be dropped whole
    as echo, and the forbidden phrase with it."""
    labels = json.loads((corpus_dir / "dev-002.json").read_text())
    call = load_call(corpus_dir / labels["audio"])
    agent, caller = call.channels["agent"], call.channels["caller"]
    d = int(0.08 * SR)
    echoed = np.stack([agent + np.r_[np.zeros(d, np.float32), caller[:-d]] * 10 ** (-22 / 20),
                       caller + np.r_[np.zeros(d, np.float32), agent[:-d]] * 10 ** (-26 / 20)], axis=1)
    sf.write(tmp_path / "call.flac", echoed, SR)
    lines = [Line(u["channel"], u["start"], u["end"], u["text"]) for u in labels["utterances"]]
    report = score_call(tmp_path / "call.flac", load_profile(labels["profile"]), ScriptedTranscriber(lines)).to_dict()
    (rude,) = [v for v in labels["violations"] if v["rule"] == "forbidden"]
    assert [(v["phrase"], round(v["start"])) for v in report["violations"] if v["rule"] == "forbidden"] == \
        [(rude["phrase"], round(rude["start"]))]
    cut = [t for t in report["not_their_words"] if t["channel"] == "agent" and t["start"] >= rude["end"] - 0.5
           and t["start"] < rude["end"] + 1.0]
    assert cut and "after this side's words" in cut[0]["why"]
