import pytest

from vaultpeer.core.backoff import AttemptBackoff
from vaultpeer.core.errors import RateLimited


def test_free_attempts_then_doubling_waits_up_to_the_cap():
    backoff = AttemptBackoff(free=3, first_delay=1.0, cap=4.0)
    for now in (0.0, 0.0, 0.0):
        backoff.begin(now)
    with pytest.raises(RateLimited, match="try again in 1 s"):
        backoff.begin(0.5)
    backoff.begin(1.0)  # waited the first delay
    with pytest.raises(RateLimited):
        backoff.begin(2.5)  # the next wait is 2 s
    backoff.begin(3.0)
    backoff.begin(7.0)  # 4 s: the cap
    with pytest.raises(RateLimited):
        backoff.begin(10.9)
    backoff.begin(11.0)


def test_attempts_sent_at_once_are_counted_when_they_start():
    backoff = AttemptBackoff(free=3)
    for _ in range(3):
        backoff.begin(5.0)
    with pytest.raises(RateLimited):
        backoff.begin(5.0)  # a fourth one in flight at the same moment is refused


def test_a_success_resets_the_count():
    backoff = AttemptBackoff(free=1)
    backoff.begin(0.0)
    with pytest.raises(RateLimited):
        backoff.begin(0.1)
    backoff.succeeded()
    backoff.begin(0.2)
