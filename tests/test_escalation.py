"""Escalations: what the caller says that the supervisor should know about at once.

A caller who threatens to complain (投诉, 12315, 工信部 …), asks for a supervisor or
keeps repeating the same complaint raises a warning with severity "escalation" that
never changes the agent's score. The agent who does not answer a complaint with the
prescribed apology (seeds 003, 004; 002) gets a minor "complaint_answer" finding.
"""
import json
import re
from pathlib import Path

import pytest

from monitor import cli
from monitor.events import ToneEvent
from monitor.phrasebook import PROFILE_DIR, PhrasebookError, load_profile
from monitor.pipeline import judge, score_call
from monitor.rules import RuleEngine, RuleOptions
from monitor.scoring import score
from tests.scripted import agent, caller

ZTE, UNICOM, JINGYI = load_profile("zte"), load_profile("unicom"), load_profile("jingyi")
WARNINGS = ("escalation_complaint", "escalation_supervisor", "escalation_repeat")


def run(profile, transcripts):
    """Judge a scripted call in which the caller hangs up (busy tone) just after the last words."""
    last = max(t.end for t in transcripts)
    tones = [ToneEvent("caller", last + 0.5, last + 1.6, "busy_450")]
    return judge(profile, RuleOptions(), ("agent", "caller"), sorted(transcripts, key=lambda t: t.start), tones, [],
                 last + 2.5)


def call(profile, *middle):
    """A proper greeting, the middle turns given, then goodbye (and the offer of help) after them."""
    opening = {"zte": "您好，中兴通讯！", "jingyi": "您好，警翼数码客服部。"}.get(profile.name, "您好，请问有什么可以帮您？")
    t = max([3.0] + [m.end for m in middle]) + 1.0
    return run(profile, [agent(0.5, 2.4, opening), *middle,
                         agent(t, t + 3.0, "还有其他需要吗？感谢您的来电，再见！"), caller(t + 3.5, t + 5.0, "好的，再见。")])


def found(engine, rule=None):
    return [v for v in engine.violations if rule is None or v.rule == rule]


def warned(engine):
    return [(v.rule, v.phrase) for v in engine.violations if v.rule in WARNINGS]


# -- threats to complain --------------------------------------------------------
def test_a_caller_threatening_to_complain_warns_the_supervisor_without_touching_the_score():
    e = call(ZTE, caller(3.0, 6.0, "你们这都修了三次了，我要投诉你们！"), agent(6.5, 9.0, "好的，我帮您查一下。"))
    (v,) = found(e)
    assert (v.rule, v.severity, v.deduction, v.channel, v.phrase) == (
        "escalation_complaint", "escalation", 0, "caller", "投诉")
    assert (v.start, v.end) == (3.0, 6.0) and "投诉" in v.text and v.seed.startswith("000 §7.1")
    assert score(e.violations) == 100


@pytest.mark.parametrize("said, phrase", [
    ("再不给我修好，我就打12315。", "12315"),
    ("我去工信部告你们。", "工信部"),
    ("我要去消协反映。", "消协"),
    ("我要找媒体曝光你们这种公司。", "找媒体"),
    ("我已经找律师了。", "找律师"),
    ("我要头诉你们。", "投诉"),  # the recogniser's homophone for 投诉
])
def test_every_escalation_tier_is_heard_in_the_callers_words(said, phrase):
    e = call(ZTE, caller(3.0, 6.0, said), agent(6.5, 9.0, "好的，我帮您查一下。"))
    assert ("escalation_complaint", phrase) in warned(e)


@pytest.mark.parametrize("said", [
    "我不是要投诉，就是想问问进度。",
    "不用投诉了，修好就行。",
    "我也不想投诉你们。",
    "我们领导让我问一下这个设备多少钱。",  # the caller's own boss
    "这个摄像头晚上曝光不足。",  # camera exposure, not the media
    "我是律师事务所的，想问一下发票。",
    "我的电话是13812315678。",  # a phone number read out, not the 12315 hotline
])
def test_denials_and_look_alikes_do_not_escalate(said):
    e = call(JINGYI, caller(3.0, 6.0, said), agent(6.5, 9.0, "好的，我帮您查一下。"))
    assert warned(e) == []


def test_the_agent_naming_the_complaint_line_is_not_a_caller_escalation():
    e = call(ZTE, caller(3.0, 5.0, "这个问题怎么反映？"), agent(5.5, 9.0, "您可以拨打12315或者我们的投诉电话。"))
    assert warned(e) == []


def test_a_threat_warns_once_but_a_higher_tier_warns_again():
    e = call(ZTE, caller(3.0, 5.0, "我要投诉。"), agent(5.5, 7.0, "您先别急。"), caller(7.5, 9.0, "我就是要投诉！"),
             agent(9.5, 11.0, "我帮您看一下。"), caller(11.5, 13.0, "我还要去工信部投诉！"))
    assert warned(e) == [("escalation_complaint", "投诉"), ("escalation_complaint", "工信部")]


