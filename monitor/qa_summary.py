"""What a QA lead reads first, computed from report rows: rankings, counts by rule and norm, days, worst calls.

Pure data (no HTML): `monitor.html_report` draws it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from monitor.events import REVIEW_RULES
from monitor.metrics import AgentMetrics, CallMetrics, aggregate

UNKNOWN = "（未注明）"  # calls whose metadata does not say (agent, team or date)


def call_metrics_of(row: dict) -> CallMetrics:
    m = row.get("metrics", {})
    return CallMetrics(**{f.name: m.get(f.name, 0) for f in fields(CallMetrics)})


@dataclass(frozen=True)
class GroupRow:
    """One agent, team or day: how many calls, how they scored, what went wrong."""

    name: str
    calls: int
    mean_score: float
    lowest_score: float
    violations: int
    deductions: float
    metrics: AgentMetrics


@dataclass(frozen=True)
class CountRow:
    key: str  # rule name or the norm's seed
    violations: int
    calls: int
    deductions: float


@dataclass(frozen=True)
class Summary:
    calls: list[dict]  # scored rows, worst first (lowest score, then most deductions)
    failed: list[dict]  # rows of calls that could not be scored
    by_rule: list[CountRow]
    by_seed: list[CountRow]
    agents: list[GroupRow]  # worst mean score first
    teams: list[GroupRow]
    days: list[GroupRow]  # in date order
    mean_score: float

    @property
    def first_day(self) -> str:
        known = [d.name for d in self.days if d.name != UNKNOWN]
        return known[0] if known else ""

    @property
    def last_day(self) -> str:
        known = [d.name for d in self.days if d.name != UNKNOWN]
        return known[-1] if known else ""


def _deductions(row: dict) -> float:
    return float(sum(v.get("deduction", 0.0) for v in row.get("violations", [])))


def _group(rows: Sequence[dict], key: Callable[[dict], str]) -> list[GroupRow]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r) or UNKNOWN].append(r)
    return [GroupRow(name=name, calls=len(rs), mean_score=sum(r["score"] for r in rs) / len(rs),
                     lowest_score=min(r["score"] for r in rs),
                     violations=sum(v["rule"] not in REVIEW_RULES for r in rs for v in r.get("violations", [])),
                     deductions=sum(_deductions(r) for r in rs),
                     metrics=aggregate([call_metrics_of(r) for r in rs]))
            for name, rs in groups.items()]


def _counts(rows: Sequence[dict], key: Callable[[dict], str]) -> list[CountRow]:
    n: dict[str, int] = defaultdict(int)
    calls: dict[str, set[str]] = defaultdict(set)
    cost: dict[str, float] = defaultdict(float)
    for r in rows:
        for v in r.get("violations", []):
            k = key(v)
            n[k] += 1
            calls[k].add(r["call"])
            cost[k] += float(v.get("deduction", 0.0))
    return sorted((CountRow(k, n[k], len(calls[k]), cost[k]) for k in n), key=lambda c: (-c.violations, c.key))


def _meta(row: dict, key: str) -> str:
    return str(row.get("meta", {}).get(key, ""))


def summarise(rows: Sequence[dict]) -> Summary:
    scored = [r for r in rows if "error" not in r]
    failed = [r for r in rows if "error" in r]
    worst_first = sorted(scored, key=lambda r: (r["score"], -_deductions(r), r["call"]))
    rank = sorted  # ranked by mean score, worst first; ties: more calls first
    return Summary(
        calls=worst_first, failed=failed,
        by_rule=_counts(scored, lambda v: v["rule"]),
        by_seed=_counts(scored, lambda v: v.get("seed") or v["rule"]),
        agents=rank(_group(scored, lambda r: _meta(r, "agent")), key=lambda g: (g.mean_score, -g.calls, g.name)),
        teams=rank(_group(scored, lambda r: _meta(r, "team")), key=lambda g: (g.mean_score, -g.calls, g.name)),
        days=sorted(_group(scored, lambda r: _meta(r, "date")), key=lambda g: (g.name == UNKNOWN, g.name)),
        mean_score=sum(r["score"] for r in scored) / len(scored) if scored else 0.0)
