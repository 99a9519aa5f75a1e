"""`monitor score --ray`: a real local Ray cluster (a head and a second worker node of one CPU
each) scores dev calls and an unreadable file into exactly the report local scoring writes
(same violations, transcripts, order, and the failed file reported the same way)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
BIN = Path(sys.executable).parent
CALLS = ("dev-000.wav", "dev-001.flac", "dev-007.wav")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    ray = str(BIN / "ray")
    try:
        subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                        "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
                       check=True, capture_output=True, env=ray_env(), timeout=120)
        subprocess.run([ray, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                        "--disable-usage-stats"], check=True, capture_output=True, env=ray_env(), timeout=120)
        yield address
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=ray_env(), timeout=120)


def score(tmp_path: Path, corpus_dir: Path, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    labels = {c: json.loads((corpus_dir / (Path(c).stem + ".json")).read_text())["profile"] for c in CALLS}
    pmap = tmp_path / "profiles.json"
    pmap.write_text(json.dumps({Path(c).stem: p for c, p in labels.items()}))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    (tmp_path / name).mkdir()
    out = Path("report.jsonl")  # in its own folder: the summary line names it, the same for both
    files = [str(corpus_dir / CALLS[0]), str(bad), *(str(corpus_dir / c) for c in CALLS[1:])]
    res = subprocess.run([str(BIN / "monitor"), "score", *files, "--profile-map", str(pmap), "--out", str(out),
                          "--no-progress", *extra], capture_output=True, text=True, env=ray_env(), timeout=600,
                         cwd=tmp_path / name)
    return res, [json.loads(line) for line in (tmp_path / name / out).read_text().splitlines()]


def test_ray_scores_exactly_like_local(cluster: str, corpus_dir: Path, tmp_path: Path) -> None:
    local, local_rows = score(tmp_path, corpus_dir, "local", "--threads", "1")
    ray, ray_rows = score(tmp_path, corpus_dir, "ray", "--ray", cluster, "--ray-workers", "2", "--ray-cpus", "1")
    assert local.returncode == ray.returncode == 1, (local.stderr, ray.stderr)  # the broken file failed
    assert [r["call"] for r in ray_rows] == ["dev-000.wav", "broken.wav", "dev-001.flac", "dev-007.wav"]
    assert ray_rows == local_rows  # violations, transcripts, scores, the error row: all the same
    assert sum(len(r["violations"]) for r in ray_rows) > 0
    assert ray.stdout == local.stdout
    errors = [line for line in ray.stderr.splitlines() if line.startswith("monitor: error:")]
    assert errors == [line for line in local.stderr.splitlines() if line.startswith("monitor: error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0]


def test_a_cluster_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"")
    res = subprocess.run([str(BIN / "monitor"), "score", str(tmp_path / "x.wav"), "--ray", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, env=ray_env(), timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("monitor: error: ")
    wrong = subprocess.run([str(BIN / "monitor"), "score", str(tmp_path / "x.wav"), "--ray", "nohost"],
                           capture_output=True, text=True, env=ray_env(), timeout=60)
    assert wrong.returncode == 2 and "expected auto or HOST:PORT" in wrong.stderr
