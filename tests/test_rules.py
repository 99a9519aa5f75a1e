"""Each rule on scripted calls: what an agent says, when, and how the call ends."""
from dataclasses import replace

import pytest

from monitor.events import CallEvent, ToneEvent
from monitor.labels import evidence
from monitor.phrasebook import load_profile
from monitor.pipeline import judge
from monitor.rules import RuleEngine, RuleOptions
from tests.scripted import agent, caller

ZTE = load_profile("zte")
JINGYI = load_profile("jingyi")
UNICOM = load_profile("unicom")


def run(profile, transcripts, duration=None, tones=None, events=(), roles=("agent", "caller"),
        options=RuleOptions()):
    """Judge a scripted call; by default the caller hangs up (busy tone) just after the last words."""
    last = max(t.end for t in transcripts)
    if tones is None:
        tones = (ToneEvent("caller", last + 0.5, last + 1.6, "busy_450"),)
    if duration is None:
        duration = last + 2.5
    return judge(profile, options, roles, sorted(transcripts, key=lambda t: t.start), list(tones),
                 list(events), duration)


def rules_of(engine):
    return sorted(v.rule for v in engine.violations)


def forbidden(engine):
    return [v for v in engine.violations if v.rule == "forbidden"]


def polite_call(*middle):
    """Greeting, a question, the middle turns given, then goodbye right after them."""
    t = max([5.0] + [m.end for m in middle]) + 1.0
    return [agent(0.5, 2.3, "您好，中兴通讯！"), caller(3.0, 5.0, "我想问一下这个设备多少钱。"),
            *middle, agent(t, t + 2.0, "感谢您的来电，再见！"), caller(t + 2.5, t + 4.0, "好的，再见。")]


def test_a_polite_call_where_the_caller_hangs_up_first_has_no_violations():
    assert rules_of(run(ZTE, polite_call(agent(6.0, 8.0, "好的，我帮您查一下。")))) == []


# -- greeting ------------------------------------------------------------------
def test_rude_opening_breaks_the_greeting():
    e = run(ZTE, [agent(0.4, 1.6, "喂，说吧。")] + polite_call()[1:])
    (v,) = e.violations
    assert v.rule == "greeting" and "喂" in v.evidence and v.start == 0.0


def test_opening_without_greeting_words_breaks_the_greeting():
    e = run(ZTE, [agent(0.4, 1.6, "嗯，你讲。")] + polite_call()[1:])
    assert rules_of(e) == ["greeting"]


def test_greeting_after_the_deadline_is_late():
    e = run(ZTE, [caller(3.0, 5.0, "喂？有人吗？"), agent(7.9, 12.3, "您好，中兴通讯，请问有什么可以帮您？"),
                  caller(13.0, 15.0, "我想问一下这个设备多少钱。"), agent(16.0, 18.0, "感谢您的来电，再见！")])
    (v,) = e.violations
    assert v.rule == "greeting" and "said nothing within 5 s" in v.evidence


def test_a_greeting_at_the_end_of_a_long_utterance_that_began_in_time_is_late():
    """A neighbour's sentence glued before the agent's greeting (field-style call): the utterance
    starts at 4.1 s, the greeting in it at about 7 s (6 s at the earliest)."""
    late = agent(4.05, 10.55, "您可以到手机营业厅直接办理。您好，警翼数码客服部，很高兴为您服务。")
    e = run(JINGYI, [caller(1.2, 3.2, "您好，听得到吗？"), late] + polite_call()[1:])
    (v,) = [v for v in e.violations if v.rule == "greeting"]
    assert "came at 6.0 s at the earliest, after the 5 s deadline" in v.evidence
    assert evidence(v.evidence) == "问候最早在 6.0 秒才说，超过了 5 秒的时限"  # the console's Chinese wording
    # the same greeting at the start of that utterance was in time
    in_time = agent(4.05, 10.55, "您好，警翼数码客服部，很高兴为您服务。您可以到手机营业厅直接办理。")
    assert "greeting" not in rules_of(run(JINGYI, [caller(1.2, 3.2, "您好，听得到吗？"), in_time] + polite_call()[1:]))


