"""The work queue between watch events and reconcile workers.

Keys are de-duplicated while they wait; a key is never handed to two workers at once, and a key added
while a worker has it is handed out once more when that work is done, so the last event is always
seen. Retries wait `backoff_seconds`, exponential and capped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# The exponent of the retry delay stops growing here (2**16 s is far beyond any max_backoff_seconds):
# an unbounded 2.0 ** failures overflows after ~1,024 failures of one key.
MAX_BACKOFF_EXPONENT = 16


def backoff_seconds(failures: int, ceiling: float) -> float:
    return float(min(2.0 ** min(failures, MAX_BACKOFF_EXPONENT), ceiling))


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()  # in _ready
        self._active: set[K] = set()  # taken by a worker, not done yet
        self._again: set[K] = set()  # added while active

    def add(self, key: K) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._ready.put_nowait(key)

    def add_after(self, seconds: float, key: K) -> None:
        asyncio.get_running_loop().call_later(seconds, self.add, key)

    async def take(self) -> K:
        key = await self._ready.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def waiting(self) -> int:
        return len(self._waiting)