# -- asking for a supervisor ----------------------------------------------------
@pytest.mark.parametrize("said", ["把你们领导叫来。", "我要找你们负责人。", "你给我换个人来处理。"])
def test_asking_for_a_supervisor_is_its_own_escalation(said):
    e = call(ZTE, caller(3.0, 5.0, said), agent(5.5, 8.0, "好的，我帮您查一下。"))
    (v,) = found(e)
    assert (v.rule, v.severity, v.deduction, v.channel) == ("escalation_supervisor", "escalation", 0, "caller")
    assert v.seed.startswith("001 1.2")


def test_not_wanting_a_supervisor_is_no_escalation():
    e = call(ZTE, caller(3.0, 5.0, "不用找你们领导，你帮我查一下就行。"), agent(5.5, 8.0, "好的。"))
    assert warned(e) == []


# -- the same complaint again and again -----------------------------------------
def test_the_same_complaint_three_times_is_an_escalation_through_recogniser_errors():
    e = call(ZTE, caller(3.0, 6.0, "你好，网络一直断。"), agent(6.5, 8.0, "请问您的设备型号是多少？"),
             caller(8.5, 11.0, "我都说了，网络一极断。"), agent(11.5, 13.0, "您重启一下试试。"),
             caller(13.5, 16.0, "网络一直在断啊！"), agent(16.5, 18.0, "好的，我帮您登记。"))
    (v,) = found(e)
    assert (v.rule, v.severity, v.deduction, v.channel) == ("escalation_repeat", "escalation", 0, "caller")
    assert (v.start, v.end) == (3.0, 16.0) and "3 times (at 3.0, 8.5, 13.5 s)" in v.evidence


def test_saying_it_twice_is_not_yet_an_escalation_and_a_fourth_time_is_not_a_second_one():
    twice = [caller(3.0, 6.0, "网络一直断。"), agent(6.5, 8.0, "请问型号是多少？"), caller(8.5, 11.0, "网络一直断。")]
    assert warned(call(ZTE, *twice)) == []
    more = twice + [caller(11.5, 13.0, "网络一直断。"), caller(13.5, 15.0, "网络一直断！")]
    assert [v.rule for v in found(call(ZTE, *more))] == ["escalation_repeat"]


def test_different_questions_or_a_repeated_opener_or_number_are_not_the_same_complaint():
    questions = [caller(3.0, 5.0, "我想问一下，这个设备多少钱？"), caller(6.0, 8.0, "我想问一下，这个故障什么时候能修好？"),
                 caller(9.0, 11.0, "我想问一下，上门要收费吗？")]
    number = [caller(3.0, 5.0, "型号是八一零零。"), caller(6.0, 8.0, "型号是8100。"), caller(9.0, 11.0, "型号是八一零零。")]
    line = [caller(3.0, 5.0, "喂，听得到吗？"), caller(6.0, 8.0, "喂喂，听得见吗？"), caller(9.0, 11.0, "喂，听得到吗？")]
    for turns in (questions, number, line):
        assert warned(call(ZTE, *turns)) == [], turns


def test_the_repeat_settings_are_data(tmp_path):
    text = (PROFILE_DIR / "zte.toml").read_text(encoding="utf-8").replace("times = 3", "times = 2")
    path = tmp_path / "twice.toml"
    path.write_text(text, encoding="utf-8")
    p = load_profile(path)
    e = call(p, caller(3.0, 6.0, "网络一直断。"), agent(6.5, 8.0, "请问型号是多少？"), caller(8.5, 11.0, "网络一直断。"))
    assert [v.rule for v in found(e)] == ["escalation_repeat"]


# -- the agent's answer to a complaint ---------------------------------------------
COMPLAINT = caller(3.0, 6.0, "你们的宽带天天断，我要投诉！")


@pytest.mark.parametrize("profile, answer", [
    (UNICOM, [agent(6.5, 9.0, "非常抱歉给您带来不便，我马上帮您处理。")]),
    (UNICOM, [agent(6.5, 7.5, "好的。"), agent(8.0, 10.0, "对不起，我这边给您登记。")]),
    (JINGYI, [agent(6.5, 11.0, "先生，很抱歉此时给您带来了困扰，我们会尽快调查解决。")]),  # 此事 misheard
    (JINGYI, [agent(6.5, 9.0, "谢谢您的支持，我们会努力跟进。")]),
])
def test_a_complaint_answered_with_the_prescribed_apology_is_no_finding(profile, answer):
    e = call(profile, COMPLAINT, *answer)
    assert [v.rule for v in found(e)] == ["escalation_complaint"]


def test_a_complaint_left_without_an_apology_is_a_minor_finding_for_the_agent():
    e = call(UNICOM, COMPLAINT, agent(6.5, 9.0, "那你要投诉就投诉吧。"))
    v = next(v for v in found(e) if v.rule == "complaint_answer")
    assert (v.severity, v.deduction, v.channel, v.start) == ("minor", UNICOM.escalations.answer.deduction / 2, "agent", 3.0)
    assert v.text.startswith("那你要投诉就投诉吧。") and "004 §2.3.1" in v.seed
    assert score(e.violations) == 100 - UNICOM.escalations.answer.deduction / 2


