"""The hub side of the supervisor's floor: transcripts, the board's desk state, named
acknowledgements with notes, history search and paging, the wording table."""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_hub_support import (
    CONSOLE_TOKEN,
    ROOT,
    body,
    console_ws,
    desk_ws,
    options,
    push,
    raw,
    recv_json,
    recv_type,
    run,
)

from monitor.hub.protocol import Alert, TranscriptLine
from monitor.hub.server import Hub
from monitor.hub.store import AlertQuery, AlertStore

SUP_TOKEN = "supervisor-li-token-00001"


def status(call_id: str | None, **kw: object) -> str:
    st: dict = {"state": "on_call", "call_id": call_id, "call_started": time.time(), "profile": "zte", **kw} \
        if call_id else {"state": "idle"}
    return json.dumps({"type": "status", "status": st})


def line(call_id: str, role: str, text: str, start: float = 1.0) -> str:
    return json.dumps({"type": "transcript", "line": {"call_id": call_id, "role": role, "start": start,
                                                      "end": start + 1, "text": text}})


def http(url: str, token: str = CONSOLE_TOKEN, method: str = "GET") -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def desk_frame(ws, desk: str, pred=lambda d: True, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = await recv_type(ws, "desk", max(0.05, deadline - time.monotonic()))
        if d["desk"] == desk and pred(d):
            return d


def test_transcript_lines_of_the_current_call_are_kept_shown_and_make_the_last_words(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            con = await console_ws(hub.url)
            await recv_type(con, "caught_up")
            d = await desk_ws(hub.url, "desk-1")
            await d.send(status("c1"))
            await desk_frame(con, "desk-1", lambda f: f["on_call"])
            await d.send(line("c1", "agent", "您好，中兴通讯！"))
            got = await recv_type(con, "transcript")
            assert (got["desk"], got["call_id"], got["role"], got["text"]) == ("desk-1", "c1", "agent", "您好，中兴通讯！")
            await d.send(line("c1", "caller", "我的号码是13912345678", start=3.0))
            assert (await recv_type(con, "transcript"))["text"] == "我的号码是139****5678"  # the hub masks too
            # Lines of a call the desk is not on, or a bad role: one clear error, not stored.
            await d.send(line("other", "agent", "x"))
            err = await recv_type(d, "error")
            assert err["code"] == "not_on_call"
            await d.send(json.dumps({"type": "transcript", "line": {"call_id": "c1", "role": "boss", "start": 0,
                                                                     "end": 1, "text": "x"}}))
            assert (await recv_type(d, "error"))["code"] == "bad_value"
            _, desks = await asyncio.to_thread(http, f"{hub.http_url}/api/desks")
            assert desks["desks"][0]["last_words"] == {"agent": "您好，中兴通讯！", "caller": "我的号码是139****5678"}
            _, tr = await asyncio.to_thread(http, f"{hub.http_url}/api/transcript?desk=desk-1")
            assert tr["call_id"] == "c1" and [x["role"] for x in tr["lines"]] == ["agent", "caller"]
            assert (await asyncio.to_thread(http, f"{hub.http_url}/api/transcript?desk=bad%20name"))[0] == 400
            assert (await asyncio.to_thread(http, f"{hub.http_url}/api/transcript?desk=desk-1", "wrong"))[0] == 401
            # A new call starts with no last words; the old transcript stays readable.
            await d.send(status("c2"))
            f = await desk_frame(con, "desk-1", lambda f: f["call_id"] == "c2")
            assert f["last_words"] == {}
            _, old = await asyncio.to_thread(http, f"{hub.http_url}/api/transcript?desk=desk-1&call_id=c1")
            assert len(old["lines"]) == 2
    run(go())


def test_a_hub_with_transcripts_off_says_so_and_refuses_lines(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path, transcripts="off")) as hub:
            ws = await raw(hub.url, {"type": "hello", "role": "desk", "token": "desk-token-for-tests-0001",
                                     "desk": "desk-1"})
            welcome = await recv_json(ws)
            assert welcome["transcripts"] is False and welcome["redact"] is True
            await ws.send(status("c1"))
            await ws.send(line("c1", "agent", "您好"))
            assert (await recv_type(ws, "error"))["code"] == "transcripts_off"
    run(go())


def test_transcripts_default_to_live_on_loopback_only() -> None:
    from monitor.hub.options import HubOptions

    assert HubOptions(host="127.0.0.1").transcripts_live
    assert not HubOptions(host="0.0.0.0").transcripts_live
    assert HubOptions(host="0.0.0.0", transcripts="live").transcripts_live


def test_the_board_marks_a_call_with_unacked_major_alerts_and_a_named_ack_with_a_note_clears_it(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path, console_names={SUP_TOKEN: "李娜"})) as hub:
            con = await raw(hub.url, {"type": "hello", "role": "console", "token": SUP_TOKEN, "name": "mallory"})
            await recv_type(con, "caught_up")
            d = await desk_ws(hub.url, "desk-1")
            # An alert that arrives before the status of its call still marks the call.
            assert (await push(d, "a:1", body(0, call_id="c1")))["type"] == "ack"
            await d.send(status("c1", score=85.0))
            f = await desk_frame(con, "desk-1", lambda f: f["on_call"])
            assert f["attention"] == 1 and f["score"] == 85.0
            await push(d, "a:2", body(1, call_id="c1", rule="greeting_company", severity="minor"))
            await push(d, "a:3", body(2, call_id="c1", rule="escalation_complaint", severity="escalation"))
            f = await desk_frame(con, "desk-1", lambda f: f["attention"] == 2)
            assert f["escalations"] == 1
            # Acknowledge with a note: the name comes from the token, not the hello.
            await con.send(json.dumps({"type": "ack_alert", "seq": 1, "note": "已提醒坐席"}))
            acked = await recv_type(con, "acked")
            assert (acked["seq"], acked["by"], acked["note"]) == (1, "李娜", "已提醒坐席")
            await desk_frame(con, "desk-1", lambda f: f["attention"] == 1)
            status_code, out = await asyncio.to_thread(http, f"{hub.http_url}/api/ack?seq=3&note=%E5%B7%B2%E5%9B%9E%E7%94%B5",
                                                       SUP_TOKEN, "POST")
            assert status_code == 200 and (out["by"], out["note"]) == ("李娜", "已回电")
            await desk_frame(con, "desk-1", lambda f: f["attention"] == 0)
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            by_seq = {a["seq"]: a for a in alerts["alerts"]}
            assert (by_seq[1]["acked_by"], by_seq[1]["ack_note"]) == ("李娜", "已提醒坐席")
            assert "acked_by" not in by_seq[2]
            # A note too long is refused with one clear error.
            await con.send(json.dumps({"type": "ack_alert", "seq": 2, "note": "x" * 501}))
            assert (await recv_type(con, "error"))["code"] == "too_long"
            # The plain console token still works, under the default name.
            plain = await console_ws(hub.url)
            await plain.send(json.dumps({"type": "ack_alert", "seq": 2}))
            assert (await recv_type(plain, "acked"))["by"] == "console"
    run(go())


