"""A desk takes back an alert the call's final judgement does not hold: the hub stores it once,
every console learns it (live and on resume), the board's count drops, nobody else's alert can
be taken back."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_board_hub import SUP_TOKEN, desk_frame, http, status
from test_hub_metrics import scrape, values
from test_hub_support import body, console_ws, desk_ws, free_port, options, push, raw, recv_json, recv_type, run

from monitor.hub.desk_client import DeskClient
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)
WHY = "caller_line"


def withdraw(wid: str, alert_id: str, reason: str = WHY) -> str:
    return json.dumps({"type": "withdraw", "id": wid, "alert": alert_id, "reason": reason})


def test_a_withdrawn_alert_is_marked_on_every_console_and_leaves_the_boards_count(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            con = await console_ws(hub.url)
            await recv_type(con, "caught_up")
            d = await desk_ws(hub.url, "desk-1")
            await d.send(status("c1"))
            assert (await push(d, "a:1", body(0, call_id="c1")))["seq"] == 1
            await desk_frame(con, "desk-1", lambda f: f["attention"] == 1)
            await d.send(withdraw("w:1", "a:1"))
            assert await recv_json(d) == {"type": "ack", "id": "w:1", "seq": 1, "duplicate": False}
            acked = await recv_type(con, "acked")
            assert (acked["seq"], acked["by"], acked["withdrawn"]) == (1, "", WHY)  # no one acknowledged it
            await desk_frame(con, "desk-1", lambda f: f["attention"] == 0)
            # A resend after a lost ack changes nothing and is acked again.
            await d.send(withdraw("w:1", "a:1"))
            assert (await recv_json(d))["duplicate"] is True
            # History and a console that resumes from the start both see it withdrawn.
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            assert alerts["alerts"][0]["withdrawn"] == WHY
            late = await console_ws(hub.url)
            assert (await recv_type(late, "alert"))["withdrawn"] == WHY
            _, text = await asyncio.to_thread(scrape, hub.http_url)
            assert values(text)["monitor_hub_alerts_withdrawn_total"] == 1.0
    run(go())


def test_a_desk_cannot_withdraw_another_desks_alert_nor_one_it_never_sent(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            a = await desk_ws(hub.url, "desk-1")
            b = await desk_ws(hub.url, "desk-2")
            await push(a, "a:1", body(0))
            await b.send(withdraw("w:9", "a:1"))
            reply = await recv_json(b)
            assert (reply["type"], reply["id"], reply["code"]) == ("reject", "w:9", "no_such_alert")
            await a.send(withdraw("w:8", "a:404"))
            assert (await recv_json(a))["code"] == "no_such_alert"
            # Malformed withdrawals are refused by their id, nothing stored.
            await a.send(json.dumps({"type": "withdraw", "id": "w:7", "alert": "a:1"}))
            assert (await recv_json(a))["id"] == "w:7"
            # The reason is one of a fixed list: no words of the desk's own reach the board.
            for k, reason in enumerate(["主管已同意撤销", "   ", "", 3, None]):
                await a.send(json.dumps({"type": "withdraw", "id": f"w:6{k}", "alert": "a:1", "reason": reason}))
                assert (await recv_json(a))["id"] == f"w:6{k}"
            await a.send(json.dumps({"type": "withdraw", "id": "w:5", "alert": ["a:1"], "reason": "r"}))
            assert (await recv_json(a))["type"] == "reject"
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            assert "withdrawn" not in alerts["alerts"][0]
            _, text = await asyncio.to_thread(scrape, hub.http_url)
            counts = values(text)  # refused withdrawals are not refused alerts
            assert (counts["monitor_hub_withdrawals_rejected_total"], counts["monitor_hub_alerts_rejected_total"]) == (9.0, 0.0)
            # A console may not withdraw.
            con = await console_ws(hub.url)
            await recv_type(con, "caught_up")
            await con.send(withdraw("w:4", "a:1"))
            assert (await recv_type(con, "error"))["code"] == "not_allowed"
    run(go())


def test_an_alert_a_supervisor_acknowledged_keeps_the_ack_and_every_console_learns_the_withdrawal(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path, console_names={SUP_TOKEN: "李娜"})) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(0))
            sup = await raw(hub.url, {"type": "hello", "role": "console", "token": SUP_TOKEN})
            await recv_type(sup, "caught_up")
            await sup.send(json.dumps({"type": "ack_alert", "seq": 1, "note": "已提醒"}))
            first = await recv_type(sup, "acked")
            # A console that saw the supervisor's ack, back after the withdrawal, learns it.
            welcome_acks = first["ack_seq"]
            await d.send(withdraw("w:1", "a:1"))
            assert (await recv_json(d))["type"] == "ack"
            moved = await recv_type(sup, "acked")
            assert (moved["by"], moved["note"], moved["withdrawn"]) == ("李娜", "已提醒", WHY)
            assert moved["ack_seq"] > welcome_acks
            back = await raw(hub.url, {"type": "hello", "role": "console", "token": SUP_TOKEN,
                                       "since": 1, "ack_since": welcome_acks})
            assert (await recv_type(back, "acked"))["withdrawn"] == WHY
    run(go())


def test_a_desk_client_delivers_the_withdrawal_after_its_alert_across_a_hub_outage(tmp_path: Path) -> None:
    async def go() -> None:
        port = free_port()
        desk = DeskClient(f"ws://127.0.0.1:{port}/ws", "desk-token-for-tests-0001", "desk-1",
                          tmp_path / "d.spool", backoff_min=0.05, backoff_max=0.2)
        await desk.start()
        alert_id = await desk.send(body(0))
        await desk.withdraw(alert_id, WHY)
        assert desk.pending == 2  # both wait for the hub, in order
        await desk.close()
        desk = DeskClient(f"ws://127.0.0.1:{port}/ws", "desk-token-for-tests-0001", "desk-1",
                          tmp_path / "d.spool", backoff_min=0.05, backoff_max=0.2)
        async with Hub(options(tmp_path, port=port)) as hub:
            await desk.start()
            assert await desk.flush(10)
            assert desk.rejected() == []
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            assert [(a["id"], a.get("withdrawn")) for a in alerts["alerts"]] == [(alert_id, WHY)]
        await desk.close()
        with pytest.raises(ValueError, match="reason"):
            await desk.withdraw(alert_id, "")  # a withdrawal says why
    run(go())


def test_an_alert_stored_longer_ago_than_the_window_is_history_and_cannot_be_withdrawn(tmp_path: Path, monkeypatch) -> None:
    import monitor.hub.server as server

    async def go() -> None:
        async with Hub(options(tmp_path)) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(0))
            monkeypatch.setattr(server, "WITHDRAW_WINDOW_S", 0.0)
            await asyncio.sleep(0.01)
            await d.send(withdraw("w:1", "a:1"))
            reply = await recv_json(d)
            assert (reply["type"], reply["code"]) == ("reject", "too_late")
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            assert "withdrawn" not in alerts["alerts"][0]
    run(go())


def test_a_supervisor_can_still_acknowledge_a_withdrawn_alert_with_a_note(tmp_path: Path) -> None:
    async def go() -> None:
        async with Hub(options(tmp_path, console_names={SUP_TOKEN: "李娜"})) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(0))
            await d.send(withdraw("w:1", "a:1", "side_unsure"))
            await recv_json(d)
            sup = await raw(hub.url, {"type": "hello", "role": "console", "token": SUP_TOKEN})
            await recv_type(sup, "caught_up")
            await sup.send(json.dumps({"type": "ack_alert", "seq": 1, "note": "已听录音，确是客户"}))
            acked = await recv_type(sup, "acked")
            assert (acked["by"], acked["note"], acked["withdrawn"]) == ("李娜", "已听录音，确是客户", "side_unsure")
            _, alerts = await asyncio.to_thread(http, f"{hub.http_url}/api/alerts")
            a = alerts["alerts"][0]
            assert (a["acked_by"], a["ack_note"], a["withdrawn"]) == ("李娜", "已听录音，确是客户", "side_unsure")
    run(go())


def test_a_hub_from_before_withdrawals_gets_the_alerts_and_never_the_withdrawal(tmp_path: Path) -> None:
    """An upgraded desk and a hub not yet upgraded: that hub's welcome does not say "withdraw", and
    it answers unknown frames with an error it cannot tie to the frame (then hangs up after enough)."""
    from websockets.asyncio.server import serve

    got: list[dict] = []

    async def old_hub(ws) -> None:
        json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "welcome", "role": "desk", "desk": "desk-1", "last_seq": 0}))
        async for raw_frame in ws:
            msg = json.loads(raw_frame)
            got.append(msg)
            if msg["type"] == "alert":
                await ws.send(json.dumps({"type": "ack", "id": msg["id"], "seq": len(got), "duplicate": False}))
            else:
                await ws.send(json.dumps({"type": "error", "code": "unknown_type", "message": "unknown message type"}))

    async def go() -> None:
        async with serve(old_hub, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            desk = DeskClient(f"ws://127.0.0.1:{port}/ws", "desk-token-for-tests-0001", "desk-1",
                              tmp_path / "d.spool", backoff_min=0.05, backoff_max=0.2)
            await desk.start()
            first = await desk.send(body(0))
            await desk.withdraw(first, WHY)
            second = await desk.send(body(1))
            assert await desk.flush(10)
            assert [m["id"] for m in got] == [first, second]
            assert desk.withdrawals_dropped == 1 and desk.pending == 0
            await desk.close()
    run(go())


def test_the_terminal_console_says_who_withdrew_and_why_in_the_operators_language() -> None:
    from monitor.hub.console_tui import format_acked, format_alert

    alert = {**body(0), "seq": 7, "desk": "desk-1", "received": 1.7e9, "acked_at": 1.7e9, "acked_by": "",
             "withdrawn": "caller_line"}
    zh = format_alert(alert, "zh")
    assert zh.endswith("[坐席端撤回：整通复判认定这句是客户说的]") and "acked by" not in zh
    assert format_alert(alert, "en").endswith("[withdrawn by the desk: the whole call gives this line to the caller]")
    frame = {"type": "acked", "ack_seq": 3, "seq": 7, "by": "", "at": 1.7e9, "withdrawn": "side_unsure"}
    assert format_acked(frame, "zh") == "#7 坐席端撤回：整通复判说话人存疑，转人工核实"
    # a supervisor's acknowledgement stays named beside it
    assert format_acked({**frame, "by": "李娜", "note": "已核实"}, "en").startswith(
        "#7 withdrawn by the desk: the whole call leaves this line's speaker unsure, kept for review (acked by 李娜 at ")


def test_the_terminal_console_learns_a_withdrawal_made_while_it_was_reconnecting(tmp_path: Path) -> None:
    import io

    from monitor.hub.console_tui import run_console
    from monitor.hub.store import AlertStore

    out, err = io.StringIO(), io.StringIO()

    async def printed(text: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in out.getvalue() + err.getvalue():
            assert asyncio.get_running_loop().time() < deadline, out.getvalue() + err.getvalue()
            await asyncio.sleep(0.05)

    async def go() -> None:
        port = free_port()
        async with Hub(options(tmp_path, port=port)) as hub:
            d = await desk_ws(hub.url, "desk-1")
            await push(d, "a:1", body(0))
            console = asyncio.create_task(run_console(hub.url, "console-token-for-tests-0001", out=out, err=err))
            await printed("# live")
        await printed("# disconnected")
        store = AlertStore(tmp_path / "hub.sqlite3")  # the withdrawal lands while the console is away
        store.withdraw(1, "caller_line")
        store.close()
        async with Hub(options(tmp_path, port=port)):
            await printed("#1 坐席端撤回：整通复判认定这句是客户说的")
        console.cancel()
    run(go())
