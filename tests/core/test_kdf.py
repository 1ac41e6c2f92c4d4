import pytest

from vaultpeer.core.errors import WeakKdfParameters
from vaultpeer.core.kdf import (
    MIN_MEMORY_KIB,
    MIN_TIME_COST,
    KdfParameters,
    calibrate,
    insecure_test_parameters,
)


def fixed_random(n: int) -> bytes:
    return bytes(n)


def test_calibration_raises_passes_until_the_target_is_reached():
    measured = []

    def measure(params: KdfParameters) -> float:
        measured.append(params.time_cost)
        return 0.06 * params.time_cost  # a machine where one pass takes 60 ms

    params = calibrate(measure, cpu_count=2, random_bytes=fixed_random)
    assert 0.5 <= 0.06 * params.time_cost <= 1.0
    assert params.memory_kib >= MIN_MEMORY_KIB and params.time_cost >= MIN_TIME_COST
    assert params.parallelism == 2 and not params.insecure_test_only
    assert len(measured) <= 3


def test_calibration_never_goes_below_the_floor_on_a_slow_machine():
    params = calibrate(lambda p: 5.0, cpu_count=1, memory_kib=1024, random_bytes=fixed_random)
    assert params.memory_kib == MIN_MEMORY_KIB and params.time_cost == MIN_TIME_COST
    params.check_strength(allow_insecure_test_kdf=False)


def test_test_parameters_are_refused_unless_explicitly_allowed():
    params = insecure_test_parameters()
    with pytest.raises(WeakKdfParameters):
        params.check_strength(allow_insecure_test_kdf=False)
    params.check_strength(allow_insecure_test_kdf=True)
    # relabelling them as normal does not help: the cost itself is below the floor
    relabelled = KdfParameters(params.salt, params.time_cost, params.memory_kib, params.parallelism, False)
    with pytest.raises(WeakKdfParameters):
        relabelled.check_strength(allow_insecure_test_kdf=False)


def test_record_round_trip_and_validation():
    params = KdfParameters(bytes(16), 3, MIN_MEMORY_KIB, 2)
    assert KdfParameters.from_record(params.to_record()) == params
    for change in ({"salt": b"short"}, {"t": 0}, {"m": 4}, {"p": 0}, {"alg": "argon2i"}, {"t": True}):
        with pytest.raises(ValueError):
            KdfParameters.from_record({**params.to_record(), **change})


def test_derivation_is_argon2id_and_depends_on_password_and_salt():
    params = insecure_test_parameters(fixed_random)
    key = params.derive("password")
    assert len(key) == 32 and key == params.derive("password")
    assert key != params.derive("Password")
    assert key != KdfParameters(b"\x01" * 16, 1, 64, 1, True).derive("password")


def test_the_minimum_parameters_meet_the_floor_without_the_test_switch():
    from vaultpeer.core.kdf import minimum_parameters

    params = minimum_parameters(cpu_count=64)
    params.check_strength(allow_insecure_test_kdf=False)
    assert (params.memory_kib, params.time_cost, params.parallelism) == (MIN_MEMORY_KIB, 2, 4)
    assert minimum_parameters(cpu_count=1).parallelism == 1
