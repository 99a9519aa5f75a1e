"""Re-scoring from a report's saved transcripts equals a full score with the same (or an edited) profile."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.phrasebook import load_profile
from monitor.pipeline import score_call
from monitor.rescore import ReportLine, rescore_call

REPO = Path(__file__).resolve().parents[1]


def monitor(*args):
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=REPO, timeout=300)


def edited_zte(tmp: Path) -> Path:
    """A QA lead's change: 我没空 is no longer a 服务忌语, 听不清 is one (a copied and edited profile)."""
    text = (REPO / "phrasebook" / "zte.toml").read_text(encoding="utf-8")
    removed = '[[forbidden]]\nphrase = "我没空"\nseed = "000 §8 服务忌语 3"\n\n'
    assert removed in text
    text = text.replace(removed, "") + '\n[[forbidden]]\nphrase = "听不清"\nseed = "QA 试行: 说“请您再说一遍”"\n'
    path = tmp / "zte-edited.toml"
    path.write_text(text, encoding="utf-8")
    return path


def as_line(report, n=1) -> ReportLine:
    return ReportLine(n, json.loads(json.dumps(report.to_dict(), ensure_ascii=False)))  # through JSON, as on disk


@pytest.fixture(scope="module")
def report_file(scored_dev_subset, tmp_path_factory):
    path = tmp_path_factory.mktemp("rescore") / "report.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for r, _ in scored_dev_subset.values():
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    return path


def test_rescore_with_the_same_profile_gives_the_same_report(scored_dev_subset):
    for cid, (r, labels) in scored_dev_subset.items():
        again = rescore_call(as_line(r), load_profile(labels["profile"]))
        assert again.to_dict() == json.loads(json.dumps(r.to_dict(), ensure_ascii=False)), cid


def test_rescore_with_an_edited_profile_equals_a_full_score_with_it(scored_dev_subset, whisper_factory, tmp_path):
    edited = load_profile(edited_zte(tmp_path))
    shipped = load_profile("zte")
    assert edited.hotwords == shipped.hotwords  # the recogniser hears the same either way
    changed = set()
    for cid, (r, _) in scored_dev_subset.items():
        if cid not in ("dev-001", "dev-009", "dev-016", "dev-017"):  # the zte calls the edit changes, and a hold
            continue
        full = score_call(Path(r.path), edited, whisper_factory(edited.hotwords))
        re = rescore_call(as_line(r), edited)
        assert [v.to_dict() for v in re.violations] == [v.to_dict() for v in full.violations], cid
        assert (re.score, re.not_judged, re.hangup_evidence) == (full.score, full.not_judged, full.hangup_evidence)
        if re.violations != r.violations:
            changed.add(cid)
        phrases = {v.phrase for v in re.violations}
        assert "我没空" not in phrases
    # The edit matters in this subset: 我没空 (dev-009, dev-017) is gone, 听不清 (dev-001) is new.
    assert {"dev-001", "dev-009", "dev-017"} <= changed


def test_rescore_command_applies_an_edited_profile_in_seconds(report_file, scored_dev_subset, tmp_path):
    edited = edited_zte(tmp_path)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({cid: str(edited) if labels["profile"] == "zte" else labels["profile"]
                                   for cid, (_, labels) in scored_dev_subset.items()}))
    t0 = time.perf_counter()
    r = monitor("rescore", report_file, "--profile-map", mapping, "--out", tmp_path / "new.jsonl",
                "--csv", tmp_path / "new.csv", "-q")
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert elapsed < 5.0  # interpreter start included; no model is loaded
    assert "re-scored 6 call(s)" in r.stdout
    new = {d["call"]: d for d in map(json.loads, (tmp_path / "new.jsonl").read_text(encoding="utf-8").splitlines())}
    old = {d["call"]: d for d in map(json.loads, report_file.read_text(encoding="utf-8").splitlines())}
    assert new.keys() == old.keys()
    assert "听不清" in {v.get("phrase") for v in new["dev-001.flac"]["violations"]}
    assert new["dev-002.wav"]["violations"] == old["dev-002.wav"]["violations"]  # unicom: untouched
    assert (tmp_path / "new-calls.csv").exists() and (tmp_path / "new-violations.csv").exists()
    # and the re-scored report can be re-scored again (it keeps what the rules need)
    r2 = monitor("rescore", tmp_path / "new.jsonl", "--profile-map", mapping, "--out", tmp_path / "again.jsonl", "-q")
    assert r2.returncode == 0, r2.stderr
    assert (tmp_path / "again.jsonl").read_text(encoding="utf-8") == (tmp_path / "new.jsonl").read_text(encoding="utf-8")