def test_greeting_rule_fires_at_its_deadline_not_at_call_end():
    engine = RuleEngine(ZTE)
    assert engine.tick(4.9) == []
    fired = engine.tick(5.01)
    assert [v.rule for v in fired] == ["greeting"]
    assert "said nothing" in fired[0].evidence


def test_garbled_greeting_with_company_name_still_counts():
    e = run(ZTE, [agent(0.6, 2.4, "以好中兴通讯。")] + polite_call()[1:])
    assert "greeting" not in rules_of(e)


@pytest.mark.parametrize("opening", ["美英好，这里是警翼数码客服部，请讲。", "十比好,也因数码客服部，很高兴为领域。",
                                     "嗯，美英好，这里是警翼数码客服部。", "美英好？这里是警翼数码客服部。"])
def test_a_hello_the_recogniser_garbled_before_the_company_name_is_the_greeting(opening):
    """Noisy 8 kHz field-style calls: 您好 heard as one or two other syllables and 好."""
    e = run(JINGYI, [agent(0.6, 3.4, opening)] + polite_call()[1:])
    assert [v for v in e.violations if v.rule.startswith("greeting")] == []


def test_a_garbled_hello_split_from_the_company_name_at_its_pause_is_the_greeting():
    e = run(JINGYI, [agent(0.6, 1.2, "美英好。"), agent(1.5, 3.4, "这里是警翼数码客服部，请讲。")] + polite_call()[1:])
    assert [v for v in e.violations if v.rule.startswith("greeting")] == []


@pytest.mark.parametrize("profile,opening", [
    (JINGYI, "美英好，请问有什么事？"),  # no company named: nothing says it is a greeting
    (JINGYI, "不好意思，警翼数码客服部。"),  # an apology, not 您好
    (JINGYI, "喂，你好，警翼数码客服部。"),  # rude first word
    (JINGYI, "友好的服务，警翼数码客服部。"),  # 好 inside a word, not a hello
    # words ending in 好, the company named inside a rude sentence (an outside tester's)
    (JINGYI, "那好，我不是客服部的，你打错了。"), (JINGYI, "太好，又是投诉，客服部烦死了。"),
    (JINGYI, "最好，你别再打客服部的电话了。"), (JINGYI, "算好，你找客服部干嘛？"),
    (ZTE, "算了好，你找中兴通讯干什么。"), (load_profile("broadband"), "最好，你去问家庭宽带营业厅吧。")])
def test_an_opening_that_only_looks_like_a_garbled_hello_is_no_greeting(profile, opening):
    e = run(profile, [agent(0.6, 3.4, opening)] + polite_call()[1:])
    assert "greeting" in rules_of(e)


def test_a_garbled_hello_alone_followed_by_other_words_is_no_greeting():
    e = run(JINGYI, [agent(0.6, 1.2, "美英好。"), agent(1.5, 3.4, "你找客服部干嘛？")] + polite_call()[1:])
    assert "greeting" in rules_of(e)


def test_outbound_calls_expect_the_outbound_greeting():
    calls = [agent(0.5, 3.0, "您好，请问是华为公司吗？我是中兴通讯小王。")] + polite_call()[1:]
    assert "greeting" not in rules_of(run(ZTE, calls, options=RuleOptions(direction="outbound")))


def test_noise_that_was_not_speech_does_not_count_as_the_first_words():
    e = run(ZTE, [agent(0.2, 0.6, "字幕由Amara.org社区提供", speech=False, why="known hallucination")] + polite_call())
    assert rules_of(e) == []


# -- forbidden -----------------------------------------------------------------
def test_forbidden_phrase_from_the_agent_is_reported_with_phrase_and_time():
    e = run(ZTE, polite_call(agent(5.9, 8.3, "不可能，我们的设备没有问题。")))
    (v,) = e.violations
    assert (v.rule, v.phrase, v.start, v.end, v.channel) == ("forbidden", "不可能", 5.9, 8.3, "agent")
    assert v.seed and "服务忌语" in v.seed


def test_the_same_words_from_the_caller_are_not_a_violation():
    e = run(ZTE, polite_call(caller(6.0, 9.0, "我不知道，你问我我问谁啊？")))
    assert rules_of(e) == []


