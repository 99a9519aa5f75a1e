"""What a QA lead writes in a phrasebook is what the monitor checks.

The company name in [greeting], every [scoring] value, unknown keys, shared lists
kept in one include file, and thanks after a hold heard through recogniser errors.
"""
import re
import tomllib
from pathlib import Path

import pytest

from monitor import cli
from monitor.events import ToneEvent
from monitor.phrasebook import PROFILE_DIR, PhrasebookError, list_profiles, load_profile
from monitor.pipeline import judge
from monitor.rules import RuleOptions
from tests.scripted import agent, caller

ZTE = load_profile("zte")
JINGYI = load_profile("jingyi")
UNICOM = load_profile("unicom")
ZTE_TEXT = (PROFILE_DIR / "zte.toml").read_text(encoding="utf-8")


def run(profile, transcripts, options=RuleOptions()):
    """Judge a scripted call in which the caller hangs up (busy tone) just after the last words."""
    last = max(t.end for t in transcripts)
    tones = [ToneEvent("caller", last + 0.5, last + 1.6, "busy_450")]
    return judge(profile, options, ("agent", "caller"), sorted(transcripts, key=lambda t: t.start), tones, [],
                 last + 2.5)


def rules_of(engine):
    return sorted(v.rule for v in engine.violations)


def call_after(opening, *middle):
    """The agent's opening words, a question, the middle turns, then goodbye."""
    t = max([5.0] + [m.end for m in middle]) + 1.0
    return [*opening, caller(3.0, 5.0, "我想问一下这个设备多少钱。"), *middle,
            agent(t, t + 2.0, "感谢您的来电，再见！"), caller(t + 2.5, t + 4.0, "好的，再见。")]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def check(capsys, *files):
    code = cli.main(["phrasebook", "check", *map(str, files)])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the company name in the greeting -----------------------------------------
def test_a_greeting_without_the_company_name_raises_a_minor_greeting_company_finding():
    e = run(ZTE, call_after([agent(0.5, 2.5, "您好，请问有什么可以帮您？")]))
    (v,) = e.violations
    assert (v.rule, v.severity, v.deduction) == ("greeting_company", "minor", ZTE.greeting.deduction / 2)
    assert "中兴通讯" in v.evidence


def test_a_greeting_that_names_the_company_passes():
    assert rules_of(run(ZTE, call_after([agent(0.5, 2.4, "您好，中兴通讯！")]))) == []
    assert rules_of(run(JINGYI, call_after([agent(0.5, 2.4, "您好，警翼数码客服部。")]))) == []


def test_the_company_name_is_heard_through_homophones_and_split_utterances():
    assert rules_of(run(ZTE, call_after([agent(0.5, 2.4, "你好，中心通讯。")]))) == []
    assert rules_of(run(ZTE, call_after([agent(0.4, 1.0, "您好。"), agent(1.3, 2.6, "中兴通讯。")]))) == []


def test_a_missing_or_rude_greeting_is_the_greeting_violation_only():
    assert rules_of(run(ZTE, call_after([agent(0.4, 1.6, "喂，说吧。")]))) == ["greeting"]
    assert rules_of(run(ZTE, call_after([agent(0.4, 1.6, "嗯，你讲。")]))) == ["greeting"]
    late = [caller(3.0, 5.0, "喂？有人吗？"), agent(7.9, 9.0, "请问有什么事？"), agent(10.0, 12.0, "感谢您的来电，再见！")]
    assert rules_of(run(ZTE, late)) == ["greeting"]


def test_a_profile_without_a_company_name_does_not_ask_for_one():
    calls = call_after([agent(0.5, 2.5, "您好，请问有什么可以帮您？")])
    calls[-2] = agent(calls[-2].start, calls[-2].end, "还有其他需要吗？没有的话，再见。")
    assert not UNICOM.greeting_company and rules_of(run(UNICOM, calls)) == []


