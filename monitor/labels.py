"""The one table of rule names, severities and evidence wording, in Chinese and English.

The rules write their evidence in English (monitor/rules/*); `evidence()` turns it into
Chinese with the patterns below, so the terminal, the reports and the supervisor console
(which gets this table from the hub at GET /api/labels) say the same thing. A pattern is a
regular expression that Python and JavaScript read alike (no named groups, no lookbehind);
its `{1}`, `{2}`... take the groups.
"""
from __future__ import annotations

import math
import re
from typing import Literal

from monitor.events import REVIEW_RULES

Lang = Literal["zh", "en"]

# rule -> (Chinese, English)
RULES: dict[str, tuple[str, str]] = {
    "greeting": ("开场问候", "greeting"),
    "greeting_company": ("问候未报公司名", "greeting names the company"),
    "forbidden": ("服务忌语", "forbidden phrase"),
    "forbidden_unsure": ("疑似服务忌语（待核实）", "forbidden phrase to review"),
    "closing": ("结束语", "closing"),
    "closing_offer": ("未询问其他需求", "closing offer"),
    "hangup": ("先于客户挂机", "hang-up first"),
    "hold": ("静音未致歉", "hold without asking"),
    "hold_return": ("等待后未致谢", "hold return"),
    "escalation_complaint": ("客户要投诉", "caller threatens to complain"),
    "escalation_supervisor": ("客户要找领导", "caller asks for a supervisor"),
    "escalation_repeat": ("客户反复投诉", "caller repeats the complaint"),
    "complaint_answer": ("投诉应答不当", "complaint answer"),
    "service_metrics": ("服务指标", "service metrics"),  # the rule behind speech_rate and interrupting
    "speech_rate": ("语速过快", "speech rate"),
    "interrupting": ("抢话", "interrupting the caller"),
}

# severity -> (Chinese, English)
SEVERITIES: dict[str, tuple[str, str]] = {
    "critical": ("严重", "critical"),
    "major": ("重要", "major"),
    "minor": ("轻微", "minor"),
    "escalation": ("升级", "escalation"),
}

# Why a desk withdrew an alert it raised live (monitor.live.session): reason -> (Chinese, English).
# A fixed list, so a desk cannot put words of its own on the supervisor's board.
WITHDRAWN: dict[str, tuple[str, str]] = {
    "caller_line": ("坐席端撤回：整通复判认定这句是客户说的", "withdrawn by the desk: the whole call gives this line to the caller"),
    "side_unsure": ("坐席端撤回：整通复判说话人存疑，转人工核实",
                    "withdrawn by the desk: the whole call leaves this line's speaker unsure, kept for review"),
    "not_held": ("坐席端撤回：整通复判不成立", "withdrawn by the desk: not held when the whole call was judged"),
}

