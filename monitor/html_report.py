"""The QA report as one self-contained HTML page, in Chinese.

Charts are plotly figures; plotly's script, the page's styles and script are embedded, so the
file works offline. Each call opens to its two-column transcript, a timeline with the
violations marked, and an audio player (a link relative to the page) that a click on a
violation moves to the flagged moment.
"""
from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from monitor.events import REVIEW_RULES
from monitor.labels import confidence_percent, evidence, rule_name, severity_name
from monitor.private import open_private
from monitor.qa_summary import CountRow, GroupRow, Summary, summarise
from monitor.rules.forbidden import MIN_ROLE_CONFIDENCE

FONT = "Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, PingFang SC, sans-serif"
WHO = {"agent": "坐席", "caller": "客户"}


class HtmlReportError(RuntimeError):
    """The page cannot be drawn (plotly missing); one line."""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _clock(t: float) -> str:
    return f"{int(t // 60):d}:{t % 60:04.1f}"


def _score_class(s: float) -> str:
    return "low" if s < 70 else "mid" if s < 90 else "high"


def _asset(name: str) -> str:
    return (resources.files("monitor") / "report_assets" / name).read_text(encoding="utf-8")


def audio_link(row: dict, page_dir: Path, audio_dir: Path | None) -> str:
    """The recording's address relative to the page (forward slashes, URL-quoted)."""
    from urllib.parse import quote

    src = row.get("judge_input", {}).get("path") if isinstance(row.get("judge_input"), dict) else None
    path = audio_dir / row["call"] if audio_dir is not None else Path(src or row["call"])
    rel = os.path.relpath(path.resolve(), page_dir.resolve())
    return quote(os.fsencode(Path(rel).as_posix()))  # a name that is not UTF-8 is quoted as its bytes


# -- charts ------------------------------------------------------------------------
def _figure_html(fig, height: int = 320) -> str:
    fig.update_layout(font={"family": FONT, "size": 13}, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      height=height, autosize=True, template="plotly_white")
    return str(fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%",
                           default_height=f"{height}px", config={"displaylogo": False, "responsive": True}))


def _labels(keys: Sequence[str], width: int = 26) -> list[str]:
    """Short, distinct axis labels (the full text is in the hover)."""
    out: list[str] = []
    for k in keys:
        label = k if len(k) <= width else k[:width - 1] + "…"
        n = 2
        base = label
        while label in out:
            label, n = f"{base} ({n})", n + 1
        out.append(label)
    return out


