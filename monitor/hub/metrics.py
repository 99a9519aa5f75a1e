"""Prometheus metrics of one hub (GET /metrics): counts and timings only, never alert text,
transcripts, desk tokens or supervisor names.

Each hub has its own registry (tests run many hubs in one process). Gauges are read from
the hub when scraped; counters and the write-latency histogram are updated as it works.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass
class Snapshot:
    """What the hub reports at scrape time."""

    desks_connected: int
    desks_known: int
    desks_on_call: int
    consoles: int
    preauth: int
    ingest_queue: int
    console_queue_max: int
    console_queue_total: int
    last_seq: int


class _Live(Collector):
    def __init__(self, read: Callable[[], Snapshot | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        s = self._read()
        if s is None:  # not started or closed
            return
        rows = [
            ("monitor_hub_desks_connected", "desks with an open websocket", s.desks_connected),
            ("monitor_hub_desks_known", "desks the hub has heard of since it started", s.desks_known),
            ("monitor_hub_desks_on_call", "connected desks on a call", s.desks_on_call),
            ("monitor_hub_consoles_connected", "consoles subscribed to live alerts", s.consoles),
            ("monitor_hub_preauth_connections", "connections not authenticated yet", s.preauth),
            ("monitor_hub_ingest_queue_depth", "alerts waiting to be committed", s.ingest_queue),
            ("monitor_hub_console_queue_depth_max", "frames waiting for the slowest console",
             s.console_queue_max),
            ("monitor_hub_console_queue_depth", "frames waiting for all consoles together",
             s.console_queue_total),
            ("monitor_hub_last_seq", "sequence number of the last stored alert", s.last_seq),
        ]
        for name, doc, value in rows:
            yield GaugeMetricFamily(name, doc, value=float(value))


class HubMetrics:
    def __init__(self, read: Callable[[], Snapshot | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Live(read))
        self.alerts_stored = Counter("monitor_hub_alerts_stored", "alerts stored since the hub started "
                                     "(duplicates resent by desks not counted)", registry=self.registry)
        self.alerts_rejected = Counter("monitor_hub_alerts_rejected", "alerts refused (invalid, over quota "
                                       "or not storable)", registry=self.registry)
        self.alerts_withdrawn = Counter("monitor_hub_alerts_withdrawn", "alerts their desks took back (the "
                                        "call's final judgement did not hold them)", registry=self.registry)
        self.withdrawals_rejected = Counter("monitor_hub_withdrawals_rejected", "withdrawals refused (invalid, "
                                            "not the desk's alert, or too late)", registry=self.registry)
        self.write_seconds = Histogram("monitor_hub_write_seconds", "time to commit one batch of alerts "
                                       "(with fsync under --sync full)", registry=self.registry,
                                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5, 1.0, 2.5))
        self.auth_failures = Counter("monitor_hub_auth_failures", "failed authentications (websocket and "
                                     "HTTP)", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