# -- [scoring] -----------------------------------------------------------------
def test_every_scoring_value_sets_the_deduction_of_its_rule(tmp_path):
    text = ZTE_TEXT.replace("greeting = 10\nclosing = 10\nhangup = 10\nhold = 10",
                            "greeting = 6\nclosing = 7\nhangup = 3\nhold = 4\nforbidden = 20")
    text = text.replace('[forbidden_defaults]\nseed = "000 §8 服务忌语"\nseverity = "major"\ndeduction = 15\n',
                        '[forbidden_defaults]\nseed = "000 §8 服务忌语"\nseverity = "major"\n')
    p = load_profile(write(tmp_path, "strict.toml", text))
    assert [s.deduction for s in (p.greeting, p.closing, p.hangup, p.hold, p.forbidden_defaults)] == [6, 7, 3, 4, 20]
    assert {e.deduction for e in p.forbidden} == {20}
    calls = [agent(0.4, 1.6, "嗯，你讲。"), caller(2.0, 4.0, "我想问一下。"), agent(4.5, 6.0, "不可能。"),
             caller(19.0, 20.0, "喂？"), agent(21.0, 23.0, "好的，就这样吧。")]
    found = {v.rule: v.deduction for v in judge(p, RuleOptions(), ("agent", "caller"), calls, [], [], 24.0).violations}
    assert found == {"greeting": 6, "forbidden": 20, "hold": 4, "closing": 7, "hangup": 3}


def test_a_rules_own_deduction_beats_the_scoring_table(tmp_path):
    text = ZTE_TEXT.replace('window_s = 20.0\nseverity = "minor"', 'window_s = 20.0\nseverity = "minor"\ndeduction = 2')
    assert load_profile(write(tmp_path, "p.toml", text)).closing.deduction == 2


# -- unknown keys and the check command ---------------------------------------
@pytest.mark.parametrize("change, needle, message", [
    (lambda t: t.replace("hold = 10", "hold = 10\nsmile = 5"), "smile = 5", "scoring.smile: unknown field"),
    (lambda t: t.replace("deadline_s = 5.0", "deadline_s = 5.0\ncompanny = [\"中兴\"]"), "companny",
     "greeting.companny: unknown field"),
    (lambda t: t.replace("[hangup]", "[bonus]\npoints = 3\n\n[hangup]"), "[bonus]", "bonus: unknown table"),
    (lambda t: t.replace('phrase = "不可能"', 'phrase = "不可能"\ncolour = "red"'), "colour",
     "forbidden[20].colour: unknown field"),
])
def test_a_profile_with_an_unknown_key_is_refused_with_its_file_and_line(tmp_path, change, needle, message):
    path = write(tmp_path, "mine.toml", change(ZTE_TEXT))
    with pytest.raises(PhrasebookError) as exc:
        load_profile(path)
    assert str(exc.value) == f"mine.toml:{line_of(path, needle)}: {message}"


def test_phrasebook_check_lists_every_error_not_only_the_first(tmp_path, capsys):
    text = (ZTE_TEXT.replace("hold = 10", "hold = 10\nsmile = 5")
            .replace("deadline_s = 5.0", 'deadline_s = "soon"')
            .replace('phrase = "我没空"', "phrase = 42"))
    path = write(tmp_path, "mine.toml", text)
    code, _, err = check(capsys, path)
    assert code == 1
    assert err.splitlines() == [
        f"monitor: error: mine.toml:{line_of(path, 'smile')}: scoring.smile: unknown field",
        f"monitor: error: mine.toml:{line_of(path, 'soon')}: greeting.deadline_s: must be a number",
        f"monitor: error: mine.toml:{line_of(path, 'phrase = 42')}: forbidden[4].phrase: must be a non-empty string",
    ]
    with pytest.raises(PhrasebookError, match=r"and 2 more errors"):
        load_profile(path)


def test_phrasebook_check_warns_about_one_character_phrases(tmp_path, capsys):
    text = ZTE_TEXT.replace("[hold]\n", '[hold]\nask = ["等"]\n').replace('phrase = "我没空"', 'phrase = "滚"')
    path = write(tmp_path, "mine.toml", text)
    code, out, err = check(capsys, path)
    assert code == 0 and "mine.toml: ok" in out
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("monitor: warning: mine.toml:") for w in warnings)
    assert f"mine.toml:{line_of(path, 'ask = ')}: hold.ask: one-character phrase '等'" in warnings[0]
    assert "forbidden[4].phrase: one-character phrase '滚'" in warnings[1]


def test_the_shipped_phrasebooks_check_clean(capsys):
    code, out, err = check(capsys, *sorted(PROFILE_DIR.glob("*.toml")))
    assert code == 0 and err == "" and out.count(": ok") == 4
    assert "common.toml: valid shared include file" in out


# -- shared lists in one include file ------------------------------------------
SHARED_KEYS = {"greeting": ("inbound", "rude"), "closing": ("phrases",), "hold": ("ask", "thanks")}