def charts(s: Summary) -> dict[str, str]:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise HtmlReportError("the HTML report draws its charts with plotly: "
                              "pip install 'call-monitor[report]'") from None
    scores = [r["score"] for r in s.calls]
    dist = go.Figure(go.Histogram(x=scores, xbins={"start": 0, "end": 105, "size": 5}, marker_color="#1565c0",
                                  hovertemplate="%{x} 分: %{y} 通<extra></extra>"))
    dist.update_layout(xaxis_title="分数", yaxis_title="通话数", bargap=0.05)

    def counts(rows: Sequence[CountRow], label) -> str:
        rows = list(reversed(rows))  # plotly draws the first bar at the bottom
        fig = go.Figure(go.Bar(x=[r.violations for r in rows], y=_labels([label(r.key) for r in rows]),
                               orientation="h",
                               marker_color="#c62828", customdata=[[r.key, r.calls, r.deductions] for r in rows],
                               hovertemplate="%{customdata[0]}<br>%{x} 次，%{customdata[1]} 通，扣 %{customdata[2]} 分"
                                             "<extra></extra>"))
        fig.update_layout(xaxis_title="违规次数")
        return _figure_html(fig, max(320, 90 + 22 * len(rows)))

    def ranked(groups: Sequence[GroupRow]) -> str:
        gs = list(reversed(groups))
        fig = go.Figure(go.Bar(x=[g.mean_score for g in gs], y=[f"{g.name}（{g.calls} 通）" for g in gs],
                               orientation="h", marker_color=["#c62828" if g.mean_score < 70 else "#ef6c00"
                                                              if g.mean_score < 90 else "#2e7d32" for g in gs],
                               hovertemplate="%{y}: 平均 %{x:.1f} 分<extra></extra>"))
        fig.update_layout(xaxis_title="平均分（低分在上）", xaxis_range=[0, 100])
        return _figure_html(fig, max(320, 90 + 26 * len(gs)))

    days = list(s.days)
    trend = go.Figure()
    day_labels = [d.name[5:] if len(d.name) == 10 else d.name for d in days]  # 11-16: the period is in the title
    trend.add_trace(go.Bar(x=day_labels, y=[d.violations for d in days], name="违规次数",
                           marker_color="#ef9a9a", yaxis="y2"))
    trend.add_trace(go.Scatter(x=day_labels, y=[d.mean_score for d in days], name="平均分",
                               mode="lines+markers", line={"color": "#1565c0"},
                               customdata=[[d.name, d.calls] for d in days],
                               hovertemplate="%{customdata[0]}: 平均 %{y:.1f} 分（%{customdata[1]} 通）<extra></extra>"))
    trend.update_layout(xaxis={"type": "category", "tickangle": 0},
                        yaxis={"title": "平均分", "range": [0, 100]},
                        yaxis2={"title": "违规次数", "overlaying": "y", "side": "right", "rangemode": "tozero",
                                "tickformat": "d", "showgrid": False},
                        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})
    return {
        "dist": _figure_html(dist),
        "rules": counts(s.by_rule, rule_name),
        "seeds": counts(s.by_seed, str),
        "agents": ranked(s.agents),
        "teams": ranked(s.teams),
        "trend": _figure_html(trend),
    }


# -- tables and calls ------------------------------------------------------------------
def _group_table(groups: Sequence[GroupRow], who: str) -> str:
    head = (f"<tr><th>{who}</th><th class=num>通话数</th><th class=num>平均分</th><th class=num>最低分</th>"
            "<th class=num>违规</th><th class=num>扣分</th><th class=num>讲话占比</th><th class=num>静音占比</th>"
            "<th class=num>最长静音(秒)</th><th class=num>抢话次数</th><th class=num>语速(字/分)</th></tr>")
    rows = "".join(
        f"<tr><td>{_e(g.name)}</td><td class=num>{g.calls}</td>"
        f"<td class='num score {_score_class(g.mean_score)}'>{g.mean_score:.1f}</td><td class=num>{g.lowest_score:g}</td>"
        f"<td class=num>{g.violations}</td><td class=num>{g.deductions:g}</td>"
        f"<td class=num>{g.metrics.agent_talk_share:.0%}</td><td class=num>{g.metrics.silence_share:.0%}</td>"
        f"<td class=num>{g.metrics.longest_silence_s:.1f}</td><td class=num>{g.metrics.agent_interruptions}</td>"
        f"<td class=num>{g.metrics.agent_chars_per_min:.0f}</td></tr>" for g in groups)
    return f"<table class='ranking'>{head}{rows}</table>"


def _meta_line(row: dict) -> str:
    m = row.get("meta", {})
    return " · ".join(_e(m[k]) for k in ("agent", "team", "date") if m.get(k))


def _worst_table(calls: Sequence[dict]) -> str:
    head = ("<tr><th class=num>分数</th><th>通话</th><th>坐席</th><th>班组</th><th>日期</th><th class=num>时长</th>"
            "<th>违规</th></tr>")
    rows = []
    for i, r in enumerate(calls):
        m = r.get("meta", {})
        rules = "、".join(rule_name(v["rule"]) for v in r.get("violations", [])) or "—"
        rows.append(f"<tr class=open-call data-target='call-{i}'><td class='num score {_score_class(r['score'])}'>"
                    f"{r['score']:g}</td><td>{_e(r['call'])}</td><td>{_e(m.get('agent', ''))}</td>"
                    f"<td>{_e(m.get('team', ''))}</td><td>{_e(m.get('date', ''))}</td>"
                    f"<td class=num>{_clock(r.get('duration', 0.0))}</td><td>{_e(rules)}</td></tr>")
    return f"<table id=worst>{head}{''.join(rows)}</table>"


