"""`monitor replay` as a desk: a TLS hub it trusts by --cafile, and a dead hub it says it cannot reach."""
import subprocess
import threading
import time

from tests.live_support import MONITOR, free_port, hub_alerts, hub_process
from tests.test_hub_support import make_cert


def test_a_desk_delivers_its_alerts_to_a_wss_hub_with_a_self_signed_certificate(tmp_path, samples_dir):
    cert, key = make_cert(tmp_path)
    with hub_process(tmp_path, tls=(cert, key)) as (wss_url, https, token):
        assert wss_url.startswith("wss://")
        token_file = tmp_path / "desk.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)  # not on the command line: /proc/PID/cmdline is world-readable
        r = subprocess.run(MONITOR + ["replay", str(samples_dir / "jingyi-rude.flac"), "--profile", "jingyi",
                                      "--hub", wss_url, "--token-file", str(token_file), "--desk", "d-tls",
                                      "--cafile", str(cert),
                                      "--spool", str(tmp_path / "desk.spool")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "warning" not in r.stderr, r.stderr
        alerts = hub_alerts(https, token, cafile=cert)
        # Without --cafile the certificate is not trusted: said, not delivered, exit 1.
        r2 = subprocess.run(MONITOR + ["replay", str(samples_dir / "jingyi-rude.flac"), "--profile", "jingyi",
                                       "--hub", wss_url, "--token", token, "--desk", "d-untrusted",
                                       "--spool", str(tmp_path / "other.spool")],
                            capture_output=True, text=True, timeout=300)
        after = hub_alerts(https, token, cafile=cert)
    assert sorted(a["rule"] for a in alerts) == ["forbidden", "greeting"]
    assert {a["desk"] for a in alerts} == {"d-tls"}
    assert r2.returncode == 1 and "certificate" in r2.stderr and "2 alert(s) not delivered" in r2.stderr
    assert "--token on the command line is visible to other users" in r2.stderr
    assert len(after) == len(alerts)


def test_a_desk_pointed_at_a_dead_hub_says_so_within_2_s_and_exits_non_zero_with_the_spooled_count(
        tmp_path, samples_dir):
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    proc = subprocess.Popen(MONITOR + ["replay", str(samples_dir / "jingyi-rude.flac"), "--profile", "jingyi",
                                       "--realtime", "--speed", "4", "--hub", dead, "--token", "t" * 20,
                                       "--desk", "d1", "--spool", str(tmp_path / "desk.spool")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    lines: list[str] = []

    def watch(stream, key, needle):
        for line in stream:
            lines.append(line)
            if needle in line and key not in seen:
                seen[key] = time.monotonic()

    readers = [threading.Thread(target=watch, args=(proc.stdout, "started", "replaying")),
               threading.Thread(target=watch, args=(proc.stderr, "problem", "unreachable"))]
    for t in readers:
        t.start()
    proc.wait(timeout=300)
    for t in readers:
        t.join()
    assert "started" in seen and "problem" in seen
    assert seen["problem"] - seen["started"] < 2.0  # (usually before: the hub is tried as the desk starts)
    assert proc.returncode == 1
    assert any("2 alert(s) not delivered to the hub" in line for line in lines), lines