def test_lists_shared_by_every_profile_live_in_the_common_file_only():
    for name in list_profiles():
        data = tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8"))
        assert data["include"] == ["common.toml"], name
        for table, keys in SHARED_KEYS.items():
            assert not set(keys) & set(data[table]), f"{name} copies {table} lists"
        p = load_profile(name)
        assert [x.text for x in p.hold_ask.patterns][0] == "请您稍等" and p.greeting_rude
    assert "common" not in list_profiles()
    with pytest.raises(PhrasebookError, match="shared include file, not a profile"):
        load_profile("common")


MINIMAL = """include = ["common.toml"]

[profile]
name = "acme"
seeds = ["acme-norms.txt"]

[greeting]
seed = "acme §1"
company = ["艾克美"]

[closing]
seed = "acme §2"

[hold]
seed = "acme §3"
ask = ["您先别挂"]

[hangup]
seed = "acme §4"

[[forbidden]]
phrase = "不归我管"
seed = "acme §5"
"""


def test_a_profile_elsewhere_includes_the_built_in_common_file_by_name(tmp_path):
    p = load_profile(write(tmp_path, "acme.toml", MINIMAL))
    asks = [x.text for x in p.hold_ask.patterns]
    assert asks[0] == "请您稍等" and asks[-1] == "您先别挂"  # included entries first, the profile's own after
    assert p.includes == (PROFILE_DIR / "common.toml",)
    assert rules_of(run(p, call_after([agent(0.5, 2.4, "您好，艾克美。")]))) == []


def test_an_error_in_an_included_file_names_that_file_and_line(tmp_path):
    shared = write(tmp_path, "shared.toml", '[greeting]\ninbound = ["您好"]\n\n[closing]\nphrases = ["再见"]\n\n'
                   '[hold]\nthanks = ["久等了"]\nask = ["请稍等", 7]\n')
    profile = write(tmp_path, "acme.toml", MINIMAL.replace('"common.toml"', '"shared.toml"'))
    with pytest.raises(PhrasebookError) as exc:
        load_profile(profile)
    assert str(exc.value) == f"shared.toml:{line_of(shared, 'ask')}: hold.ask: must be a list of non-empty strings"


def test_a_missing_or_circular_include_is_refused_at_the_include_line(tmp_path):
    path = write(tmp_path, "acme.toml", MINIMAL.replace('"common.toml"', '"nowhere.toml"'))
    with pytest.raises(PhrasebookError, match=r"^acme\.toml:1: include: no file 'nowhere\.toml'"):
        load_profile(path)
    write(tmp_path, "a.toml", 'include = ["b.toml"]\n')
    write(tmp_path, "b.toml", 'include = ["a.toml"]\n')
    path = write(tmp_path, "acme.toml", MINIMAL.replace('"common.toml"', '"a.toml"'))
    with pytest.raises(PhrasebookError, match="includes itself"):
        load_profile(path)


# -- thanks after a hold --------------------------------------------------------
ASK = agent(6.0, 9.0, "请您稍等一下，我帮您查询。")


@pytest.mark.parametrize("back", [
    # What the recogniser wrote after the hold on the three clean dev calls with one.
    [agent(24.0, 25.1, "变不稀。"), agent(25.5, 26.7, "让您久等了。")],   # dev-000
    [agent(24.0, 25.1, "对不起"), agent(25.4, 26.9, "将您就等了。")],     # dev-010
    [agent(24.0, 25.1, "对不起。"), agent(25.4, 26.7, "将您求等了。")],   # dev-020
    [agent(24.0, 26.5, "感谢您的耐心等待，查到了。")],
    [agent(24.0, 26.5, "谢谢您的等待。")],
])
def test_a_thanked_return_is_heard_through_split_and_misheard_words(back):
    assert rules_of(run(ZTE, call_after([agent(0.5, 2.4, "您好，中兴通讯！")], ASK, *back))) == []


def test_an_unthanked_return_is_a_minor_hold_return_finding():
    back = [agent(24.0, 25.0, "好的。"), agent(25.3, 27.0, "查到了，是网络问题。")]
    e = run(ZTE, call_after([agent(0.5, 2.4, "您好，中兴通讯！")], ASK, *back))
    (v,) = e.violations
    assert (v.rule, v.severity, v.start) == ("hold_return", "minor", 9.0)
    assert v.text.startswith("好的。 查到了，是网络问题。")


