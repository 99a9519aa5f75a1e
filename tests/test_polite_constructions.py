"""A forbidden string inside polite speech is not a violation; the rude form still is.

The constructions are data (phrasebook/common.toml `[polite]`), checked within the
phrase's clause on the recogniser's words (which often carry no punctuation).
"""
import pytest

from monitor.phrasebook import load_profile

ZTE, UNICOM, JINGYI = load_profile("zte"), load_profile("unicom"), load_profile("jingyi")
BROADBAND = load_profile("broadband")


def forbidden(profile, text):
    return [m.name for m in profile.forbidden_matcher.find(text)]


@pytest.mark.parametrize("profile, polite, rude, phrase", [
    # concessive 不管…都…: "no matter how late, I will"
    (ZTE, "我不管多晚都会帮您处理好", "这个事我不管，你去找别人", "我不管"),
    (ZTE, "我不管您什么时候打来也会接的", "我不管这些", "我不管"),
    # ... with 都 as the recogniser writes it (读, same sound)
    (ZTE, "您放心，我不管多晚读会给您回电话", "我不管多了，你自己看着办", "我不管"),
    # a question built on 有没…
    (UNICOM, "请问您那边有没办法重启一下路由器", "这个真的没办法", "没办法"),
    # "I wonder whether it suits you …": a polite question that opens with 不知道, kept when the
    # recogniser garbles one syllable of it (是否 heard 是走)
    (JINGYI, "不知道是走方便留个联系电话", "不知道，你问别人吧", "不知道"),
    (ZTE, "不知道是否方便留一个联系电话", "我不知道，你去问别人", "我不知道"),
    # said of the caller, not the agent refusing
    (ZTE, "您不知道型号也没关系，我帮您查", "这个我不知道", "我不知道"),
    (JINGYI, "如果您不知道序列号的话我教您找", "不知道，你问别人吧", "不知道"),
    (UNICOM, "您这边没办法过来的话我们上门", "没办法，规定就是这样", "没办法"),
    # the agent denies the refusal
    (UNICOM, "不是没法查，只是要多等两天", "这个没法查", "没法查"),
    (ZTE, "这个也不是不可能，我帮您申请一下", "不可能，你别想了", "不可能"),
    # 不管 + a yes/no question X不X: the phrase is half of the question, the condition that
    # does not matter ("whether or not you know the model, we can find it")
    (JINGYI, "不管您知不知道型号，我们都能帮您查到", "不知道，你问别人吧", "不知道"),
    (BROADBAND, "不管归不归我管，我都会帮您跟进到底", "这事不归我管", "不知道，这事不归我管"),
    # what a 有没有 question asks about, further on in its clause
    (UNICOM, "您有没有觉得哪里没办法操作？我一步一步教您", "没办法，规定就是这样", "没办法"),
    # which part: a question word right before the phrase, kept when the recogniser garbles
    # the 有没有 before it ("您有没有觉得…" heard "因为没有觉得…")
    (UNICOM, "因为没有觉得哪里没办法操作，我一步一步教您", "没办法，这个哪里都办不了", "没办法"),
    (JINGYI, "您看看哪儿不知道怎么弄，随时问我", "坏在哪儿不知道，你自己找找", "不知道"),
    (ZTE, "您哪里不知道怎么操作，我一步步教您", "您说的那个东西在哪里我不知道", "我不知道"),
    # a 有没有 question about something, not the scolding (which ends its clause, or a new one
    # follows with its comma unheard)
    (BROADBAND, "麻烦您看一下，你有没有搞错网线的接口？应该插黄色那个口", "你有没有搞错，我交了钱的", "你有没有搞错？"),
    (BROADBAND, "您有没有搞错设备的型号", "你有没有搞错我都说了三遍了", "你有没有搞错？"),
    (BROADBAND, "请问您有没有搞错账号的密码", "你有没有搞错啊", "你有没有搞错？"),
    # 应该 that guesses ("presumably …"), not an order
    (BROADBAND, "你们应该已经收到我们的短信通知了吧", "你们应该自己去营业厅办理", "你们必须/你们应该"),
    (BROADBAND, "你们应该是同一个宽带账号", "这个你们应该早点准备好", "你们必须/你们应该"),
    (BROADBAND, "你们应该受到我们的短信通知了吧", "你们应该自己先看说明书", "你们必须/你们应该"),
    # "even if …, it is fine"
    (UNICOM, "你没法查到也没关系，我这边帮您查", "这个号码的记录没法查", "没法查"),
])
def test_the_polite_construction_passes_and_the_rude_form_is_caught(profile, polite, rude, phrase):
    assert forbidden(profile, polite) == [], polite
    assert phrase in forbidden(profile, rude), rude


