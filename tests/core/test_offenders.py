from vaultpeer.core.offenders import Offenders


def test_an_address_is_refused_after_the_limit_and_let_in_after_the_penalty():
    offenders = Offenders(limit=3, window=10, penalty=60)
    assert [offenders.failed("10.0.0.9", t) for t in (0, 1, 2)] == [False, False, True]
    assert offenders.refused("10.0.0.9", 2.5) and offenders.refused("10.0.0.9", 61.9)
    assert not offenders.refused("10.0.0.8", 3)  # others are not affected
    assert not offenders.refused("10.0.0.9", 62.1)


def test_failures_spread_wider_than_the_window_are_forgiven():
    offenders = Offenders(limit=3, window=10, penalty=60)
    assert not any(offenders.failed("10.0.0.9", t) for t in (0, 11, 22, 33, 44))
    assert not offenders.refused("10.0.0.9", 45)


def test_a_penalty_is_reported_once_and_the_table_stays_bounded():
    offenders = Offenders(limit=2, window=10, penalty=60, capacity=100)
    reports = [offenders.failed("10.0.0.9", t / 10) for t in range(20)]
    assert reports.count(True) == 1
    for n in range(10_000):
        offenders.failed(f"10.1.{n // 256}.{n % 256}", 5)
    assert len(offenders) == 100