def test_history_search_by_date_desk_rule_and_words_pages_beyond_the_newest_2000(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "hub.sqlite3", "normal")
    rows = [(f"desk-{i % 3}", Alert(desk="", call_id=f"c{i // 10}", rule=("forbidden", "greeting")[i % 2],
                                    start=0, end=1, emitted=1, text=f"第{i}句 {'投诉' if i % 7 == 0 else '好的'}",
                                    evidence="e", id=f"a{i}")) for i in range(2300)]
    store.insert_many(rows)
    seen: list[int] = []
    before = None
    while True:
        page, more = store.search(AlertQuery(before=before, limit=500))
        seen += [a.seq or 0 for a in page]
        if not more:
            break
        before = page[-1].seq
    assert seen == list(range(2300, 0, -1))  # every alert once, newest first, past 2,000
    hits, _ = store.search(AlertQuery(desk="desk-1", rule="greeting", words="投诉", limit=500))
    assert hits and all(a.desk == "desk-1" and a.rule == "greeting" and "投诉" in a.text for a in hits)
    assert len(hits) == sum(1 for i in range(2300) if i % 3 == 1 and i % 2 == 1 and i % 7 == 0)
    assert store.search(AlertQuery(words="%", limit=5))[0] == []  # words are data, not a pattern
    assert store.search(AlertQuery(until=time.time() - 3600))[0] == []
    store.close()

    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            base = f"{hub.http_url}/api/alerts"
            today = time.strftime("%Y-%m-%d")
            code, res = await asyncio.to_thread(http, f"{base}?from={today}&desk=desk-2&q=%E6%8A%95%E8%AF%89&limit=50")
            assert code == 200 and res["alerts"] and all(a["desk"] == "desk-2" for a in res["alerts"])
            code, res = await asyncio.to_thread(http, f"{base}?before=2001&limit=500")
            assert [a["seq"] for a in res["alerts"]] == list(range(2000, 1500, -1)) and res["next_before"] == 1501
            for bad in ("from=yesterday", "before=-1", "limit=0&desk=x", f"q={'x' * 101}"):
                code, res = await asyncio.to_thread(http, f"{base}?{bad}")
                assert code == 400 and "bad search parameter" in res["error"], bad
            code, _ = await asyncio.to_thread(http, f"{base}?desk=desk-1", "wrong-token")
            assert code == 401
    run(go())