def _timeline(row: dict) -> str:
    d = max(float(row.get("duration") or 0.0), 0.1)

    def pct(t: float) -> float:
        return max(0.0, min(100.0, 100.0 * t / d))

    lanes = []
    for role in ("agent", "caller"):
        segs = "".join(f"<div class=seg style='left:{pct(t['start']):.2f}%;width:{max(0.2, pct(t['end']) - pct(t['start'])):.2f}%'"
                       f" title='{_e(_clock(t['start']))} {_e(t['text'])}'></div>"
                       for t in row.get("transcript", []) if t["channel"] == role)
        lanes.append(f"<div class='lane {role}'><span class=lane-name>{WHO[role]}</span>{segs}</div>")
    markers = "".join(
        f"<button class='v-marker {_e(v.get('severity', 'major'))}' data-t='{v['start']}' "
        f"style='left:{pct(v['start']):.2f}%' title='{_e(_clock(v['start']))} {_e(rule_name(v['rule']))}'"
        f" aria-label='{_e(rule_name(v['rule']))}'></button>"
        for v in row.get("violations", []))
    axis = f"<div class=axis><span style='position:absolute;right:2px'>{_clock(d)}</span><span>0:00</span></div>"
    return f"<div class=timeline data-duration='{d}'>{''.join(lanes)}{markers}<div class=playhead></div>{axis}</div>"


def _violation_list(row: dict) -> str:
    items = []
    for v in row.get("violations", []):
        sev = v.get("severity", "major")
        phrase = f" “{_e(v['phrase'])}”" if v.get("phrase") else ""
        said = f" <span class=said>「{_e(v['text'])}」</span>" if v.get("text") else ""
        cost = f" 扣 {v.get('deduction', 0):g} 分" if v.get("deduction") else ""
        seed = f"<div class=seed>依据：{_e(v['seed'])}</div>" if v.get("seed") else ""
        items.append(f"<li><button class=seek data-t='{v['start']}'>▶ {_clock(v['start'])}</button> "
                     f"<span class=rule>{_e(rule_name(v['rule']))}</span>{phrase} "
                     f"<span class={_e(sev)}-tag>[{_e(severity_name(sev))}{cost}]</span> "
                     f"{_e(evidence(v.get('evidence', '')))}{said}{seed}</li>")
    return f"<ol class=violations>{''.join(items)}</ol>" if items else "<p class=muted>没有违规</p>"


def _whose(t: dict) -> str:
    """How sure the side of a mono recording's line is (stereo lines carry no confidence); below
    the bar a line needs to raise a forbidden alert on its own, it is marked as unsure."""
    conf = t.get("role_confidence")
    if conf is None:
        return ""
    unsure = conf < MIN_ROLE_CONFIDENCE
    label = "归属存疑 " if unsure else ""
    return (f" <span class='whose{' unsure' if unsure else ''}' title='单声道录音：这句归于此方的把握'>"
            f"{label}{confidence_percent(conf)}%</span>")


def _transcript(row: dict) -> str:
    flagged = [(v["start"], v["end"], v["channel"]) for v in row.get("violations", [])]
    rows = []
    for t in row.get("transcript", []):
        hit = any(c == t["channel"] and t["start"] < e + 0.01 and s < t["end"] + 0.01 for s, e, c in flagged)
        cells = ["", ""]
        cells[0 if t["channel"] == "agent" else 1] = _e(t["text"]) + _whose(t)
        rows.append(f"<tr data-start='{t['start']}' data-end='{t['end']}'{' class=flagged' if hit else ''}>"
                    f"<td class=t><a href='#' data-t='{t['start']}'>{_clock(t['start'])}</a></td>"
                    f"<td class=agent>{cells[0]}</td><td class=caller>{cells[1]}</td></tr>")
    return ("<table class=transcript><tr><th>时间</th><th class=agent>坐席</th><th class=caller>客户</th></tr>"
            + "".join(rows) + "</table>")