def test_thanks_long_after_coming_back_do_not_count_as_the_return():
    back = [agent(24.0, 26.0, "查到了，是网络问题。"), caller(27.0, 29.0, "好的。"), agent(36.0, 38.0, "让您久等了。")]
    e = run(ZTE, call_after([agent(0.5, 2.4, "您好，中兴通讯！")], ASK, *back))
    assert rules_of(e) == ["hold_return"]


def test_an_unthanked_return_at_the_very_end_of_the_call_is_still_judged():
    calls = [agent(0.5, 2.4, "您好，中兴通讯！"), caller(3.0, 5.0, "我想问一下。"), ASK,
             agent(24.0, 26.0, "查到了，再见。")]
    assert rules_of(run(ZTE, calls)) == ["hold_return"]


def test_the_return_window_is_data(tmp_path):
    text = ZTE_TEXT.replace("ask_lookback_s = 15.0", "ask_lookback_s = 15.0\nreturn_window_s = 20.0")
    p = load_profile(write(tmp_path, "p.toml", text))
    back = [agent(24.0, 26.0, "查到了，是网络问题。"), caller(27.0, 29.0, "好的。"), agent(36.0, 38.0, "让您久等了。")]
    assert p.hold_return_window_s == 20.0
    assert rules_of(run(p, call_after([agent(0.5, 2.4, "您好，中兴通讯！")], ASK, *back))) == []


def test_the_readme_documents_the_phrasebook_semantics():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.search(r"## Phrasebooks\n(.*?)\n## ", readme, re.S).group(1)
    for word in ("include", "greeting_company", "[scoring]", "return_window_s"):
        assert word in section


def test_you_have_no_end_is_caught_when_the_recogniser_drops_its_pronoun():
    """unicom's 你有完没完 (seed 004 §3.2.3): field-style line "你有完没完，同一个问题问了三遍了"
    heard "有完美丸，同一个文系论的张片了": the 你 is lost, the rest sounds the same."""
    unicom = load_profile("unicom")
    assert [m.name for m in unicom.forbidden_matcher.find("有完美丸，同一个文系论的张片了。")] == ["你有完没完"]
    assert [m.name for m in unicom.forbidden_matcher.find("你有完没完，我已经说过了。")] == ["你有完没完"]
    assert unicom.forbidden_matcher.find("这件事完了，没什么问题了。") == []


# -- a QA lead writing a profile of their own (found by an outside tester) ---------
def test_a_profile_saved_with_a_windows_bom_is_read_and_one_saved_as_gbk_is_told_to_be_utf8(tmp_path, capsys):
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + ZTE_TEXT.encode("utf-8"))
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes(ZTE_TEXT.encode("gb18030"))
    code, out, err = check(capsys, bom, gbk)
    assert code == 1 and "bom.toml: ok" in out
    first_chinese = next(i for i, line in enumerate(ZTE_TEXT.splitlines(), 1) if any(ord(c) > 127 for c in line))
    assert err.splitlines() == [f"monitor: error: gbk.toml:{first_chinese}: not UTF-8 text (saved as GBK/ANSI?): "
                                "save the file as UTF-8"]
    assert load_profile(bom).forbidden == ZTE.forbidden


@pytest.mark.parametrize("phrase,symbol", [("我不(管|理)", "|"), ("没.*办法", ".*"), ("^你.+吧$", "^")])
def test_a_phrase_written_as_a_pattern_is_refused_not_matched_without_its_symbols(tmp_path, capsys, phrase, symbol):
    """没.*办法 was matched as 没办法, 我不(管|理) as 我不管理: the symbols were dropped as punctuation."""
    path = write(tmp_path, "mine.toml", ZTE_TEXT.replace('phrase = "我没空"', f'phrase = "{phrase}"'))
    code, _, err = check(capsys, path)
    assert code == 1
    assert err.splitlines() == [f"monitor: error: mine.toml:{line_of(path, phrase)}: forbidden[4].phrase: "
                                f"{phrase!r}: phrases are words as said, not patterns ({symbol!r} is no operator "
                                "here); write each wording as a phrase of its own"]


def test_a_forbidden_phrase_listed_twice_in_other_spacing_or_script_is_a_duplicate(tmp_path, capsys):
    extra = "".join(f'\n[[forbidden]]\nphrase = "{p}"\nseed = "QA"\n' for p in ("我 也 没 办 法", "我\u3000没空", "與我無關"))
    path = write(tmp_path, "mine.toml", ZTE_TEXT + extra)
    code, _, err = check(capsys, path)
    assert code == 1
    assert [e.split(".phrase: ", 1)[-1] for e in err.splitlines()] == [
        "duplicate phrase '我 也 没 办 法' (the same as '我也没办法' when matched)",
        "duplicate phrase '我\\u3000没空' (the same as '我没空' when matched)",  # the full-width space shown
        "duplicate phrase '與我無關' (the same as '与我无关' when matched)"]