def test_a_mono_desks_alert_keeps_how_sure_its_line_is_the_agents_across_a_restart(tmp_path: Path) -> None:
    """Also in a database written before the column existed (it is added at open)."""
    import sqlite3

    path = tmp_path / "hub.sqlite3"
    store = AlertStore(path, "normal")
    store.insert_many([("d", Alert(desk="", call_id="c1", rule="closing", start=0, end=1, emitted=1, text="好的",
                                   evidence="e", id="a1"))])
    store.close()
    db = sqlite3.connect(path)  # as an older hub left it
    db.execute("ALTER TABLE alerts DROP COLUMN role_confidence")
    db.commit()
    db.close()
    store = AlertStore(path, "normal")
    store.insert_many([("d", Alert(desk="", call_id="c2", rule="forbidden", start=3, end=4, emitted=4, text="不可能",
                                   evidence="e", phrase="不可能", id="a2", role_confidence=0.93))])
    store.close()
    store = AlertStore(path, "normal")
    found, _ = store.search(AlertQuery(limit=10))
    assert {a.call_id: a.role_confidence for a in found} == {"c1": None, "c2": 0.93}
    store.close()


def test_old_transcripts_are_pruned_with_the_alerts(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "hub.sqlite3", "normal")
    now = time.time()
    store.add_transcript(TranscriptLine("c1", "agent", 0, 1, "旧的", desk="d", received=now - 10 * 86400))
    store.add_transcript(TranscriptLine("c2", "agent", 0, 1, "新的", desk="d", received=now))
    assert store.prune_transcripts(now - 7 * 86400) == 1
    assert store.transcript("d", "c1") == [] and [x.text for x in store.transcript("d", "c2")] == ["新的"]
    store.close()


def test_the_wording_table_names_every_rule_in_both_languages(tmp_path: Path) -> None:
    from monitor import labels
    from monitor.rules.engine import ALL_RULES

    emitted = {r for r in ALL_RULES if r != "escalation"} | {"escalation_complaint", "escalation_supervisor",
                                                              "greeting_company", "hold_return", "closing_offer"}
    assert emitted <= set(labels.RULES)
    assert all(re.compile(p) for p, _ in labels.EVIDENCE)
    assert labels.evidence("agent said “你找领导去”: exact") == "坐席说了“你找领导去”（完全一致）"
    assert labels.evidence("agent said “你找领导去”: exact", "en") == "agent said “你找领导去”: exact"
    assert labels.evidence("something new") == "something new"

    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            def get() -> dict:
                with urllib.request.urlopen(f"{hub.http_url}/api/labels", timeout=5) as r:  # no token needed
                    return json.loads(r.read())
            table = await asyncio.to_thread(get)
            assert table["rules"]["forbidden"] == {"zh": "服务忌语", "en": "forbidden phrase"}
    run(go())


