"""A desk that reaches a TLS hub and says what is wrong: wss:// with the system CA store
or a cafile, problems reported at once and then sparingly, spool resent on reconnect."""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_hub_support import DESK_TOKEN, body, free_port, make_cert, options, run

from monitor.hub.desk_client import DeskClient, client_ssl_context
from monitor.hub.server import Hub

pytestmark = pytest.mark.timeout(60)


async def until(ok: Callable[[], bool], timeout: float = 5.0, what: str = "it") -> float:
    """Wait (bounded) until ok(); returns the seconds it took."""
    start = time.monotonic()
    while not ok():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_desk_delivers_over_wss_with_its_cafile(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)

    async def scenario() -> None:
        async with Hub(options(tmp_path, certfile=cert, keyfile=key)) as hub:
            problems: list[str] = []
            d = DeskClient(hub.url, DESK_TOKEN, "desk-tls", tmp_path / "tls.spool",
                           cafile=cert, on_problem=problems.append)
            assert d.ssl_context is not None and d.ssl_context.check_hostname
            await d.start()
            await d.call_started("c-1", time.time(), "zte")
            for i in range(3):
                await d.send(body(i))
            assert await d.flush(10)
            assert hub.store is not None and hub.store.count() == 3
            await until(lambda: hub._desks["desk-tls"].status.on_call, what="status")
            assert problems == []
            await d.close()
    run(scenario())


def test_without_the_cafile_a_certificate_problem_is_reported(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)

    async def scenario() -> None:
        async with Hub(options(tmp_path, certfile=cert, keyfile=key)) as hub:
            problems: list[str] = []
            d = DeskClient(hub.url, DESK_TOKEN, "desk-tls", tmp_path / "tls.spool",
                           on_problem=problems.append, backoff_min=0.05, backoff_max=0.1)
            await d.send(body(1))
            await d.start()
            await until(lambda: bool(problems), what="a problem report")
            line = problems[0]
            assert line.startswith(f"hub {hub.url} unreachable: TLS certificate problem: ")
            assert "self-signed certificate" in line
            assert line.endswith("; 1 alert(s) waiting in the spool")
            await asyncio.sleep(0.5)  # many retries, one report (report_every is 30 s)
            assert len(problems) == 1 and not d.connected
            assert hub.store is not None and hub.store.count() == 0 and d.pending == 1
            await d.close()
    run(scenario())


def test_a_dead_port_is_reported_within_two_seconds_then_recovery(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        url = f"ws://127.0.0.1:{port}/ws"
        problems: list[str] = []
        recovered: list[str] = []
        d = DeskClient(url, DESK_TOKEN, "desk-1", tmp_path / "d1.spool",
                       on_problem=problems.append, on_recovered=recovered.append,
                       report_every=0.5)
        for i in range(3):
            await d.send(body(i))
        await d.start()
        took = await until(lambda: bool(problems), what="a problem report")
        assert took < 2.0
        assert problems[0] == (f"hub {url} unreachable: connection refused; "
                               "3 alert(s) waiting in the spool")
        assert d.last_error == f"hub {url} unreachable: connection refused"
        await until(lambda: len(problems) >= 2, timeout=5, what="a repeated report")
        assert recovered == []
        async with Hub(options(tmp_path, port=port)) as hub:
            assert await d.flush(15)  # resent without any new alert
            assert hub.store is not None and hub.store.count() == 3
            assert len(recovered) == 1 and recovered[0].startswith(f"hub {url} connected again")
        await d.close()
    run(scenario())


def test_a_refused_token_is_reported_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            problems: list[str] = []
            d = DeskClient(hub.url, "not-the-token", "desk-9", tmp_path / "d9.spool",
                           on_problem=problems.append)
            await d.start()
            assert await until(lambda: bool(problems)) < 2.0
            assert problems == ["hub refused desk desk-9: invalid token"]
            await d.close()
    run(scenario())


def test_spooled_alerts_are_resent_when_the_hub_comes_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        problems: list[str] = []
        recovered: list[str] = []
        hub = Hub(options(tmp_path))
        await hub.start()
        port = hub.port
        d = DeskClient(hub.url, DESK_TOKEN, "desk-1", tmp_path / "d1.spool",
                       on_problem=problems.append, on_recovered=recovered.append)
        await d.start()
        await d.send(body(0))
        assert await d.flush(5)
        await hub.close()  # the hub goes away...
        for i in range(1, 6):
            await d.send(body(i))  # ...while alerts keep coming: they are spooled
        await until(lambda: bool(problems), what="the outage to be reported")
        assert d.pending == 5
        async with Hub(options(tmp_path, port=port)) as hub:
            # No new alert: the reconnect alone sends what is spooled.
            assert await d.flush(15)
            assert hub.store is not None and hub.store.count() == 6
            assert len(recovered) == 1
        await d.close()
    run(scenario())


def test_a_spool_from_a_previous_run_is_sent_right_after_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            spool = tmp_path / "d2.spool"
            dead = DeskClient(f"ws://127.0.0.1:{free_port()}/ws", DESK_TOKEN, "desk-2", spool,
                              on_problem=lambda line: None)
            for i in range(4):
                await dead.send(body(i))
            await dead.close()  # the desk process ends with 4 alerts undelivered
            d = DeskClient(hub.url, DESK_TOKEN, "desk-2", spool)
            assert d.pending == 4
            start = time.monotonic()
            await d.start()
            assert await d.flush(5)
            assert time.monotonic() - start < 2.0
            assert hub.store is not None and hub.store.count() == 4
            await d.close()
    run(scenario())


def test_client_ssl_context_and_a_bad_cafile(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path)
    ctx = client_ssl_context(cert)
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert client_ssl_context(None).verify_mode == ssl.CERT_REQUIRED  # system store only
    with pytest.raises(ValueError, match=r"^cannot read CA file .*missing\.pem: No such file"):
        client_ssl_context(tmp_path / "missing.pem")
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"^CA file .*bogus\.pem holds no PEM certificate"):
        client_ssl_context(bogus)
    # DeskClient checks it up front, for wss:// and ws:// alike.
    for url in ("wss://127.0.0.1:9/ws", "ws://127.0.0.1:9/ws"):
        with pytest.raises(ValueError, match="cannot read CA file"):
            DeskClient(url, DESK_TOKEN, "d", tmp_path / "x.spool", cafile=tmp_path / "nope")
    # A plain ws:// client gets no TLS context even with a cafile.
    plain = DeskClient("ws://127.0.0.1:9/ws", DESK_TOKEN, "d", tmp_path / "y.spool",
                       cafile=cert)
    assert plain.ssl_context is None
    run(plain.close())
