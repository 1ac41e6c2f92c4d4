"""Password -> key-encryption key, through Argon2id (argon2-cffi).

The parameters travel in the vault header. ``MIN_MEMORY_KIB`` is a floor that no header may go
below, so a header edited on disk or received from a peer cannot downgrade the KDF. The only way
around the floor is :data:`INSECURE_TEST_PARAMETERS` together with an explicit
``allow_insecure_test_kdf=True``, which nothing on a default path passes (see
``vaultpeer/service/home.py`` for the loudly named switch that enables it for tests).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from vaultpeer.core.errors import WeakKdfParameters

KEY_SIZE = 32
SALT_SIZE = 16
MIN_MEMORY_KIB = 64 * 1024
MIN_TIME_COST = 2
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_TIME_COST = 64
MAX_PARALLELISM = 16

#: Calibration aims between these two, in seconds.
TARGET_SECONDS = (0.5, 1.0)


@dataclass(frozen=True)
class KdfParameters:
    salt: bytes
    time_cost: int
    memory_kib: int
    parallelism: int
    #: True only for the test-only parameters; recorded so such a vault can never pass as normal.
    insecure_test_only: bool = False

    def to_record(self) -> dict:
        return {
            "alg": "argon2id",
            "salt": self.salt,
            "t": self.time_cost,
            "m": self.memory_kib,
            "p": self.parallelism,
            "insecure_test_only": self.insecure_test_only,
        }

    @classmethod
    def from_record(cls, record: object) -> "KdfParameters":
        if not isinstance(record, dict) or record.get("alg") != "argon2id" or len(record) != 6:
            raise ValueError("bad KDF parameters")
        params = cls(
            salt=record["salt"],
            time_cost=record["t"],
            memory_kib=record["m"],
            parallelism=record["p"],
            insecure_test_only=record["insecure_test_only"],
        )
        if not (
            isinstance(params.salt, bytes)
            and len(params.salt) == SALT_SIZE
            and all(isinstance(v, int) and not isinstance(v, bool)
                    for v in (params.time_cost, params.memory_kib, params.parallelism))
            and isinstance(params.insecure_test_only, bool)
            and 1 <= params.time_cost <= MAX_TIME_COST
            and 8 * params.parallelism <= params.memory_kib <= MAX_MEMORY_KIB
            and 1 <= params.parallelism <= MAX_PARALLELISM
        ):
            raise ValueError("bad KDF parameters")
        return params

    def check_strength(self, *, allow_insecure_test_kdf: bool) -> None:
        """Refuse parameters below the floor unless the test switch is explicitly on."""
        weak = self.insecure_test_only or self.memory_kib < MIN_MEMORY_KIB or self.time_cost < MIN_TIME_COST
        if weak and not allow_insecure_test_kdf:
            raise WeakKdfParameters(
                "this vault's key-derivation parameters are below the safe minimum "
                f"(Argon2id, {MIN_MEMORY_KIB // 1024} MiB, {MIN_TIME_COST} passes); refusing to use them"
            )

    def derive(self, password: str) -> bytes:
        return hash_secret_raw(
            secret=password.encode("utf-8"),
            salt=self.salt,
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=KEY_SIZE,
            type=Type.ID,
        )


def minimum_parameters(cpu_count: int, random_bytes: Callable[[int], bytes] = os.urandom) -> KdfParameters:
    """The floor every header must meet (64 MiB, 2 passes), with up to 4 lanes: ``init --quick-kdf``."""
    return KdfParameters(salt=random_bytes(SALT_SIZE), time_cost=MIN_TIME_COST, memory_kib=MIN_MEMORY_KIB,
                         parallelism=max(1, min(4, cpu_count)))


def insecure_test_parameters(random_bytes: Callable[[int], bytes] = os.urandom) -> KdfParameters:
    """INSECURE, FOR TESTS ONLY: real Argon2id with trivial cost. Rejected unless explicitly allowed."""
    return KdfParameters(
        salt=random_bytes(SALT_SIZE), time_cost=1, memory_kib=64, parallelism=1, insecure_test_only=True
    )


def calibrate(
    measure: Callable[[KdfParameters], float],
    *,
    cpu_count: int,
    memory_kib: int = 256 * 1024,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> KdfParameters:
    """Pick Argon2id parameters that take about 0.5-1 s here.

    Memory is fixed (default 256 MiB, never below the 64 MiB floor) because memory is what makes
    guessing expensive on GPUs; the number of passes is then raised until one derivation lands in
    :data:`TARGET_SECONDS`. ``measure`` runs one derivation and returns its duration in seconds
    (injected, so the calibration logic is testable without a clock).
    """
    memory_kib = max(MIN_MEMORY_KIB, memory_kib)
    parallelism = max(1, min(4, cpu_count))
    salt = random_bytes(SALT_SIZE)
    low, high = TARGET_SECONDS
    goal = (low + high) / 2

    def params(time_cost: int) -> KdfParameters:
        return KdfParameters(salt=salt, time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)

    time_cost = MIN_TIME_COST
    seconds = measure(params(time_cost))
    for _ in range(8):
        if seconds >= low or time_cost >= MAX_TIME_COST:
            break
        per_pass = max(seconds / time_cost, 1e-4)
        time_cost = min(MAX_TIME_COST, max(time_cost + 1, round(goal / per_pass)))
        seconds = measure(params(time_cost))
    return params(time_cost)