def _call(i: int, row: dict, page_dir: Path, audio_dir: Path | None) -> str:
    link = audio_link(row, page_dir, audio_dir)
    found = row.get("violations", [])
    n = sum(v["rule"] not in REVIEW_RULES for v in found)
    review = len(found) - n
    note = []
    if row.get("not_judged"):
        note.append("未判定：" + "、".join(rule_name(r) for r in row["not_judged"]))
    if row.get("truncated"):
        note.append("录音不完整")
    note += [f"注意：{evidence(w)}" for w in row.get("warnings", [])]
    return (f"<details class=call id='call-{i}' data-call='{_e(row['call'])}'><summary>"
            f"<span class='score {_score_class(row['score'])}'>{row['score']:g} 分</span> {_e(row['call'])}"
            f"<span class=who>{_meta_line(row)}</span> <span class=muted>{n} 项违规{f' · {review} 项待核实' if review else ''} · {_clock(row.get('duration', 0))}"
            f"{' · ' + _e('；'.join(note)) if note else ''}</span></summary><div class=body>"
            f"<div class=player><audio controls preload=metadata src='{_e(link)}'></audio>"
            f"<span class=muted>{_e(row.get('profile', ''))}</span></div>"
            f"{_timeline(row)}{_violation_list(row)}{_transcript(row)}</div></details>")


def render(rows: Sequence[dict], page_dir: Path, title: str = "通话质检报告", audio_dir: Path | None = None) -> str:
    s = summarise(rows)
    c = charts(s)  # first: says so when plotly is missing
    from plotly.offline import get_plotlyjs

    period = f"{s.first_day} 至 {s.last_day}" if s.first_day else "日期未注明"
    violations = sum(r.violations for r in s.by_rule if r.key not in REVIEW_RULES)
    failed = (f"<section class=panel><h2>未能评分的通话（{len(s.failed)}）</h2><ul>"
              + "".join(f"<li>{_e(r['call'])}：{_e(r.get('error', ''))}</li>" for r in s.failed) + "</ul></section>"
              if s.failed else "")
    calls = "".join(_call(i, r, page_dir, audio_dir) for i, r in enumerate(s.calls))
    data = json.dumps({"calls": len(s.calls), "mean_score": round(s.mean_score, 2), "violations": violations},
                      ensure_ascii=False)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_asset("report.css")}</style>
<script>{get_plotlyjs()}</script></head>
<body><header><h1>{_e(title)}</h1><div class=facts><span>{_e(period)}</span><span>{len(s.calls)} 通通话</span>
<span>平均分 {s.mean_score:.1f}</span><span>{violations} 项违规</span>
<span>{len(s.agents)} 名坐席</span></div></header>
<main>
<script type="application/json" id="summary">{data}</script>
<div class=grid>
<section class=panel id=score-distribution><h2>分数分布</h2>{c["dist"]}</section>
<section class=panel id=trend><h2>每日趋势</h2>{c["trend"]}</section>
<section class=panel id=by-rule><h2>各规则违规</h2>{c["rules"]}</section>
<section class=panel id=by-seed><h2>各条规范违规（依据）</h2>{c["seeds"]}</section>
</div>
<section class=panel id=agents><h2>坐席排名（平均分，低分在前）</h2><div class=grid><div>{c["agents"]}</div>
<div>{_group_table(s.agents, "坐席")}</div></div></section>
<section class=panel id=teams><h2>班组排名（平均分，低分在前）</h2><div class=grid><div>{c["teams"]}</div>
<div>{_group_table(s.teams, "班组")}</div></div></section>
<section class=panel id=worst-calls><h2>最差通话（低分在前，点击查看）</h2>{_worst_table(s.calls)}</section>
{failed}
<section class=panel id=calls><h2>通话详情</h2>{calls}</section>
</main><script>{_asset("report.js")}</script></body></html>
"""


def write_html(path: Path, rows: Sequence[dict], title: str = "通话质检报告", audio_dir: Path | None = None) -> None:
    page = render(rows, path.parent if str(path.parent) else Path("."), title, audio_dir)
    with open_private(path, encoding="utf-8", errors="backslashreplace") as f:
        f.write(page)
