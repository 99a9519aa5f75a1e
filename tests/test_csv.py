"""The two spreadsheets: one row per call (score, metadata, metrics), one per violation (deduction, seed)."""
import csv
import io
import subprocess
import sys
from pathlib import Path

from monitor.csv_report import csv_paths, write_csvs
from tests.qa_support import week

REPO = Path(__file__).resolve().parents[1]


def read(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def test_calls_csv_has_one_row_per_call_with_score_and_metadata(tmp_path):
    _, rows = week(tmp_path)
    calls, _ = write_csvs(tmp_path / "out.csv", rows)
    assert calls == tmp_path / "out-calls.csv"
    got = read(calls)
    assert [r["call"] for r in got] == [d["call"] for d in rows]
    for r, d in zip(got, rows, strict=True):
        assert float(r["score"]) == d["score"]
        assert int(r["violations"]) == len(d["violations"])
        assert float(r["deductions"]) == sum(v["deduction"] for v in d["violations"])
        assert abs(float(r["agent_talk_share"]) - d["metrics"]["agent_talk_share"]) < 1e-9
        for key in ("agent", "team", "date"):
            assert r[key] == d["meta"][key]
    # an extra metadata column is kept, empty where a call has none
    assert [r["queue"] for r in got] == ["宽带", "综合", ""]


def test_violations_csv_has_deduction_seed_and_no_repeated_call_score(tmp_path):
    _, rows = week(tmp_path)
    _, violations = write_csvs(tmp_path / "out.csv", rows)
    got = read(violations)
    assert len(got) == sum(len(d["violations"]) for d in rows)
    assert "score" not in got[0]
    first = rows[1]["violations"][0]
    assert got[0]["call"] == rows[1]["call"] and got[0]["agent"] == "张伟"
    assert got[0]["rule"] == first["rule"] and got[0]["rule_zh"] == "开场问候"
    assert float(got[0]["deduction"]) == first["deduction"] > 0
    assert got[0]["seed"] == first["seed"] and got[0]["seed"].startswith("000 §")
    forbidden = [r for r in got if r["rule"] == "forbidden"]
    assert {r["phrase"] for r in forbidden} == {"我也没办法", "我不管"}
    assert all(r["evidence_zh"].startswith("坐席说了") for r in forbidden)


def test_both_files_open_cleanly_in_excel_utf8_bom_and_crlf(tmp_path):
    _, rows = week(tmp_path)
    for path in write_csvs(tmp_path / "out.csv", rows):
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 Chinese only with the BOM
        assert raw.count(b"\r\n") == raw.count(b"\n")
        assert "王芳".encode() in raw or path.name.endswith("violations.csv")
        assert path.stat().st_mode & 0o077 == 0  # reports are private


def test_libreoffice_reads_the_calls_csv(tmp_path):
    """Converted headless by LibreOffice when it is installed: the Chinese survives."""
    import shutil

    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    _, rows = week(tmp_path)
    calls, _ = write_csvs(tmp_path / "out.csv", rows)
    if soffice is None:  # the Python csv module with Excel's dialect is the fallback check
        got = list(csv.reader(io.StringIO(calls.read_bytes().decode("utf-8-sig"), newline=""), dialect="excel"))
        assert got[1][2] == "王芳"
        return
    subprocess.run([soffice, "--headless", "--convert-to", "html", "--outdir", str(tmp_path), str(calls)],
                   capture_output=True, timeout=120, check=True)
    assert "王芳" in (tmp_path / "out-calls.html").read_text(encoding="utf-8", errors="replace")


def test_csv_paths_are_named_after_the_given_file():
    assert csv_paths(Path("out/week.csv")) == (Path("out/week-calls.csv"), Path("out/week-violations.csv"))
    assert csv_paths(Path("week")) == (Path("week-calls.csv"), Path("week-violations.csv"))


def test_report_command_writes_both_csvs_from_a_jsonl(tmp_path):
    path, rows = week(tmp_path)
    exe = REPO / ".venv" / "bin" / "monitor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor.cli"]
    r = subprocess.run(cmd + ["report", str(path), "--csv", str(tmp_path / "w.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(read(tmp_path / "w-calls.csv")) == 3
    assert len(read(tmp_path / "w-violations.csv")) == sum(len(d["violations"]) for d in rows)
    r = subprocess.run(cmd + ["report", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--html" in r.stderr


def test_a_file_name_or_metadata_that_looks_like_a_formula_stays_text_in_the_spreadsheet(tmp_path):
    """A recorder's file name or a --meta value "=HYPERLINK(…)" must not act in the QA lead's Excel."""
    _, rows = week(tmp_path)
    rows[0] = {**rows[0], "call": "=HYPERLINK(\"http://x\",\"ok\").wav", "meta": {**rows[0]["meta"], "agent": "@SUM(1)"}}
    calls, violations = write_csvs(tmp_path / "out.csv", rows)
    got = read(calls)
    assert got[0]["call"] == "'=HYPERLINK(\"http://x\",\"ok\").wav" and got[0]["agent"] == "'@SUM(1)"
    assert all(r["call"].startswith("'=") for r in read(violations) if "HYPERLINK" in r["call"])
    assert got[1]["call"] == rows[1]["call"] and float(got[0]["score"]) == rows[0]["score"]