def test_polite_look_alikes_are_not_violations():
    e = run(JINGYI, [agent(0.4, 3.4, "您好，警翼数码客服部。"), agent(5.5, 7.8, "不知道您现在方便说话吗？"),
                     agent(9.0, 11.0, "我知道了，我们马上就去做。"), agent(12.0, 14.0, "感谢您的来电，再见！")])
    assert rules_of(e) == []


def test_homophone_error_still_catches_the_phrase():
    e = run(UNICOM, [agent(0.8, 3.7, "您好，请问有什么可以帮您？"), agent(7.3, 8.9, "你有意见照领到去。"),
                     agent(10.0, 12.0, "好的，还有其他需要吗？没有的话，再见。")])
    assert [(v.rule, v.phrase) for v in e.violations] == [("forbidden", "有意见找领导去")]


def test_a_phrase_inside_a_long_merged_utterance_is_located_near_where_it_was_said():
    e = run(JINGYI, [agent(0.5, 3.0, "您好，警翼数码客服部。"), caller(3.5, 9.5, "你好，我们这边的设备出了点问题。"),
                     agent(10.0, 24.0, "请问您的设备型号是多少？好的我帮您查一下。这个型号的价格不知道。"),
                     agent(25.0, 27.0, "感谢您的来电，再见！")])
    (v,) = e.violations
    assert v.start > 17.0 and v.end == 24.0


def test_a_rude_phrase_the_best_reading_garbled_is_found_in_the_recognisers_near_reading():
    # field-style call, noisy 8 kHz: "你有完没完" came back with its last syllable lost ("已有完美");
    # the beam's next reading had it
    garbled = replace(agent(14.2, 16.7, "已有完美,同一个人提问了三点了。"),
                      alternatives=("有完没完,同一个人提问了三点了。", "你有完没完,同一个人提问了三点了。"))
    (v,) = forbidden(run(UNICOM, polite_call(garbled)))
    assert (v.rule, v.phrase, v.text) == ("forbidden", "你有完没完", "已有完美,同一个人提问了三点了。")
    assert "near reading" in v.evidence and "有完没完" in v.evidence
    assert evidence(v.evidence).startswith("坐席说了“")  # the console's Chinese wording knows it
    # the same line without its near readings raises nothing: the best reading alone is not rude
    assert forbidden(run(UNICOM, polite_call(replace(garbled, alternatives=())))) == []


def test_a_polite_construction_in_the_best_reading_is_not_undone_by_a_near_reading_that_garbles_it():
    # "也不是不可能" (denied) with a near reading "也不适不可能": the agent did not refuse
    line = replace(agent(6.0, 9.0, "这种情况也不是不可能,我们马上帮您排查。"),
                   alternatives=("这种情况也不适不可能,我们马上帮您排查。",))
    assert rules_of(run(ZTE, polite_call(line))) == []


def test_a_phrase_a_near_reading_holds_inside_a_polite_construction_is_left_to_review():
    # field-style calls, noisy lines: "不是没法查" heard "我是没法查", "您没法查到也没关系" heard
    # "你没法查到眼为关系"; the beam's next reading had the polite words
    for text, near in (("我是没法查,只是要多等两天,您放心。", "不是没法查,只是要多等两天,您放心。"),
                       ("你没法查到眼为关系,我这边帮您查。", "你没法查到也没关系,我这边帮您查。")):
        line = replace(agent(6.0, 9.0, text), alternatives=("这是没法查到的,只是要多等两天。", near))
        engine = run(UNICOM, polite_call(line))
        assert forbidden(engine) == [], text
        (review,) = [v for v in engine.violations if v.rule == "forbidden_unsure"]
        assert review.phrase == "没法查" and review.deduction == 0.0
        assert f"near reading “{near}” is polite" in review.evidence
        assert evidence(review.evidence) == f"坐席似乎说了“没法查”，但识别的另一读法“{near}”是礼貌说法，请人工核实"
        # without that near reading the words are the agent's refusal
        assert [v.phrase for v in forbidden(run(UNICOM, polite_call(replace(line, alternatives=()))))] == ["没法查"]


