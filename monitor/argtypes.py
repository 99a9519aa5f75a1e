"""argparse value checkers shared by the subcommands: one clear line per bad value."""
from __future__ import annotations

import argparse


def _bounded(kind: str, cast, lo=None, hi=None, what: str = ""):
    def check(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{what or 'must be'} {_range(lo, hi)}, not {text}")
        return v

    return check


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"{lo}-{hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


channel = _bounded("a channel number", int, 0, what="channel numbers are")
positive_int = _bounded("a whole number", int, 1)
sequence = _bounded("a sequence number", int, 0)
port = _bounded("a port number", int, 0, 65535, what="port must be")


def seconds(text: str) -> float:
    """More than 0 s and under a day."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < v < 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be more than 0 s and under a day, not {text}")
    return v


def speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r}") from None
    if not 0 < v <= 1000:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1000, not {text}")
    return v