def test_a_construction_only_counts_within_its_clause():
    # 您 ends the previous clause: "…告诉您。不知道" is the agent not knowing.
    assert "我不知道" in forbidden(ZTE, "我已经告诉您了，不知道就是不知道")
    # the concessive needs its 都/也 in the same clause: "I don't care how much, you do it yourselves"
    assert "我不管" in forbidden(ZTE, "我不管多少钱，你们都自己弄")


def test_after_the_concessive_condition_comes_what_the_agent_asserts():
    # 不管 X 都 Y: X does not matter, Y is said; a refusal in Y is a refusal
    assert "没办法" in forbidden(UNICOM, "不管你怎么说我都没办法")
    assert "没办法" in forbidden(UNICOM, "无论如何也没办法")
    # a yes/no question asks; a refusal before it in the clause is still said
    assert "没办法" in forbidden(UNICOM, "没办法，你是不是听不懂")


@pytest.mark.parametrize("profile, rude, phrase", [
    # where something is, the agent does not know: no verb of finding before the question word
    (JINGYI, "问题出在哪里不知道，你问厂家吧", "不知道"),
    (ZTE, "问题在哪儿不知道，你自己查吧", "我不知道"),
    (JINGYI, "你哪里不知道？说明书上都写着呢", "不知道"),
    # wherever …: the phrase opens a clause of its own
    (ZTE, "你去哪里我不管", "我不管"),
    (ZTE, "你爱找哪儿我管不着", "我管不着"),
    (ZTE, "你投诉到哪里我也没办法", "我也没办法"),
    (BROADBAND, "说明书在哪里你自己看", "说明书上有，你自己看"),
    (UNICOM, "你去哪里没办法，规定就是这样", "没办法"),
])
def test_a_question_word_excuses_only_what_the_caller_is_asked_to_find(profile, rude, phrase):
    """Found by an outside tester: 哪里 before a phrase once excused every one of these."""
    assert phrase in forbidden(profile, rude), rude


def test_a_rude_question_is_still_rude():
    broadband = load_profile("broadband")
    for said in ("你有没有搞错", "您有没有搞错啊"):
        assert forbidden(broadband, said) == ["你有没有搞错？"], said


def test_a_short_phrase_is_not_pieced_together_across_two_sentences():
    # "…call me any time. Whatever happens, we will…": 我 ends one sentence, 不管 opens the
    # next; no one said 我不管 (seen on a field-style 8 kHz call: "…也找我。不管怎样，…")
    assert forbidden(ZTE, "有问题随时找我。不管怎样，我们都会帮您处理好的。") == []
    assert forbidden(ZTE, "您能找到我？不管怎样，我们都会帮您处理好的。") == []
    # within a sentence, or across a comma the recogniser put in, it is said
    assert "我不管" in forbidden(ZTE, "这事我不管。你找别人吧。")
    assert "我不管" in forbidden(ZTE, "这事我，不管。你找别人吧。")
    # a longer phrase may hold two clauses that the recogniser ends as two sentences
    assert forbidden(BROADBAND, "快下班了。明天再说吧") == ["快下班了，明天再说"]
    assert forbidden(BROADBAND, "你问我。我问谁？") == ["你问我，我问谁？"]
    # a decimal point ends no sentence
    assert "不知道" in forbidden(JINGYI, "型号是8.1不知道")


@pytest.mark.parametrize("rude", ["我不知道您在说什么", "我不知道您是怎么弄的", "我不知道您那边什么情况",
                                  "我不知道您现在找谁", "我不知道他现在去哪了", "我不知道是否方便您自己去问"])
def test_a_blunt_i_dont_know_addressed_to_the_caller_is_still_the_forbidden_phrase(rude):
    """Only the polite question forms are excused (不知道您现在方便吗, 不知道是否方便…): an outside
    tester showed that excusing every 我不知道您… lets these through."""
    assert forbidden(ZTE, rude) == ["我不知道"]
    assert forbidden(JINGYI, rude) == ["不知道"]