def test_a_rude_line_whose_near_readings_are_rude_or_garbled_stays_a_violation():
    line = replace(agent(6.0, 9.0, "没法查，你自己去营业厅问吧。"),
                   alternatives=("没法查，你自己去营业厅吧。", "没法查,你自己去应接厅问吧。"))
    assert [v.phrase for v in forbidden(run(UNICOM, polite_call(line)))] == ["没法查"]


def test_a_mixed_mono_line_left_to_review_for_its_words_says_how_sure_its_side_is():
    line = replace(agent(6.0, 9.0, "我是没法查,只是要多等两天,您放心。"), role_confidence=0.92,
                   alternatives=("不是没法查,只是要多等两天,您放心。",))
    (review,) = [v for v in run(UNICOM, polite_call(line)).violations if v.rule == "forbidden_unsure"]
    assert review.evidence.endswith("is polite; the agent's line at 0.92")
    assert evidence(review.evidence).startswith("混合录音中坐席（可能性 0.92）似乎说了“没法查”")


@pytest.mark.parametrize("profile,said,near", [
    # the same words with a comma less: the concessive 不知道你问谁都… is another sentence
    (JINGYI, "不知道，你问谁都没用。", "不知道你问谁都没用。"),
    (UNICOM, "没法查，你怎么问都一样。", "没法查你怎么问都一样。"),
    (ZTE, "不可能，你说什么也没用。", "不可能你说什么也没用。"),
    # homophones the beam writes either way: 又/有 (a 有没有 question), 你/您
    (UNICOM, "我又没办法，你冲我喊有什么用。", "我有没办法，你冲我喊有什么用。"),
    (JINGYI, "你不知道自己去查啊？", "您不知道自己去查啊？"),
])
def test_a_near_reading_that_is_the_same_hearing_written_otherwise_excuses_nothing(profile, said, near):
    """An outside tester's cases: a near reading that differs only in punctuation or homophones hears
    the same sounds; the construction it spells is no reason to doubt the words."""
    line = replace(agent(6.0, 9.0, said), alternatives=(near,))
    assert profile.forbidden_matcher.excused(near), near  # the premise: spelled so, it is polite
    assert [v.rule for v in forbidden(run(profile, polite_call(line)))] == ["forbidden"], said


def test_near_readings_of_the_callers_words_raise_nothing():
    line = replace(caller(6.0, 9.0, "已有完美,同一个人提问了三点了。"), alternatives=("你有完没完,同一个人提问了三点了。",))
    assert forbidden(run(UNICOM, polite_call(line))) == []


# -- closing -------------------------------------------------------------------
def test_ending_without_goodbye_breaks_the_closing():
    calls = polite_call()[:-2] + [agent(6.0, 7.7, "好的，就这样吧。"), caller(8.5, 10.0, "嗯，好的，拜拜。")]
    (v,) = run(ZTE, calls).violations
    assert v.rule == "closing" and v.start == 6.0


def test_unicom_also_expects_the_offer_of_more_help():
    calls = [agent(0.5, 3.0, "您好，请问有什么可以帮您？"), caller(3.5, 5.0, "我想问一下这个设备多少钱。"),
             agent(5.5, 8.0, "请问您的设备型号是多少？"), caller(8.5, 10.0, "型号是八一零零。"),
             agent(10.5, 12.5, "感谢您的来电，再见！")]
    assert rules_of(run(UNICOM, calls)) == ["closing_offer"]
    calls[-1] = agent(10.5, 14.0, "好的，还有其他需要吗？没有的话，再见。")
    assert rules_of(run(UNICOM, calls)) == []


# -- hangup --------------------------------------------------------------------
def test_busy_tone_on_the_caller_side_means_the_caller_hung_up_first():
    e = run(ZTE, polite_call())
    hangup = next(r for r in e.rules if r.name == "hangup")
    assert rules_of(e) == [] and "busy_450" in hangup.evidence


def test_recording_ending_while_the_caller_talks_means_the_agent_hung_up():
    calls = polite_call()[:-1] + [caller(9.0, 11.5, "那个，我还有一个问题想问一下")]
    (v,) = run(ZTE, calls, duration=11.53, tones=()).violations
    assert v.rule == "hangup" and v.start == 11.53 and "still talking" in v.evidence


