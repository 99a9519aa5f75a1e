"""Re-judging a scored report against a (changed) phrasebook, without audio or speech recognition.

Each report line carries what the rules were fed ("judge_input"); `rescore_call` hands it to
the same `pipeline.judged_report` that `score` uses, so the result is what a full `score`
with that profile gives.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.judge_input import JudgeInput, JudgeInputError
from monitor.phrasebook import Profile
from monitor.pipeline import CallReport, judged_report


class ReportError(ValueError):
    """A report that cannot be read; one line naming the file (and line)."""


@dataclass(frozen=True)
class ReportLine:
    """One line of a JSONL report: a scored call, or a call that failed to score."""

    number: int
    data: dict

    @property
    def call(self) -> str:
        return str(self.data.get("call", ""))

    @property
    def failed(self) -> bool:
        return "error" in self.data


def read_report(path: Path) -> Iterator[ReportLine]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read the report ({getattr(exc, 'strerror', None) or exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}:{n}: not a JSON report line ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("call"), str):
            raise ReportError(f"{path}:{n}: not a report line (a JSON object with a 'call')")
        yield ReportLine(n, data)


def hotword_warning(line: ReportLine, profile: Profile) -> str | None:
    """Why a full score with `profile` could hear this call differently: other hot words for the recogniser."""
    inp = line.data.get("judge_input")
    if not isinstance(inp, dict) or "hotwords" not in inp:
        return None  # nothing to re-judge, or written before hot words were kept
    heard = tuple(inp["hotwords"])
    if heard == profile.hotwords:
        return None
    return (f"{line.call}: recognised with hot words {'、'.join(heard) or 'none'}, profile {profile.name} has "
            f"{'、'.join(profile.hotwords) or 'none'}; a full score may hear some words differently")


def version_warning(line: ReportLine, profile: Profile) -> str | None:
    """Why a call judged again under the profile name it was scored with may come out otherwise:
    the profile of that name says something else now (edited, or another file of that name)."""
    was = line.data.get("profile_version")
    if not was or not profile.version or was == profile.version or line.data.get("profile") != profile.name:
        return None
    return (f"{line.call}: profile {profile.name} ({profile.path.name}, version {profile.version}) is not "
            f"the version {was} it was scored with; its findings follow the profile as it is now")


def speakers_warning(line: ReportLine, profile: Profile) -> str | None:
    """A mixed-mono call's sides were decided partly from the words of the profile it was scored
    with (monitor.roles); judged again under another profile or version they stay as decided."""
    inp = line.data.get("judge_input")
    if not isinstance(inp, dict) or not any(isinstance(t, dict) and t.get("role_confidence") is not None
                                            for t in inp.get("transcripts", [])):
        return None
    was, version = line.data.get("profile"), line.data.get("profile_version")
    if was == profile.name and (not version or version == profile.version):
        return None
    return (f"{line.call}: a mixed-mono call whose speakers were decided with the words of profile {was}; "
            f"they are kept as they were: score the audio again to decide them with {profile.name}")


def levels_warning(line: ReportLine) -> str | None:
    """A stereo call scored before the talkers' levels were kept (Transcript.level_db): the hold rule
    cannot tell a neighbour's unreadable mumble on the agent's headset from the agent there."""
    inp = line.data.get("judge_input")
    if not isinstance(inp, dict):
        return None
    lines = [t for t in inp.get("transcripts", []) if isinstance(t, dict) and t.get("speech")]
    if not lines or any("level_db" in t or t.get("role_confidence") is not None for t in lines):
        return None
    return (f"{line.call}: scored before the talkers' levels were kept: a neighbour's unreadable words on the "
            "agent's channel still end a hold's silence here; score the audio again to judge them")


def rescore_call(line: ReportLine, profile: Profile) -> CallReport:
    """The call of a report line judged against `profile`; its metadata is kept."""
    try:
        inp = JudgeInput.from_dict(line.data.get("judge_input"))
    except JudgeInputError as exc:
        raise ReportError(f"line {line.number} ({line.call}): {exc}") from None
    report = judged_report(line.call, profile, inp)
    meta = line.data.get("meta")
    if isinstance(meta, dict):
        report.meta = {str(k): str(v) for k, v in meta.items()}
    return report
