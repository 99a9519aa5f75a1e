"""When to speak of a link that is down (the hub, the softphone): at once, then again every
`every` seconds while it lasts, or as soon as its reason changes; once more when it is back."""
from __future__ import annotations

import time
from collections.abc import Callable


class Outage:
    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.since: float | None = None  # None while the link is up
        self._reason: str | None = None
        self._said_at = 0.0

    def down(self, reason: str) -> bool:
        """The link failed again for `reason`; True when that should be said now."""
        now = self.clock()
        if self.since is None:
            self.since = now
        elif reason == self._reason and now - self._said_at < self.every:
            return False
        self._reason, self._said_at = reason, now
        return True

    def lasted(self) -> float:
        return 0.0 if self.since is None else self.clock() - self.since

    def up(self) -> float | None:
        """The link works again: how long it was down, or None when it was not."""
        if self.since is None:
            return None
        away = self.lasted()
        self.since, self._reason = None, None
        return away