def test_no_disconnect_tone_means_the_agent_hung_up():
    (v,) = run(ZTE, polite_call(), duration=12.0, tones=()).violations
    assert v.rule == "hangup" and "no disconnect tone" in v.evidence


def test_call_control_event_beats_the_audio_evidence():
    e = run(ZTE, polite_call(), tones=(), events=[CallEvent(t=10.5, type="hangup", by="caller")])
    assert rules_of(e) == []
    e = run(ZTE, polite_call(), events=[CallEvent(t=10.5, type="hangup", by="agent")])
    (v,) = e.violations
    assert v.rule == "hangup" and "call-control event" in v.evidence


def test_mono_recording_cannot_judge_caller_side_rules():
    engine = run(ZTE, [t for t in polite_call() if t.role == "agent"], tones=(), roles=("agent",))
    assert rules_of(engine) == [] and engine.not_judged == ["hangup", "hold"]


# -- hold ----------------------------------------------------------------------
def test_long_silence_without_asking_to_wait_is_a_hold_violation():
    calls = polite_call(caller(6.0, 8.0, "好的，谢谢。"), agent(21.0, 23.0, "对不起，让您久等了。"))
    (v,) = run(ZTE, calls).violations
    assert (v.rule, v.start, v.end) == ("hold", 8.0, 21.0)


def test_asking_first_and_thanking_after_makes_a_proper_hold():
    calls = polite_call(agent(6.0, 9.0, "请您稍等一下，我帮您查询。"), agent(22.0, 24.0, "对不起，让您久等了。"))
    assert rules_of(run(ZTE, calls)) == []


@pytest.mark.parametrize("words", ["您在网上营业厅办理便可。", "好的，这样便可以了。"])
def test_words_that_only_sound_like_a_hold_ask_do_not_excuse_a_hold(words):
    """便可 reads pian ke like 片刻 ("a moment"), which is why 片刻 alone is no hold ask."""
    calls = polite_call(agent(6.0, 8.0, words), agent(23.0, 25.0, "对不起，让您久等了。"))
    assert rules_of(run(ZTE, calls)) == ["hold"]


def test_coming_back_without_thanks_is_a_minor_hold_return_finding():
    calls = polite_call(agent(6.0, 9.0, "请您稍等一下，我帮您查询。"), agent(22.0, 24.0, "查到了，是网络问题。"))
    (v,) = run(ZTE, calls).violations
    assert v.rule == "hold_return" and v.severity == "minor"


def test_short_pauses_are_not_holds():
    calls = polite_call(caller(6.0, 8.0, "好的"), agent(15.0, 17.0, "好的，我帮您查一下。"))
    assert rules_of(run(ZTE, calls)) == []


def test_unreadable_speech_still_breaks_a_silence_but_a_noise_blip_does_not():
    talk = caller(10.0, 13.0, "???", speech=False, why="unlikely text")
    blip = caller(10.0, 10.4, "嗯", speech=False, why="no speech")
    base = polite_call(caller(6.0, 8.0, "好的"), agent(19.0, 21.0, "好的，我帮您查一下。"))
    assert rules_of(run(ZTE, base + [talk])) == []
    assert rules_of(run(ZTE, base + [blip])) == ["hold"]


def test_music_the_recogniser_is_sure_holds_no_speech_does_not_end_a_holds_silence():
    base = polite_call(caller(6.0, 8.0, "好的"), agent(19.0, 21.0, "好的，我帮您查一下。"))
    music = replace(agent(10.0, 14.9, "这些人都不在乎。", speech=False, why="no speech"), no_speech_prob=0.83)
    unsure = replace(music, no_speech_prob=0.62)  # perhaps someone talking: the silence ends
    assert rules_of(run(ZTE, base + [music])) == ["hold"]
    assert rules_of(run(ZTE, base + [unsure])) == []


def test_silence_after_the_caller_hung_up_is_not_a_hold():
    calls = polite_call()
    assert rules_of(run(ZTE, calls, duration=60.0, tones=(ToneEvent("caller", 10.5, 11.6, "busy_450"),))) == []


def test_rule_options_reject_unknown_rules():
    with pytest.raises(ValueError):
        RuleOptions(rules=("greeting", "smile"))
