"""The phrase matcher hears through ASR homophone errors but not through meaning changes."""
import pytest

from monitor.matcher import Pattern, PhraseMatcher


def matcher(*phrases, exclude=(), lenient=False):
    return PhraseMatcher([Pattern(p, p, exclude=exclude) for p in phrases], lenient=lenient)


@pytest.mark.parametrize("heard, phrase", [
    ("您好，中心通讯！", "中兴通讯"),            # in / ing
    ("你有意见照领导庆", "有意见找领导去"),        # same pinyin + one wrong syllable in a long phrase
    ("这种小事也照我，你们自己处理一下。", "这种小事也找我"),
    ("今天我没空，改天再说", "我没空"),
    ("这个故障以我无关", "与我无关"),              # yi / yu
    ("请您收等一下，我帮您查询。", "请您稍等"),       # shao / shou
    ("設備就這樣，我也沒辦法。", "我也没办法"),     # traditional characters from Whisper
])
def test_homophone_errors_still_match(heard, phrase):
    found = matcher(phrase).find(heard)
    assert [m.name for m in found] == [phrase]


@pytest.mark.parametrize("heard, phrase", [
    ("我知道了，我们马上就去做。", "我不知道"),     # the negation is missing
    ("这不是小问题，我们一定重视。", "小问题不用管它"),
    ("我们不管多晚都会处理", "我不管"),
    ("您放心，这件事交给我做吧。", "这事你不懂"),
    ("可能需要等一下", "不可能"),
])
def test_polite_or_different_words_do_not_match(heard, phrase):
    assert matcher(phrase).find(heard) == []


def test_an_exclusion_does_not_reach_across_punctuation():
    m = matcher("不知道", exclude=("不知道你",))
    assert [x.matched for x in m.find("这个问题我真不知道，你问别人吧。")] == ["不知道"]
    assert m.find("不知道你现在方便吗？") == []


def test_long_phrases_tolerate_two_wrong_syllables():
    assert matcher("怎么连这点小事他们都做不好").find("怎么连知点想是他们都做不好")


def test_exclusion_drops_a_polite_question_but_not_a_blunt_answer():
    m = matcher("不知道", exclude=("不知道您", "不知道你"))
    assert m.find("不知道您现在方便说话吗？") == []
    assert [x.matched for x in m.find("这个型号的价格不知道。")] == ["不知道"]
    assert [x.matched for x in m.find("不知道您方便吗？这个我真不知道。")] == ["不知道"]


def test_match_reports_position_and_cost():
    (m,) = matcher("中兴通讯").find("您好，中心通讯")
    assert (m.start, m.end) == (2, 6)
    assert m.cost > 0 and m.matched == "中心通讯"


def test_lenient_matching_accepts_one_wrong_syllable_in_a_long_positive_phrase():
    assert matcher("请您稍等", lenient=False).find("请您多等一下") == []
    assert matcher("请您稍等", lenient=True).find("请您多等一下")


def test_one_match_per_region_even_with_overlapping_patterns():
    m = PhraseMatcher([Pattern("我不知道", "我不知道"), Pattern("不知道", "我不知道")])
    assert len(m.find("这个我不知道")) == 1


def test_empty_pattern_is_rejected():
    with pytest.raises(ValueError):
        Pattern("，。", "x")