def test_a_misspelt_forbidden_entry_header_is_named_at_its_line_with_the_right_spelling(tmp_path, capsys):
    path = write(tmp_path, "mine.toml", ZTE_TEXT + '\n[[forbiden]]\nphrase = "你自己看吧"\nseed = "QA"\n')
    code, _, err = check(capsys, path)
    assert code == 1
    assert err.splitlines() == [f"monitor: error: mine.toml:{line_of(path, '[[forbiden]]')}: forbiden[0]: "
                                "unknown table; did you mean [[forbidden]]?"]


def test_phrasebook_list_names_a_broken_draft_and_still_lists_the_rest(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MONITOR_PROFILE_DIR", str(tmp_path))
    write(tmp_path, "acme.toml", ZTE_TEXT.replace('name = "zte"', 'name = "acme"'))
    (tmp_path / "draft.toml").write_bytes(ZTE_TEXT.replace("hold = 10", "hold = 10\nsmile = 5").encode("utf-8"))
    code = cli.main(["phrasebook", "list"])
    out = capsys.readouterr().out
    assert code == 1
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["acme", "broadband", "draft", "jingyi", "unicom", "zte"]
    assert "draft      (cannot be used: draft.toml:" in out and "scoring.smile: unknown field" in out


def test_a_one_character_phrase_is_warned_about_where_the_profile_is_used(tmp_path, capsys):
    path = write(tmp_path, "mine.toml", ZTE_TEXT.replace('phrase = "我没空"', 'phrase = "滚"'))
    cli._load_profile(str(path))
    assert "one-character phrase '滚'" in capsys.readouterr().err


def test_a_homophone_of_a_forbidden_phrase_is_reported_as_sounding_the_same_not_as_exact():
    """这种小事也照我 was reported as “完全一致” (exact) beside the phrase 这种小事也找我."""
    from monitor.labels import evidence

    found = {v.phrase: v for v in run(ZTE, call_after(
        [agent(0.0, 2.0, "您好，中兴通讯。")], agent(6.0, 8.0, "这种小事也照我。"),
        agent(9.0, 11.0, "我没空。"))).violations if v.rule == "forbidden"}
    assert found["这种小事也找我"].evidence == "agent said “这种小事也照我”: sounds the same"
    assert evidence(found["这种小事也找我"].evidence) == "坐席说了“这种小事也照我”（与忌语同音）"
    assert found["我没空"].evidence == "agent said “我没空”: exact"


def test_a_missing_goodbye_is_reported_with_the_goodbye_this_profile_asks_for(tmp_path):
    from monitor.labels import evidence

    path = write(tmp_path, "mine.toml", '[profile]\nname = "mine"\nseeds = ["QA"]\n[greeting]\nseed = "QA"\n'
                 'inbound = ["您好"]\n[closing]\nseed = "QA"\nphrases = ["感谢您的来电"]\n[hold]\nseed = "QA"\n'
                 'ask = ["请稍等"]\n[hangup]\nseed = "QA"\n[[forbidden]]\nphrase = "我没空"\nseed = "QA"\n')
    engine = run(load_profile(path), [agent(0.0, 2.0, "您好。"), caller(3.0, 5.0, "没事了。"),
                                      agent(6.0, 8.0, "好的，再见。")])
    closing = next(v for v in engine.violations if v.rule == "closing")
    assert closing.evidence == "no goodbye (感谢您的来电) in the agent's last words"
    assert evidence(closing.evidence) == "坐席最后的话里没有结束语（感谢您的来电）"


def test_a_forbidden_phrase_that_is_also_the_prescribed_goodbye_is_warned_about(tmp_path, capsys):
    path = write(tmp_path, "mine.toml", ZTE_TEXT.replace('phrase = "我没空"', 'phrase = "再见"'))
    code, out, err = check(capsys, path)
    assert code == 0 and "mine.toml: ok" in out
    line = line_of(path, 'phrase = "再见"')
    assert f"mine.toml:{line}: forbidden[4].phrase: '再见' is also in closing.phrases" in err
