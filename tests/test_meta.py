"""Call metadata from a CSV or the file name, carried into every report row."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.meta import MetaError, MetaSource, NamePattern, read_meta_csv
from tests.qa_support import week

REPO = Path(__file__).resolve().parents[1]


def monitor(*args):
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_a_name_pattern_reads_fields_from_file_names():
    p = NamePattern.parse("{date}_{agent}_{callid}.wav")
    assert p.match(Path("/x/2026-11-16_王芳_0001.wav")) == {"date": "2026-11-16", "agent": "王芳", "callid": "0001"}
    assert p.match(Path("2026-11-16_王芳_0001.flac")) is None  # the extension is part of this pattern
    q = NamePattern.parse("{team}-{agent}-{date}")  # no extension: any audio file
    assert q.match(Path("一组-李娜-20261117.flac")) == {"team": "一组", "agent": "李娜", "date": "20261117"}


def test_a_name_pattern_without_fields_or_with_a_field_twice_is_refused():
    with pytest.raises(MetaError, match="no {field}"):
        NamePattern.parse("calls.wav")
    with pytest.raises(MetaError, match="twice"):
        NamePattern.parse("{agent}_{agent}.wav")


def test_the_csv_wins_over_the_name_and_dates_are_normalised(tmp_path):
    (tmp_path / "calls.csv").write_text("file,agent,team,date,direction,profile,queue\n"
                                        "20261116_x_1.wav,王芳,一组,20261116,outbound,unicom,宽带\n",
                                        encoding="utf-8-sig")
    source = MetaSource(read_meta_csv(tmp_path / "calls.csv"), NamePattern.parse("{date}_{agent}_{callid}"))
    meta, warning = source.for_call(Path("20261116_x_1.wav"))
    assert warning is None
    assert meta == {"date": "2026-11-16", "agent": "王芳", "callid": "1", "team": "一组", "direction": "outbound",
                    "profile": "unicom", "queue": "宽带"}
    meta, warning = source.for_call(Path("other.wav"))
    assert meta == {} and "does not match --name-pattern" in warning and "is not in" in warning


def test_a_csv_saved_by_excel_in_a_chinese_locale_gbk_is_read(tmp_path):
    (tmp_path / "calls.csv").write_bytes("file,agent\r\na.wav,王芳\r\n".encode("gb18030"))
    assert read_meta_csv(tmp_path / "calls.csv").rows == {"a": {"agent": "王芳"}}


@pytest.mark.parametrize("text, expected", [
    ("name,agent\na.wav,x\n", "needs a 'file' column"),
    ("file,date\na.wav,2026-13-01\n", ":2: date '2026-13-01' is not a YYYY-MM-DD date"),
    ("file,direction\na.wav,sideways\n", ":2: direction 'sideways' is not inbound or outbound"),
    ("file,agent\na.wav,x\na.wav,y\n", ":3: a.wav is listed twice"),
    ("file,agent\n,x\n", ":2: empty 'file'"),
])
def test_bad_metadata_names_the_row(tmp_path, text, expected):
    (tmp_path / "calls.csv").write_text(text, encoding="utf-8")
    with pytest.raises(MetaError, match=None) as exc:
        read_meta_csv(tmp_path / "calls.csv")
    assert expected in str(exc.value)


def test_score_with_bad_metadata_stops_with_one_line_before_any_scoring(tmp_path, samples_dir):
    (tmp_path / "calls.csv").write_text("file,date\ndemo-zte.flac,next week\n", encoding="utf-8")
    r = monitor("score", samples_dir / "demo-zte.flac", "--meta", tmp_path / "calls.csv")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("monitor: error: ") and "calls.csv:2: date 'next week'" in r.stderr
    r = monitor("score", samples_dir / "demo-zte.flac", "--meta", tmp_path / "missing.csv")
    assert r.returncode == 2 and "cannot read the metadata file" in r.stderr


def test_score_carries_metadata_into_every_row_and_takes_profile_and_direction_from_it(tmp_path, samples_dir):
    shutil.copy(samples_dir / "jingyi-rude.flac", tmp_path / "2026-11-16_李娜_0042.flac")
    (tmp_path / "calls.csv").write_text("file,team,profile,direction,shift\n"
                                        "2026-11-16_李娜_0042.flac,二组,jingyi,inbound,早班\n", encoding="utf-8")
    r = monitor("score", tmp_path / "2026-11-16_李娜_0042.flac", "--profile", "zte", "--meta", tmp_path / "calls.csv",
                "--name-pattern", "{date}_{agent}_{callid}.flac", "--out", tmp_path / "r.jsonl",
                "--csv", tmp_path / "r.csv")
    assert r.returncode == 0, r.stderr
    (d,) = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()]
    assert d["meta"] == {"date": "2026-11-16", "agent": "李娜", "callid": "0042", "team": "二组",
                         "profile": "jingyi", "direction": "inbound", "shift": "早班"}
    assert d["profile"] == "jingyi"  # the metadata's profile, not --profile
    assert {v["rule"] for v in d["violations"]} == {"greeting", "forbidden"}
    calls = (tmp_path / "r-calls.csv").read_text(encoding="utf-8-sig")
    assert "李娜" in calls and "早班" in calls
    violations = (tmp_path / "r-violations.csv").read_text(encoding="utf-8-sig").splitlines()
    assert all("李娜" in row for row in violations[1:]) and len(violations) == 1 + len(d["violations"])


def test_rescore_keeps_metadata_and_can_add_it_from_the_names(tmp_path):
    path, rows = week(tmp_path)
    r = monitor("rescore", path, "--name-pattern", "{date}_{agent}_{callid}.wav", "--out", tmp_path / "new.jsonl",
                "-q")
    assert r.returncode == 0, r.stderr
    new = [json.loads(x) for x in (tmp_path / "new.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["meta"]["callid"] for d in new] == ["001", "002", "003"]
    assert [d["meta"]["team"] for d in new] == ["一组", "二组", "一组"]  # kept from the report
    assert [d["violations"] for d in new] == [d["violations"] for d in rows]
