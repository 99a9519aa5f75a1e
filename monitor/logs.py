"""Log lines for every subcommand: `--log-level`, ISO timestamps, level and logger.

`setup()` is called once by `monitor.cli.main` (and again by a subcommand that reads its
level from a config file); it replaces the handler an earlier call added, so the last call wins.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
HANDLER = "monitor-stderr"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _IsoFormatter(logging.Formatter):
    """2026-11-23T05:12:03.123+00:00 INFO monitor.hub: ... (local time with its offset)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.localtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t)
        off = time.strftime("%z", t)
        return f"{stamp}.{int(record.msecs):03d}{off[:3]}:{off[3:]}"


def level_type(text: str) -> str:
    """argparse type: one of LEVELS, any case."""
    import argparse

    v = text.lower()
    if v not in LEVELS:
        raise argparse.ArgumentTypeError(f"invalid log level {text!r} (choose from {', '.join(LEVELS)})")
    return v


def setup(level: str = "warning", stream: TextIO | None = None) -> None:
    """Log to stderr at `level` with timestamps; quiet the chatty libraries below debug."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_IsoFormatter(FORMAT))
    handler.set_name(HANDLER)
    root = logging.getLogger()
    for h in list(root.handlers):  # ours from an earlier call; others' (a test runner's) stay
        if h.get_name() == HANDLER:
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # websockets logs every handshake at info; faster_whisper every file at info.
    noisy = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("faster_whisper").setLevel(noisy)
    # At debug websockets logs every frame whole: a hello's token, a transcript before the hub
    # masks its numbers. Its handshakes (info) are all a hub's debug log needs.
    logging.getLogger("websockets").setLevel(logging.INFO if level == "debug" else logging.WARNING)