def test_what_an_unanswered_complaint_costs_is_set_in_scoring(tmp_path):
    text = (PROFILE_DIR / "unicom.toml").read_text(encoding="utf-8").replace("complaint_answer = 10", "complaint_answer = 6")
    path = tmp_path / "strict.toml"
    path.write_text(text, encoding="utf-8")
    e = call(load_profile(path), COMPLAINT, agent(6.5, 9.0, "那你要投诉就投诉吧。"))
    assert {v.rule: v.deduction for v in found(e)} == {"escalation_complaint": 0, "complaint_answer": 3}


def test_an_apology_long_after_the_complaint_is_not_its_answer():
    e = call(UNICOM, COMPLAINT, agent(6.5, 9.0, "请问您的地址是？"), caller(9.5, 12.0, "北京市朝阳区。"),
             agent(30.0, 32.0, "对不起，让您久等了。"))
    assert "complaint_answer" in [v.rule for v in found(e)]


def test_norms_that_prescribe_no_answer_do_not_judge_one():
    assert not ZTE.escalations.answer_phrases
    e = call(ZTE, COMPLAINT, agent(6.5, 9.0, "那你要投诉就投诉吧。"))
    assert [v.rule for v in found(e)] == ["escalation_complaint"]


# -- live ------------------------------------------------------------------------------
def test_live_the_warning_goes_out_as_soon_as_the_words_are_recognised_and_only_once():
    engine = RuleEngine(UNICOM)  # the live session's engine: default options hold the escalation rules
    words = caller(3.0, 6.0, "我要打12315投诉你们！")
    early = engine.on_partial(words)  # the recogniser's result, before the watermark passes
    assert sorted(v.phrase for v in early) == ["12315", "投诉"]
    assert engine.feed(words) == []  # the same words in timeline order: no second alert
    later = engine.tick(6.0 + UNICOM.escalations.answer_within_s + 0.1)  # no agent words at all
    assert "complaint_answer" in [v.rule for v in later]


def test_escalation_alerts_pass_the_hub_protocol():
    from monitor.hub.protocol import parse_alert_body

    body = {"call_id": "c1", "rule": "escalation_complaint", "start": 3.0, "end": 6.0, "emitted": 6.5,
            "text": "我要投诉", "evidence": "the caller threatens to complain", "phrase": "投诉",
            "severity": "escalation"}
    assert parse_alert_body("a1", body, desk="d1").severity == "escalation"


# -- the phrasebook ------------------------------------------------------------------
def test_an_unknown_key_in_an_escalation_table_is_refused_with_its_file_and_line(tmp_path):
    text = (PROFILE_DIR / "unicom.toml").read_text(encoding="utf-8").replace("within_s = 20.0", "within_s = 20.0\nwihtin = 3")
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith("wihtin"))
    with pytest.raises(PhrasebookError) as exc:
        load_profile(path)
    assert str(exc.value) == f"mine.toml:{line}: complaint_answer.wihtin: unknown field"


def test_every_shipped_profile_cites_a_seed_for_each_escalation():
    for name in ("zte", "unicom", "jingyi", "broadband"):
        e = load_profile(name).escalations
        assert all(re.match(r"00\d ", s.seed) for s in (e.complaint, e.supervisor, e.repeat)), name
        assert not e.answer_phrases or re.match(r"00\d ", e.answer.seed), name


def test_phrasebook_show_prints_the_escalations(capsys):
    assert cli.main(["phrasebook", "show", "jingyi"]) == 0
    out = capsys.readouterr().out
    assert "escalations" in out and "12315" in out and "找领导" in out
    assert "complaint answered within 20 s (minor, -5)" in out and "很抱歉此事给您带来了困扰" in out


def test_the_readme_names_the_escalation_rules():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.search(r"\n#+ Escalations\n(.*?)\n## ", readme, re.S).group(1)
    for rule in (*WARNINGS, "complaint_answer"):
        assert f"`{rule}`" in section


# -- real audio --------------------------------------------------------------------------
def test_dev_calls_whose_callers_never_complain_raise_no_escalation(corpus_dir, whisper_factory):
    # The callers ask questions, give a model number, repeat "你好，我们这边的设备出了点问题"
    # across calls, say "我不知道，你问我我问谁啊" and speak unrelated real recordings.
    manifest = [json.loads(line) for line in (corpus_dir / "manifest.jsonl").read_text().splitlines()]
    for m in (m for m in manifest if m["call_id"] in ("dev-000", "dev-005", "dev-010", "dev-017")):
        cid, audio = m["call_id"], corpus_dir / m["audio"]
        labels = json.loads((corpus_dir / m["labels"]).read_text(encoding="utf-8"))
        profile = load_profile(labels["profile"])
        report = score_call(audio, profile, whisper_factory(profile.hotwords))
        assert any(t.role == "caller" and t.speech for t in report.transcript), cid
        rules = [v.rule for v in report.violations]
        assert not set(rules) & {*WARNINGS, "complaint_answer"}, (cid, rules)
