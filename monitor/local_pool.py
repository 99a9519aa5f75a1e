"""`monitor score` on this machine: calls scored side by side, results in input order.

One loaded model serves every stream (`AsrOptions.streams`); each stream decodes on its own
thread(s). The audio of at most `streams + 1` calls is in memory at once: a call is started
only when the results before it are being taken. Same interface as `monitor.cluster.RayPool`:
`result(path)` in input order gives a call's report or raises what scoring it raised.
"""
from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class LocalPool:
    def __init__(self, files: Sequence[Path], score: Callable[[Path], Any], streams: int) -> None:
        self._files = list(files)
        self._score = score
        self._ahead = max(1, streams)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self._ahead, thread_name_prefix="score")
        self._futures: dict[int, concurrent.futures.Future] = {}
        self._next = 0

    def _start_up_to(self, last: int) -> None:
        for i in range(self._next, min(last + 1, len(self._files))):
            if i not in self._futures:
                self._futures[i] = self._pool.submit(self._score, self._files[i])

    def result(self, path: Path) -> Any:
        """The report of `path` (the next one in input order), or its exception raised."""
        i = self._next
        if i >= len(self._files) or self._files[i] != path:
            raise RuntimeError(f"{path.name}: asked out of order")
        self._start_up_to(i + self._ahead)
        self._next += 1
        return self._futures.pop(i).result()

    def close(self) -> None:
        for f in self._futures.values():
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