def test_evaluate_still_reads_the_report(report_file, corpus_dir):
    evaluate = corpus_dir.parents[1] / "tools" / "evaluate.py"
    ev = subprocess.run([sys.executable, str(evaluate), str(corpus_dir), str(report_file), "--json"],
                        capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["micro"]["f1"] > 0


def test_a_report_without_saved_transcripts_is_one_clear_error(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"call": "a.wav", "score": 100, "violations": [], "transcript": []}) + "\n")
    r = monitor("rescore", old, "--profile", "zte")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "older monitor" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("content, expected", [
    ("{not json\n", "old.jsonl:1: not a JSON report line"),
    ("[1, 2]\n", "old.jsonl:1: not a report line"),
    ("", "the report has no calls"),
])
def test_a_bad_report_is_one_clear_error(tmp_path, content, expected):
    (tmp_path / "old.jsonl").write_text(content)
    r = monitor("rescore", tmp_path / "old.jsonl")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and expected in r.stderr, r.stderr


def test_a_missing_report_or_profile_is_one_clear_error(tmp_path):
    r = monitor("rescore", tmp_path / "nope.jsonl")
    assert r.returncode == 2 and r.stderr.startswith("monitor: error:") and "cannot read the report" in r.stderr
    (tmp_path / "r.jsonl").write_text('{"call": "a.wav", "violations": []}\n')
    r = monitor("rescore", tmp_path / "r.jsonl", "--profile", "nokia")
    assert r.returncode == 2 and "known: broadband, jingyi, unicom, zte" in r.stderr


def test_calls_that_failed_to_score_are_passed_on(report_file, tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(report_file.read_text(encoding="utf-8").splitlines()[0] + "\n"
                     + json.dumps({"call": "broken.wav", "error": "broken.wav: not audio", "violations": []}) + "\n",
                     encoding="utf-8")
    r = monitor("rescore", mixed, "--out", tmp_path / "out.jsonl", "-q")
    assert r.returncode == 1
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["call"] for d in lines] == ["dev-001.flac", "broken.wav"] and lines[1]["error"]


def test_a_truncated_recording_stays_unjudged_for_its_end_when_rescored():
    import dataclasses

    from tests.qa_support import RUDE, scripted_report

    r = scripted_report("cut.wav", RUDE, 12.0, hangup_by="agent")
    assert "hangup" in {v.rule for v in r.violations}
    cut = dataclasses.replace(r.judge_input, truncated=True, note="cut.wav: ends early")
    line = ReportLine(1, {"call": "cut.wav", "judge_input": cut.to_dict()})
    again = rescore_call(line, load_profile("zte"))
    assert again.not_judged == ["closing", "hangup"]
    assert not {"hangup", "closing"} & {v.rule for v in again.violations}
    assert again.truncated and again.note == "cut.wav: ends early"


def test_a_mono_calls_role_confidence_survives_the_report():
    """Rescoring a mono call must keep which lines were given to the agent without confidence,
    or it would raise forbidden alerts that `score` withheld."""
    from monitor.events import Transcript
    from monitor.judge_input import JudgeInput

    unsure = Transcript(role="agent", start=3.0, end=4.5, text="我不知道", speech=True, role_confidence=0.55)
    sure = Transcript(role="caller", start=5.0, end=6.0, text="好的", speech=True)
    ji = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=(), transcripts=[unsure, sure],
                    confirmed_tones=[], tones=[], events=[], duration=10.0)
    back = JudgeInput.from_dict(json.loads(json.dumps(ji.to_dict())))
    assert [t.role_confidence for t in back.transcripts] == [0.55, None]


def test_rescoring_a_report_in_place_with_a_profile_that_cannot_be_found_leaves_it_whole(report_file, tmp_path):
    """The report was made with a profile file the QA lead did not name again: `rescore` said 'no
    profile named …' after truncating --out, here the report itself, so its transcripts were lost."""
    report = tmp_path / "week.jsonl"
    rows = [json.loads(x) for x in report_file.read_text(encoding="utf-8").splitlines()]
    rows[-1]["profile"] = "acme"  # scored with acme.toml, a file only its author has
    report.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    before = report.read_bytes()
    r = monitor("rescore", report, "--out", report)
    assert r.returncode == 2 and "no profile named 'acme'" in r.stderr and "nothing was written" in r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert report.read_bytes() == before and list(tmp_path.iterdir()) == [report]
    # named, the same run rewrites the report in place, whole
    r = monitor("rescore", report, "--profile", "zte", "--out", report)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["call"] for x in report.read_text(encoding="utf-8").splitlines()] == [x["call"] for x in rows]
    assert list(tmp_path.iterdir()) == [report]


