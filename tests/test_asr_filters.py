"""Whisper's inventions never reach the rules; the real words around them do."""
import pytest

from monitor.asr.filters import clean, collapse_loops, why_not_speech

PROMPT = ("以下是普通话的句子。", "中兴通讯")


@pytest.mark.parametrize("text", ["字幕由Amara.org社区提供", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
                                  "谢谢观看", "以下是普通话的句子。", "普通话的句子", "中兴通讯。",
                                  "作词 作曲 作曲 作曲"])
def test_hallucinations_and_prompt_echoes_are_not_speech(text):
    _, reason = clean(text, PROMPT)
    assert reason in ("known hallucination", "prompt echo")


def test_a_company_name_said_on_its_own_is_speech_when_the_recogniser_is_sure_of_it():
    """The agent's "中兴通讯" cut from its 您好 (a mixed-mono turn) is read at about -0.1; the
    recogniser's echoes of its hot words over noise or other speech came at -0.38 and below."""
    assert clean("中兴通讯。", PROMPT, avg_logprob=-0.09) == ("中兴通讯。", "")
    assert clean("中兴通讯。", PROMPT, avg_logprob=-0.6)[1] == "prompt echo"
    assert clean("中兴", PROMPT, avg_logprob=-1.2)[1] == "prompt echo"
    # the initial prompt itself is an echo however sure
    assert clean("以下是普通话的句子。", PROMPT, avg_logprob=-0.05)[1] == "prompt echo"


def test_a_company_name_with_the_prompt_run_on_is_an_echo_unless_read_surely():
    """Over music on hold and line noise the recogniser reads its prompt back as it runs, the hot
    word then the initial prompt's start ("家庭宽带以下", at -0.69 to -0.84 on the field-style sets)."""
    assert clean("中兴通讯以下。", PROMPT, avg_logprob=-0.8)[1] == "prompt echo"
    assert clean("中兴通讯，以下是", PROMPT, avg_logprob=-0.8)[1] == "prompt echo"
    # the agent's own company name, read surely, with the run-on after it (a mono turn's greeting)
    assert clean("中兴通讯以下", PROMPT, avg_logprob=-0.2)[1] == ""
    # real words around it are speech
    assert clean("你好 中兴通讯以下", PROMPT, avg_logprob=-0.4)[1] == ""
    assert clean("中兴通讯以前的型号", PROMPT, avg_logprob=-0.8)[1] == ""


def test_an_echo_appended_to_real_words_is_cut_off():
    text, reason = clean("您好 警翼数码客服部以下是普通话的句子。", PROMPT)
    assert reason == "" and text == "您好 警翼数码客服部"


@pytest.mark.parametrize("loop, kept", [
    ("感谢您的来电再见见见见见见见见", "感谢您的来电再见"),
    ("让您久等了。让您久等了。让您久等了。", "让您久等了。"),
    ("再见,祝你一切顺利。再见,祝你一切顺利。再见,祝你一切顺利。再见,", "再见,祝你一切顺利。再见,"),
])
def test_decoding_loops_collapse_to_what_was_said(loop, kept):
    assert collapse_loops(loop) == kept


def test_low_confidence_and_no_speech_are_dropped():
    assert why_not_speech("好的", avg_logprob=-1.0, no_speech_prob=0.9) == "no speech"
    assert why_not_speech("好的", avg_logprob=-2.0, no_speech_prob=0.1) == "unlikely text"
    assert why_not_speech("好的，我帮您查一下。", avg_logprob=-0.2, no_speech_prob=0.1) == ""
    assert why_not_speech("", avg_logprob=-0.2, no_speech_prob=0.1) == "empty"


def test_a_character_cut_in_half_by_the_decoder_is_left_out():
    assert clean("这部戳戴\ufffd", PROMPT) == ("这部戳戴", "")
