"""`monitor hub --config hub.toml`: every hub option from a TOML file, the command line wins,
unknown keys and bad values are one error line naming file and line."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.hub.cli import add_hub_commands, apply_config, options_from_args, resolve_tokens
from monitor.hub.options import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MONITOR = str(Path(sys.executable).parent / "monitor")
EXAMPLE = ROOT / "deploy" / "hub.toml.example"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_hub_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["hub", *argv])


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "hub.toml"
    f.write_text(text, encoding="utf-8")
    f.chmod(0o600)
    return f


def test_the_example_file_sets_every_option_it_names() -> None:
    ns = parse("--config", str(EXAMPLE))
    apply_config(ns)
    o = options_from_args(ns)
    assert (o.host, o.port, o.db) == ("0.0.0.0", 8765, Path("/var/lib/call-monitor/hub.sqlite3"))
    assert o.certfile == Path("/etc/call-monitor/hub.pem") and o.keyfile == Path("/etc/call-monitor/hub.key")
    assert ns.token_file == Path("/run/credentials/call-monitor-hub.service/desk.token")
    assert ns.metrics_token_file == Path("/run/credentials/call-monitor-hub.service/metrics.token")
    assert o.retain_days == 90 and o.transcripts == "off" and o.redact is True and o.sync == "full"
    assert o.desk_bytes_per_day == 200 * 1024 * 1024 and ns.log_level == "info"


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    f = write(tmp_path, 'port = 9000\nhost = "127.0.0.2"\nqueue-size = 50\nallow_origin = ["https://wall.example"]\n'
                        'desk-token = ["d1=token-of-desk-one-0001"]\nredact = false\nlog-level = "debug"\n')
    ns = parse("--config", str(f), "--port", "9100", "--log-level", "warning",
               "--allow-origin", "https://other.example", "--token", "desk-token-000000001")
    apply_config(ns)
    warnings: list[str] = []
    resolve_tokens(ns, warnings)
    o = options_from_args(ns)
    assert o.port == 9100 and ns.log_level == "warning"  # given on the command line
    assert o.host == "127.0.0.2" and o.queue_size == 50 and o.redact is False  # from the file
    assert o.allowed_origins == ("https://other.example",)  # a list flag replaces the file's list
    assert o.desk_tokens["token-of-desk-one-0001"] == "d1"
    # the file's desk token is not "on the command line"; the real --token is
    assert not any("--desk-token" in w for w in warnings)
    assert any("--token on the command line" in w for w in warnings)


@pytest.mark.parametrize("text,message", [
    ('port = 8765\nprot = 1\n', "hub.toml:2: prot: unknown option (did you mean port?)"),
    ('\n\nport = "eighty"\n', "hub.toml:3: port: "),
    ('port = 70000\n', "hub.toml:1: port: "),
    ('sync = "sometimes"\n', "hub.toml:1: sync: 'sometimes' is not one of normal, full"),
    ('host = ["a", "b"]\n', "hub.toml:1: host: takes one value, not a list"),
    ('host = 5\n', "hub.toml:1: host: expected text"),
    ('[hub]\nport = 1\n', "hub.toml:1: hub: unknown option"),
    ('[host]\nport = 1\n', "hub.toml:1: host: a table is not an option"),
    ('config = "other.toml"\n', "hub.toml:1: config: unknown option"),
    ('log-level = "loud"\n', "hub.toml:1: log-level: invalid log level 'loud'"),
    ('port = = 3\n', "hub.toml:1: TOML syntax error"),
])
def test_bad_files_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    ns = parse("--config", str(write(tmp_path, text)))
    with pytest.raises(ConfigError) as err:
        apply_config(ns)
    assert str(err.value).startswith(str(tmp_path / message)), str(err.value)


def test_the_cli_says_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    f = write(tmp_path, 'port = 8765\nwhat = 1\n')
    res = subprocess.run([MONITOR, "hub", "--config", str(f)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [f"monitor hub: error: {f}:2: what: unknown option"]
    res = subprocess.run([MONITOR, "hub", "--config", str(tmp_path / "none.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "cannot read the config file" in res.stderr


def test_a_config_file_holding_tokens_must_be_private(tmp_path: Path) -> None:
    f = write(tmp_path, f'token = "desk-token-000000001"\nport = 0\ndb = "{tmp_path / "hub.sqlite3"}"\n')
    f.chmod(0o644)
    ns = parse("--config", str(f))
    apply_config(ns)
    warnings: list[str] = []
    resolve_tokens(ns, warnings)
    assert ns.token == "desk-token-000000001" and warnings == []  # not a command-line token
    proc = subprocess.Popen([MONITOR, "hub", "--config", str(f)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        while "readable by other users" not in line and "listening" not in line and line:
            line = proc.stderr.readline() if proc.stderr else ""
        assert "listening" in line or "readable by other users" in line
        out = line
        while "readable by other users" not in out and line:
            line = proc.stderr.readline() if proc.stderr else ""
            out += line
        assert f"{f} holds tokens and is readable by other users" in out
    finally:
        proc.terminate()
        proc.wait(timeout=10)
