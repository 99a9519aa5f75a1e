"""Mixed-mono calls: the pause between two lines is measured on the mix, not taken from the VAD's gap."""
import numpy as np
import pytest

from monitor.audio.files import load_call
from monitor.audio.levels import level_db
from monitor.events import SAMPLE_RATE as SR
from monitor.events import Transcript
from monitor.mono import mix_pauses
from monitor.phrasebook import load_profile
from monitor.roles import assign_roles
from monitor.vad import segment

PAD_S = 0.15  # the VAD's padding on each side of the words: its gap is the pause less 0.3 s


def trimmed(x: np.ndarray) -> np.ndarray:
    """The words of a VAD line, without its quiet pre-roll and tail."""
    hop = SR // 100
    n = len(x) // hop
    db = 10 * np.log10(np.mean(x[:n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - 30)
    return x[loud[0] * hop:(loud[-1] + 1) * hop]


@pytest.fixture(scope="module")
def words(samples_dir):
    """Real speech: the agent's and the caller's lines of samples/demo-zte.flac, their words only."""
    call = load_call(samples_dir / "demo-zte.flac")
    return {role: [trimmed(u.samples) for u in segment(x, role)] for role, x in call.channels.items()}


def two_lines(first: np.ndarray, second: np.ndarray, pause_s: float, second_db: float = 0.0,
              snr_db: float | None = None) -> tuple[np.ndarray, Transcript, Transcript]:
    """A mix of two lines `pause_s` apart, the second `second_db` louder (negative: softer), over noise
    `snr_db` below the first line; and the two lines as the VAD hands them on (padded)."""
    second = second * 10 ** ((level_db(first) + second_db - level_db(second)) / 20)
    lead = int(0.5 * SR)
    mix = np.zeros(lead + len(first) + int(pause_s * SR) + len(second) + lead, np.float32)
    mix[lead:lead + len(first)] = first
    b0 = lead + len(first) + int(pause_s * SR)
    mix[b0:b0 + len(second)] = second
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(len(mix)).astype(np.float32)
    level = level_db(first) - (snr_db if snr_db is not None else 70.0)
    mix += noise * 10 ** ((level - level_db(noise)) / 20)
    a = Transcript("agent", lead / SR - PAD_S, (lead + len(first)) / SR + PAD_S, "")
    b = Transcript("agent", b0 / SR - PAD_S, (b0 + len(second)) / SR + PAD_S, "")
    return mix, a, b


@pytest.mark.parametrize("pause_s", [0.25, 0.45, 0.8])
def test_the_pause_is_measured_where_the_vads_padding_hides_it(words, pause_s):
    mix, a, b = two_lines(words["agent"][1], words["caller"][1], pause_s)
    assert b.start - a.end == pytest.approx(pause_s - 2 * PAD_S, abs=0.01)  # what the VAD's gap says
    assert mix_pauses(mix)(a, b) == pytest.approx(pause_s, abs=0.06)


def test_a_quieter_second_voice_and_a_noisy_line_keep_their_pauses(words):
    mix, a, b = two_lines(words["agent"][2], words["caller"][2], 0.25, second_db=-12)
    assert mix_pauses(mix)(a, b) == pytest.approx(0.25, abs=0.06)
    mix, a, b = two_lines(words["agent"][2], words["caller"][2], 0.8, second_db=-12)
    assert mix_pauses(mix)(a, b) == pytest.approx(0.8, abs=0.08)
    mix, a, b = two_lines(words["agent"][2], words["caller"][2], 0.8, snr_db=20)
    assert mix_pauses(mix)(a, b) == pytest.approx(0.8, abs=0.12)
    mix, a, b = two_lines(words["agent"][2], words["caller"][2], 0.25, snr_db=20)
    assert mix_pauses(mix)(a, b) < 0.4  # a comma's pause, not a turn


def test_a_line_too_short_to_have_a_level_gives_no_pause(words):
    mix, a, b = two_lines(words["agent"][1], words["caller"][1], 0.5)
    blip = Transcript("agent", b.start, b.start + 0.03, "")
    assert mix_pauses(mix)(a, blip) is None


def test_a_commas_pause_keeps_the_speaker_where_the_vads_gaps_are_all_alike():
    """"今天我没空。| 改天再说。": the VAD's gaps are all 0.2 s; measured on the mix, the turns
    around the agent's line are 0.7 s and the pause inside it 0.2 s, so both its pieces are the
    agent's, more surely than from the VAD's gaps."""
    zte = load_profile("zte")

    def line(start: float, end: float, text: str) -> Transcript:
        return Transcript("agent", start, end, text)

    lines = [line(0.0, 2.0, "您好，中兴通讯。"), line(2.2, 4.5, "我想问一下这个设备多少钱。"),
             line(4.7, 6.0, "今天我没空。"), line(6.2, 7.4, "改天再说。"), line(7.6, 10.0, "请问这个故障什么时候能修好？")]
    measured = {(2.0, 2.2): 0.7, (4.5, 4.7): 0.7, (6.0, 6.2): 0.2, (7.4, 7.6): 0.7}
    by_vad = assign_roles(lines, zte)
    by_mix = assign_roles(lines, zte, pause_of=lambda a, b: measured[(a.end, b.start)])
    assert [d.role for d in by_mix] == ["agent", "caller", "agent", "agent", "caller"]
    assert min(by_mix[2].confidence, by_mix[3].confidence) >= 0.8
    assert max(by_vad[2].confidence, by_vad[3].confidence) < 0.7  # the VAD's gaps alone leave it open
