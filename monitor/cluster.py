"""`monitor score --ray auto|ADDRESS`: score calls on a Ray cluster.

Each worker actor loads the recogniser once and scores as many calls side by side as it
reserves CPUs, one recogniser thread each, with the same `score_call` as local scoring, so
its reports equal local ones. The audio travels as bytes (with its events sidecar), so worker
nodes need no shared folder, only call-monitor with the `cluster` extra (and its embedded
model) installed. Every actor has one call more in hand than it scores at once, so it never
waits for the driver; the driver hands out the next call as soon as one finishes and gives
the results back in input order as they come, so the report is written while the cluster
works. A call that fails raises the same exception as it would locally.

Nothing is downloaded: no runtime environment is shipped, and usage statistics are off.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IN_FLIGHT = 1  # calls given to one actor beyond those it scores at once


class ClusterError(Exception):
    """Ray is missing or the cluster cannot be reached; one line."""


@dataclass(frozen=True)
class Job:
    path: Path
    profile: Any  # monitor.phrasebook.Profile
    options: Any  # monitor.pipeline.ScoreOptions


class _Scorer:
    """A Ray actor: one loaded model, any number of calls."""

    def __init__(self, asr: Any) -> None:
        from monitor.asr.whisper import WhisperTranscriber

        self.transcriber = WhisperTranscriber(asr)
        self.dir = Path(tempfile.mkdtemp(prefix="call-monitor-"))

    def score(self, original: str, audio: bytes, events: bytes | None, profile: Any,
              options: Any) -> tuple[str, Any]:
        from monitor.pipeline import score_call

        # Under its own name, so messages and the report's `call` are what local scoring says;
        # in a folder of its own, as calls of the same name may be scored at once.
        path = Path(tempfile.mkdtemp(dir=self.dir)) / Path(original).name
        sidecar = path.with_name(path.stem + ".events.json")
        try:
            path.write_bytes(audio)
            if events is not None:
                sidecar.write_bytes(events)
            return "ok", score_call(path, profile, self.transcriber.for_profile(profile), options)
        except BaseException as exc:  # the driver raises it again, as if it happened there
            return "error", _portable(exc, str(path), original)
        finally:
            path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            path.parent.rmdir()


def _portable(exc: BaseException, copy: str, original: str) -> BaseException:
    """The exception as the driver should raise it: naming the caller's path, not the worker's
    copy, and able to travel (else a stand-in with the same type name and text)."""
    import pickle

    text = str(exc).replace(copy, original)
    if text != str(exc):
        try:
            exc = type(exc)(text)
        except Exception:
            exc = type(type(exc).__name__, (Exception,), {})(text)
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return type(type(exc).__name__, (Exception,), {})(text)


def _reachable(address: str) -> None:
    """HOST:PORT must answer within seconds (ray.init would retry for minutes, loudly)."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--ray: expected auto or HOST:PORT of the cluster's head, not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address} ({exc.strerror or exc}); "
                           "is `ray start --head` running there?") from None


def _read(path: Path) -> tuple[bytes, bytes | None]:
    audio = path.read_bytes()
    sidecar = path.with_name(path.stem + ".events.json")
    return audio, sidecar.read_bytes() if sidecar.is_file() else None


class RayPool:
    """Ordered results of `jobs` scored by `workers` actors of `cpus` CPUs each."""

    def __init__(self, address: str, jobs: Iterable[Job], asr: Any, workers: int | None = None,
                 cpus: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise ClusterError("--ray needs Ray: pip install 'call-monitor[cluster]'") from None
        self.ray = ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        _reachable(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     include_dashboard=False, ignore_reinit_error=True)
        except Exception as exc:  # ConnectionError, RuntimeError, ...: one line
            raise ClusterError(f"cannot connect to the Ray cluster at {address!r}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        total = int(ray.cluster_resources().get("CPU", 0))
        if workers is None:
            workers = max(1, total // cpus)
        if cpus * workers > total:
            ray.shutdown()
            raise ClusterError(f"{workers} worker(s) of {cpus} CPU(s) need {cpus * workers} CPUs; "
                               f"the cluster has {total}")
        actor = ray.remote(_Scorer).options(num_cpus=cpus, max_concurrency=cpus)  # calls side by side
        asr = dataclasses.replace(asr, cpu_threads=1, streams=cpus)
        self.actors: list[Any] = [actor.remote(asr) for _ in range(workers)]
        self.jobs = deque(enumerate(jobs))
        self.order = [j.path for _, j in self.jobs]
        self.next = 0  # index of the next result to give back
        self.running: dict[Any, tuple[int, Any]] = {}  # ObjectRef -> (index, actor)
        self.done: dict[int, tuple[str, Any]] = {}
        for a in self.actors:
            for _ in range(cpus + IN_FLIGHT):
                self._give(a)

    @property
    def workers(self) -> int:
        return len(self.actors)

    def _give(self, actor: Any) -> None:
        if not self.jobs:
            return
        i, job = self.jobs.popleft()
        try:
            audio, events = _read(job.path)
        except OSError as exc:  # scored locally it fails the same way: let load_call say it
            self.done[i] = ("read", exc)
            return self._give(actor)
        ref = actor.score.remote(str(job.path), audio, events, job.profile, job.options)
        self.running[ref] = (i, actor)

    def result(self, path: Path) -> Any:
        """The report of `path` (the next one in input order), or its exception raised."""
        i = self.next
        if i >= len(self.order) or self.order[i] != path:
            raise ClusterError(f"{path.name}: asked out of order")
        self.next += 1
        while i not in self.done:
            ready, _ = self.ray.wait(list(self.running), num_returns=1)
            for ref in ready:
                j, actor = self.running.pop(ref)
                try:
                    self.done[j] = self.ray.get(ref)
                except Exception as exc:  # the actor died (node lost, out of memory, no model)
                    self.done[j] = ("error", RuntimeError(f"worker lost: {str(exc).strip().splitlines()[-1]}"))
                self._give(actor)
        kind, value = self.done.pop(i)
        if kind == "read":
            from monitor.audio.files import load_call

            load_call(path)  # raises the AudioError local scoring would
        if kind != "ok":
            raise value
        # Scored from a copy in the worker's temporary folder: give the report the caller's path.
        value.path = str(path)
        inp = getattr(value, "judge_input", None)
        if inp is not None and getattr(inp, "path", None) is not None:
            value.judge_input = dataclasses.replace(inp, path=str(path))
        return value

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.ray.shutdown()


def add_cluster_options(p: Any) -> None:
    """`monitor score` options for scoring on a Ray cluster."""
    from monitor.argtypes import positive_int

    g = p.add_argument_group("cluster (pip install 'call-monitor[cluster]')")
    g.add_argument("--ray", metavar="auto|ADDRESS", help="score on a Ray cluster: `auto` (the cluster this machine "
                   "belongs to, see `ray start`) or HEAD:PORT; results are written in input order as they come")
    g.add_argument("--ray-workers", type=positive_int, metavar="N",
                   help="worker actors, one model each (default: the cluster's CPUs / --ray-cpus)")
    g.add_argument("--ray-cpus", type=positive_int, default=2, metavar="N",
                   help="CPUs (recogniser threads) per worker actor (default 2)")
