"""Slowing down repeated attempts at a secret (pure: the caller passes the clock).

Every attempt counts until one succeeds: a few are free, then each must wait twice as long as the
one before, up to a cap. Counting attempts when they *start* (not when they fail) means that many
attempts sent at once cannot all slip through before the first one has failed.
"""

from vaultpeer.core.errors import RateLimited


class AttemptBackoff:
    def __init__(self, *, free: int = 3, first_delay: float = 1.0, cap: float = 60.0):
        self.free = free
        self.first_delay = first_delay
        self.cap = cap
        self._attempts = 0
        self._last = 0.0

    def delay(self) -> float:
        """How long the next attempt must wait after the previous one."""
        over = self._attempts - self.free
        return 0.0 if over < 0 else min(self.cap, self.first_delay * 2 ** over)

    def begin(self, now: float) -> None:
        """Count an attempt starting at ``now``, or raise RateLimited (saying how long to wait)."""
        wait = self._last + self.delay() - now
        if self._attempts >= self.free and wait > 0:
            seconds = max(1, round(wait + 0.5))
            raise RateLimited(f"too many attempts: try again in {seconds} s", retry_after=seconds)
        self._attempts += 1
        self._last = now

    def succeeded(self) -> None:
        self._attempts = 0
