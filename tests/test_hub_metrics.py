"""GET /metrics: Prometheus text with connected desks, consoles, alerts stored, queue depths
and write latency; a bearer metrics token (or a console token), or loopback when no metrics
token is set; never alert text."""
from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_hub_support import CONSOLE_TOKEN, DESK_TOKEN, body, console_ws, desk_ws, options, push, recv_type, run

from monitor.hub.server import Hub

METRICS_TOKEN = "metrics-token-for-tests-01"


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def values(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels
            or s.name.endswith(("_count", "_sum"))}


def test_metrics_count_desks_consoles_alerts_and_writes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            status, text = await asyncio.to_thread(scrape, hub.http_url)
            assert status == 200
            v = values(text)
            assert v["monitor_hub_desks_connected"] == 0 and v["monitor_hub_alerts_stored_total"] == 0
            desk = await desk_ws(hub.url, "desk-9")
            console = await console_ws(hub.url)
            for i in range(3):
                assert (await push(desk, f"a{i}", body(i)))["type"] == "ack"
                await recv_type(console, "alert")
            assert (await push(desk, "a0", body(0)))["duplicate"] is True  # a resend: not stored again
            # An alert with a bad value is refused by its id, and counted as refused.
            bad = await push(desk, "bad-1", body(7, role_confidence=1.5))
            assert (bad["type"], bad["id"], bad["code"]) == ("reject", "bad-1", "bad_value")
            status, text = await asyncio.to_thread(scrape, hub.http_url)
            v = values(text)
            assert v["monitor_hub_desks_connected"] == 1 and v["monitor_hub_consoles_connected"] == 1
            assert v["monitor_hub_alerts_stored_total"] == 3 and v["monitor_hub_last_seq"] == 3
            assert v["monitor_hub_alerts_rejected_total"] == 1
            assert v["monitor_hub_write_seconds_count"] >= 1 and v["monitor_hub_write_seconds_sum"] > 0
            assert v["monitor_hub_ingest_queue_depth"] == 0 and "monitor_hub_console_queue_depth_max" in v
            assert "我不知道" not in text and "desk-9" not in text  # counts only
            await desk.close()
            await console.close()
            await asyncio.sleep(0.2)
            v = values((await asyncio.to_thread(scrape, hub.http_url))[1])
            assert v["monitor_hub_desks_connected"] == 0 and v["monitor_hub_consoles_connected"] == 0

    run(scenario())


def test_with_a_metrics_token_scrapers_must_present_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Hub(options(tmp_path, metrics_token=METRICS_TOKEN)) as hub:
            for token, want in ((None, 401), ("wrong-token-000000000001", 401), (DESK_TOKEN, 401),
                                (METRICS_TOKEN, 200), (CONSOLE_TOKEN, 200)):
                status, text = await asyncio.to_thread(scrape, hub.http_url, token)
                assert status == want, (token, status, text)
                assert ("monitor_hub_desks_connected" in text) == (want == 200)

    run(scenario())


def test_the_cli_reads_the_metrics_token_file(tmp_path: Path, monkeypatch) -> None:
    from test_hub_config import parse

    from monitor.hub.cli import _metrics_token

    f = tmp_path / "metrics.token"
    f.write_text(METRICS_TOKEN + "\n")
    f.chmod(0o600)
    assert _metrics_token(parse("--metrics-token-file", str(f)), []) == METRICS_TOKEN
    monkeypatch.setenv("MONITOR_METRICS_TOKEN", "from-the-environment-01")
    assert _metrics_token(parse(), []) == "from-the-environment-01"


def test_a_write_that_fails_for_now_is_not_counted_as_refused(tmp_path: Path) -> None:
    """A store failure the desk is told to resend (disk I/O) is not a refusal: the resend is stored."""
    from monitor.hub.store import StoreError

    async def scenario() -> None:
        async with Hub(options(tmp_path)) as hub:
            assert hub.store is not None
            real, failures = hub.store.insert_many, [StoreError("disk I/O error", transient=True)]

            def flaky(items):
                if failures:
                    raise failures.pop()
                return real(items)

            hub.store.insert_many = flaky  # type: ignore[method-assign]
            desk = await desk_ws(hub.url, "desk-3")
            assert (await push(desk, "t1", body(1)))["type"] != "ack"
            assert (await push(desk, "t1", body(1)))["type"] == "ack"  # the desk's resend
            v = values((await asyncio.to_thread(scrape, hub.http_url))[1])
            assert v["monitor_hub_alerts_stored_total"] == 1 and v["monitor_hub_alerts_rejected_total"] == 0
            await desk.close()

    run(scenario())
