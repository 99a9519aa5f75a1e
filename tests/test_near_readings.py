"""The recogniser's near readings (its beam's next hypotheses) and what reads them.

On a noisy line the best reading can garble a rude phrase that the next reading holds whole
("已有完美完" / "你有完没完"); the forbidden rule searches them (tests/test_rules.py)."""
import dataclasses
import json

from monitor.audio.files import load_call
from monitor.events import Transcript, Utterance
from monitor.judge_input import JudgeInput
from monitor.phrasebook import load_profile
from monitor.text import normalize
from monitor.vad import segment
from tests.conftest import load_labels


def agent_utterances(corpus_dir, call: str) -> list[Utterance]:
    labels = load_labels(corpus_dir / f"{call}.json")
    return segment(load_call(corpus_dir / labels["audio"]).channels["agent"], "agent")


def test_near_readings_of_real_noisy_speech_are_other_words_within_the_margin(whisper_factory, corpus_dir):
    model = whisper_factory()
    utts = agent_utterances(corpus_dir, "dev-007")  # noisy 8 kHz, SNR 10 dB
    assert len(utts) >= 4
    heard = model.transcribe(utts)
    every = dataclasses.replace(model.opt, alternatives_margin=10.0)
    wide = model.__class__.__new__(model.__class__)
    wide.__dict__.update(model.__dict__, opt=every)
    heard_wide = wide.transcribe(utts)
    none = model.__class__.__new__(model.__class__)
    none.__dict__.update(model.__dict__, opt=dataclasses.replace(model.opt, alternatives_margin=0.0))
    heard_none = none.transcribe(utts)
    # the best reading does not depend on how many readings are kept
    assert [t.text for t in heard] == [t.text for t in heard_wide] == [t.text for t in heard_none]
    assert all(t.alternatives == () for t in heard_none)
    assert any(t.alternatives for t in heard_wide), "the beam gave no other reading at all"
    for t, w in zip(heard, heard_wide, strict=True):
        assert len(w.alternatives) <= model.opt.max_alternatives
        assert set(t.alternatives) <= set(w.alternatives)  # the margin only narrows them
        words = {normalize(t.text)}
        for a in w.alternatives:
            assert normalize(a) not in words, (t.text, w.alternatives)  # other words, not other commas
            words.add(normalize(a))


def test_a_polite_construction_excuses_the_phrase_it_holds():
    m = load_profile("zte").forbidden_matcher
    assert m.excused("这种情况也不是不可能，我们马上帮您排查。") == {"不可能"}
    assert m.excused("我不管多晚都会给您回电话。") == {"我不管"}
    assert m.excused("不可能，我们的设备没有问题。") == set()  # said, not excused
    assert m.excused("好的，我帮您查一下。") == set()


def test_near_readings_survive_the_report_for_rescoring():
    line = Transcript(role="agent", start=3.0, end=5.5, text="已有完美完", alternatives=("你有完没完",))
    plain = Transcript(role="caller", start=6.0, end=7.0, text="好的")
    ji = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=(), transcripts=[line, plain],
                    confirmed_tones=[], tones=[], events=[], duration=10.0)
    back = JudgeInput.from_dict(json.loads(json.dumps(ji.to_dict())))
    assert [t.alternatives for t in back.transcripts] == [("你有完没完",), ()]



def test_the_summary_counts_a_phrase_left_to_review_apart_from_the_violations():
    import io

    from monitor.pipeline import judged_report
    from monitor.report import print_summary
    from monitor.rules import RuleOptions

    lines = [Transcript("agent", 0.5, 2.5, "您好，中国联通，请问有什么可以帮您？"),
             Transcript("agent", 6.0, 9.0, "我是没法查,只是要多等两天,您放心。",
                        alternatives=("不是没法查,只是要多等两天,您放心。",)),
             Transcript("agent", 10.0, 12.0, "还有其他需要吗？没有的话，再见。")]
    ji = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=RuleOptions().rules, transcripts=lines,
                    confirmed_tones=[], tones=[], events=[], duration=14.0)
    report = judged_report("call.wav", load_profile("unicom"), ji)
    assert [v.rule for v in report.violations if v.rule.startswith("forbidden")] == ["forbidden_unsure"]
    out = io.StringIO()
    print_summary([report], [], out)
    assert "forbidden_unsure   1 to review in 1 call(s)" in out.getvalue()