def test_rescoring_under_a_profile_name_whose_file_changed_since_says_so(report_file, tmp_path):
    """A QA lead's my-zte.toml kept name = "zte": rescored without naming it, the built-in zte
    judged the calls again and 我没空 came back, without a word. Each report row carries the
    version of the profile that judged it; rescore says when the profile of that name differs."""
    rows = [json.loads(x) for x in report_file.read_text(encoding="utf-8").splitlines()]
    zte = load_profile("zte")
    assert {r["profile_version"] for r in rows if r["profile"] == "zte"} == {zte.version}
    for r in rows:
        if r["profile"] == "zte":
            r["profile_version"] = "0123456789ab"  # judged by an edited copy named zte
    report = tmp_path / "week.jsonl"
    report.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    n = sum(r["profile"] == "zte" for r in rows)
    r = monitor("rescore", report, "--out", tmp_path / "again.jsonl", "--csv", tmp_path / "again.csv", "-q")
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stderr.splitlines() if "it was scored with" in x]
    assert len(said) == 1 and "is not the version 0123456789ab" in said[0] and f"(and {n - 1} more call(s))" in said[0]
    assert f"zte.toml, version {zte.version}" in said[0]
    assert f",zte,{zte.version}," in (tmp_path / "again-calls.csv").read_text(encoding="utf-8-sig")
    # naming the profile is the QA lead's choice: nothing to warn about
    r = monitor("rescore", report, "--profile", "zte", "--out", tmp_path / "named.jsonl", "-q")
    assert r.returncode == 0 and "it was scored with" not in r.stderr


def test_a_profiles_version_follows_what_it_says_not_its_comments(tmp_path):
    text = (REPO / "phrasebook" / "zte.toml").read_text(encoding="utf-8")
    (tmp_path / "commented.toml").write_text("# our copy\n" + text.replace("\n\n", "\n\n\n"), encoding="utf-8")
    assert load_profile(tmp_path / "commented.toml").version == load_profile("zte").version
    assert load_profile(edited_zte(tmp_path)).version != load_profile("zte").version


def test_rescoring_a_mono_call_under_another_profile_says_its_speakers_stay_as_decided(tmp_path):
    """A mixed-mono call's sides were decided partly from the profile's words (monitor.roles): a QA
    lead rescoring it under another profile is told they are kept, and how to decide them again."""
    from monitor.events import Transcript
    from monitor.judge_input import JudgeInput

    lines = [Transcript(role="agent", start=0.5, end=2.0, text="您好，中兴通讯！", role_confidence=0.99),
             Transcript(role="caller", start=2.5, end=4.0, text="我不知道，你问我我问谁啊？", role_confidence=0.62)]
    ji = JudgeInput(roles=("agent", "caller"), direction="inbound", rules=(), transcripts=lines,
                    confirmed_tones=[], tones=[], events=[], duration=10.0)
    row = {"call": "mono.wav", "profile": "unicom", "score": 100.0, "violations": [], "judge_input": ji.to_dict()}
    report = tmp_path / "mono.jsonl"
    report.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    r = monitor("rescore", report, "--profile", "zte", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "mixed-mono call whose speakers were decided with the words of profile unicom" in r.stderr
    assert "score the audio again" in r.stderr
    r = monitor("rescore", report, "--profile", "unicom", "--quiet")
    assert r.returncode == 0 and "speakers" not in r.stderr


def test_rescoring_a_report_written_before_levels_were_kept_says_what_it_cannot_judge(report_file, tmp_path):
    """Such a report still rescores, but the hold rule cannot tell a neighbour's mumble there."""
    old = tmp_path / "old.jsonl"
    rows = [json.loads(x) for x in report_file.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        for t in row["judge_input"]["transcripts"]:
            t.pop("level_db", None)
    old.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    r = monitor("rescore", old, "-q")
    assert r.returncode == 0, r.stderr
    assert "scored before the talkers' levels were kept" in r.stderr and "(and 5 more call(s))" in r.stderr
    assert "levels were kept" not in monitor("rescore", report_file, "-q").stderr