# (English evidence pattern, Chinese template). First match wins.
EVIDENCE: list[tuple[str, str]] = [
    (r"^(?:agent )?said “(.*)”: (.*); whose line is unsure \(the agent's at (.*)\)$",
     "混合录音中说“{1}”的这句话是坐席的可能性为 {3}，请人工核实"),
    (r"^agent said “(.*)”: (.*); the recogniser's near reading “(.*)” is polite; the agent's line at (.*)$",
     "混合录音中坐席（可能性 {4}）似乎说了“{1}”，但识别的另一读法“{3}”是礼貌说法，请人工核实"),
    (r"^agent said “(.*)”: (.*); the recogniser's near reading “(.*)” is polite$",
     "坐席似乎说了“{1}”，但识别的另一读法“{3}”是礼貌说法，请人工核实"),
    (r"^agent said “(.*)”: exact; the recogniser's near reading “(.*)”$", "坐席说了“{1}”（识别的另一读法“{2}”，完全一致）"),
    (r"^agent said “(.*)”: sounds like it \(pinyin distance (.*)\); the recogniser's near reading “(.*)”$",
     "坐席说了“{1}”（识别的另一读法“{3}”，读音相近，拼音距离 {2}）"),
    (r"^agent said “(.*)”: exact$", "坐席说了“{1}”（完全一致）"),
    (r"^agent said “(.*)”: sounds the same; the recogniser's near reading “(.*)”$",
     "坐席说了“{1}”（识别的另一读法“{2}”，与忌语同音）"),
    (r"^agent said “(.*)”: sounds the same$", "坐席说了“{1}”（与忌语同音）"),
    (r"^agent said “(.*)”: sounds like it \(pinyin distance (.*)\)$", "坐席说了“{1}”（读音相近，拼音距离 {2}）"),
    (r"^rude opening “(.*)” instead of a greeting$", "开场用了“{1}”，没有问候"),
    (r"^first words at (.*) s carry no greeting$", "{1} 秒的第一句话没有问候"),
    (r"^the agent said nothing within (.*) s$", "坐席 {1} 秒内没有说话"),
    (r"^the greeting came at (.*) s at the earliest, after the (.*) s deadline$", "问候最早在 {1} 秒才说，超过了 {2} 秒的时限"),
    (r"^the greeting does not name the company \((.*)\)$", "问候没有报公司名（{1}）"),
    (r"^no goodbye in the agent's last words$", "坐席最后的话里没有“再见”"),  # reports before 2026-11
    (r"^no goodbye \((.*)\) in the agent's last words$", "坐席最后的话里没有结束语（{1}）"),
    (r"^the agent did not ask whether anything else is needed$", "坐席没有询问“还有其他需要吗”"),
    (r"^the agent never spoke$", "坐席全程没有说话"),
    (r"^call-control event from (.*): (agent|caller) hung up at (.*) s$", "话机事件（{1}）：{2} 在 {3} 秒挂机"),
    (r"^call-control event: (agent|caller) hung up at (.*) s$", "话机事件：{1} 在 {2} 秒挂机"),
    (r"^(.*) disconnect tone on the caller channel from (.*) s$", "客户侧从 {2} 秒起有挂机音（{1}）"),
    (r"^the recording ended while the caller was still talking$", "客户还在说话时录音结束"),
    (r"^no disconnect tone from the caller before the agent ended the call$", "坐席结束通话前客户侧没有挂机音"),
    (r"^(.*) s of silence on both sides without asking the caller to wait$", "双方静音 {1} 秒，之前没有请客户稍等"),
    (r"^after the wait the agent did not thank the caller \(让您久等了\)$", "等待后坐席没有致谢（让您久等了）"),
    (r"^the caller threatens to complain or escalate: “(.*)” \(heard “(.*)”\)$", "客户扬言投诉或升级：“{1}”（听到“{2}”）"),
    (r"^the caller threatens to complain or escalate: “(.*)”$", "客户扬言投诉或升级：“{1}”"),
    (r"^the caller asks for a supervisor: “(.*)” \(heard “(.*)”\)$", "客户要求找领导：“{1}”（听到“{2}”）"),
    (r"^the caller asks for a supervisor: “(.*)”$", "客户要求找领导：“{1}”"),
    (r"^the caller said the same thing (\d+) times \(at (.*) s\): “(.*)”$", "客户同一件事说了 {1} 次（{2} 秒）：“{3}”"),
    (r"^the caller complained \(“(.*)”\) and the agent did not answer with the prescribed apology within (.*) s$",
     "客户投诉（“{1}”），坐席 {2} 秒内没有按规范致歉"),
    (r"^the agent speaks (.*) characters a minute \(limit (.*)\)$", "坐席语速每分钟 {1} 字（上限 {2}）"),
    (r"^the agent interrupted the caller (\d+) times \(limit (.*)\)$", "坐席抢话 {1} 次（上限 {2}）"),
    # a call's warnings (how its audio was read), shown beside its score
    (r"^recorded from the ring: ringback until (.*) s, taken as the pick-up \(the greeting is timed from it\)$",
     "录音从振铃开始：回铃音持续到 {1} 秒，按此时接通计算问候时限"),
    (r"^no speech heard on either side; judged as a call in which nobody spoke$", "双方都没有听到说话，按无人说话的通话评判"),
    (r"^the caller's side opens with the agent's greeting \(“(.*)”\) and the agent's does not: are the "
     r"channels swapped\? \(--agent-channel, --caller-channel\)$",
     "客户一侧以坐席的问候开场（“{1}”），坐席一侧却没有：声道是否接反了？（--agent-channel、--caller-channel）"),
    (r"^both channels hold the same audio \(a mono recording copied to both\): scored as a mixed-mono call$",
     "两个声道是同一段录音（单声道复制成双声道），已按混合单声道通话评判"),
    (r"^the WAV header says it holds no audio \(a recorder that stopped before finishing the file\); "
     r"read the (.*) s of audio after it$", "WAV 文件头记为没有音频（录音未正常结束），已读取其后的 {1} 秒音频"),
]
_WHO = {"agent": "坐席", "caller": "客户"}
_COMPILED = [(re.compile(p), t) for p, t in EVIDENCE]


def _named(table: dict[str, tuple[str, str]], key: str, lang: Lang) -> str:
    """`key`'s wording in `lang` from one of the (Chinese, English) tables; the key itself if unknown."""
    names = table.get(key)
    return key if names is None else names[0 if lang == "zh" else 1]


def rule_name(rule: str, lang: Lang = "zh") -> str:
    return _named(RULES, rule, lang)


def severity_name(severity: str, lang: Lang = "zh") -> str:
    return _named(SEVERITIES, severity, lang)


def evidence(text: str, lang: Lang = "zh") -> str:
    """The evidence of a violation in `lang` (unknown wording is returned as it is)."""
    if lang == "en":
        return text
    for rx, template in _COMPILED:
        m = rx.match(text)
        if m:
            out = template
            for i, g in enumerate(m.groups(), 1):
                out = out.replace("{" + str(i) + "}", _WHO.get(g, g))
            return out
    return text


def withdrawn_reason(reason: str, lang: Lang = "zh") -> str:
    return _named(WITHDRAWN, reason, lang)


def confidence_percent(conf: float) -> int:
    """A side's confidence as shown to people, in percent: floored, so a line under a bar
    (0.795 under 0.8) never reads as at it."""
    return math.floor(round(100 * conf, 9))  # round: 0.57 * 100 is 56.99999999999999


def confidence_fraction(conf: float) -> str:
    """The same floored confidence written as a fraction with two decimals (0.795 -> "0.79")."""
    return f"{confidence_percent(conf) / 100:.2f}"


def mono_side(conf: float | None, rule: str, lang: Lang = "zh") -> str:
    """What a mixed-mono line's alert adds: how sure its line is the agent's ('' on stereo, and
    on a finding to review, whose evidence says it already)."""
    if conf is None or rule in REVIEW_RULES:
        return ""
    pct = confidence_percent(conf)
    return f" [混合录音，这句是坐席的可能性 {pct}%]" if lang == "zh" else f" [mixed mono: the agent's line at {pct}%]"


def table() -> dict:
    """The whole table as JSON for the console (GET /api/labels)."""
    def both(table: dict[str, tuple[str, str]]) -> dict:
        return {k: {"zh": zh, "en": en} for k, (zh, en) in table.items()}
    return {"rules": both(RULES), "severities": both(SEVERITIES), "withdrawn": both(WITHDRAWN),
            "evidence": [{"pattern": p, "zh": t} for p, t in EVIDENCE],
            "who": _WHO, "review_rules": list(REVIEW_RULES)}
