"""Addresses that keep failing get refused for a while (pure: the caller passes the clock).

A failure is a handshake that failed or timed out, a key that is not a member, a pairing attempt
without an open invitation, or a member's session that broke the protocol. After ``limit`` of
them within ``window`` seconds, new connections from that address are closed unread for
``penalty`` seconds. At most ``capacity`` addresses are remembered (the oldest is forgotten), so a
flood from many addresses cannot grow the table without bound.
"""

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Record:
    window_start: float
    failures: int = 0
    refused_until: float = 0.0


class Offenders:
    def __init__(self, *, limit: int = 20, window: float = 60.0, penalty: float = 60.0, capacity: int = 1024):
        self.limit = limit
        self.window = window
        self.penalty = penalty
        self.capacity = capacity
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def refused(self, address: str, now: float) -> bool:
        """Whether a new connection from ``address`` is to be closed unread."""
        record = self._records.get(address)
        return record is not None and now < record.refused_until

    def failed(self, address: str, now: float) -> bool:
        """Count one failure; True exactly when it starts a penalty (the moment to log it, once)."""
        record = self._records.get(address)
        if record is None or now - record.window_start > self.window:
            record = _Record(window_start=now)
        self._records[address] = record
        self._records.move_to_end(address)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)
        record.failures += 1
        if record.failures >= self.limit and now >= record.refused_until:
            record.refused_until = now + self.penalty
            record.window_start, record.failures = now, 0
            return True
        return False

    def __len__(self) -> int:
        return len(self._records)