def test_the_terminal_console_acknowledges_with_a_note(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path, console_names={SUP_TOKEN: "zhang"})) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(0))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.hub", "console", "--url", hub.url, "--token", SUP_TOKEN,
                "--ack", "1", "--note", "已处理", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert "#1 acked by zhang" in out.decode() and "已处理" in out.decode()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.hub", "console", "--url", hub.url, "--token", SUP_TOKEN,
                "--ack", "99", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 1 and "no alert with seq 99" in err.decode()
    run(go(), 60)


@pytest.mark.parametrize("args, names", [
    (["--console-token", "wang=token-of-wang-000001", "--console-token", "li=token-of-li-00000001"],
     {"token-of-wang-000001": "wang", "token-of-li-00000001": "li"}),
])
def test_console_tokens_name_their_supervisors_on_the_command_line(args: list[str], names: dict) -> None:
    import argparse

    from monitor.hub.cli import add_hub_commands, options_from_args, resolve_tokens

    parser = argparse.ArgumentParser()
    add_hub_commands(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["hub", "--token", "desk-token-000000001", *args])
    resolve_tokens(ns, [])
    assert options_from_args(ns).console_names == names


def test_a_console_token_file_names_one_supervisor_a_line(tmp_path: Path) -> None:
    import argparse

    from monitor.hub.cli import TokenError, add_hub_commands, options_from_args, resolve_tokens

    f = tmp_path / "supervisors.tokens"
    f.write_text("# one per supervisor\n王芳=token-of-wang-000001\n\nli=token-of-li-00000001\n")
    f.chmod(0o600)
    parser = argparse.ArgumentParser()
    add_hub_commands(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["hub", "--token", "desk-token-000000001", "--console-token-file", str(f)])
    warnings: list[str] = []
    resolve_tokens(ns, warnings)
    opts = options_from_args(ns)
    assert opts.console_names == {"token-of-wang-000001": "王芳", "token-of-li-00000001": "li"}
    assert opts.console_token is None and not any("console" in w for w in warnings)
    # the desks' shared token is no console token once the supervisors have their own
    desks, consoles = opts.resolved_tokens()
    assert "desk-token-000000001" in desks and consoles == {"token-of-wang-000001", "token-of-li-00000001"}
    ns = parser.parse_args(["hub", "--token", "desk-token-000000001", "--console-token", "aaaaaaaaaaaaaaaa1",
                            "--console-token", "bbbbbbbbbbbbbbbbbb2"])
    with pytest.raises(TokenError, match="more than one unnamed console token"):
        resolve_tokens(ns, [])


def test_a_desk_sends_transcript_lines_only_to_a_hub_that_takes_them(tmp_path: Path) -> None:
    from monitor.hub.desk_client import DeskClient

    async def one(transcripts: str) -> tuple[bool, list[dict]]:
        async with Hub(options(tmp_path / transcripts, transcripts=transcripts)) as hub:
            con = await console_ws(hub.url)
            await recv_type(con, "caught_up")
            async with DeskClient(hub.url, "desk-token-for-tests-0001", "desk-1", tmp_path / f"{transcripts}.spool",
                                  backoff_min=0.05) as client:
                while not client.connected:
                    await asyncio.sleep(0.02)
                await client.call_started("c1", time.time(), "zte")
                sent = client.transcript(TranscriptLine("c1", "caller", 1.0, 2.0, "卡号6222020200112233445"))
                got = []
                try:
                    while True:
                        f = await recv_json(con, 1.0)
                        if f["type"] == "transcript":
                            got.append(f)
                except TimeoutError:
                    pass
                return sent, got

    sent, got = run(one("live"))
    assert sent and [g["text"] for g in got] == ["卡号6222***********3445"]
    sent, got = run(one("off"))
    assert not sent and got == []
