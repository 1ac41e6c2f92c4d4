"""Version vectors: per-device counters that compare causal histories without clocks.

The same type serves two purposes. Per revision (in core/merge.py) it is the causal history of
that revision within its item. Per device (a *knowledge vector*) it says, for each author, the
highest counter up to which this device holds *every* revision of that author, so a peer can send
exactly what is missing.
"""

from collections.abc import Iterable, Iterator, Mapping

from vaultpeer.core.identity import DeviceId

MAX_ENTRIES = 10_000


class VersionVector(Mapping[DeviceId, int]):
    """An immutable map from device to counter; absent devices count as 0."""

    __slots__ = ("_counters",)

    def __init__(self, counters: Mapping[DeviceId, int] | None = None):
        self._counters = {d: c for d, c in (counters or {}).items() if c > 0}

    def __getitem__(self, device: DeviceId) -> int:
        return self._counters[device]

    def get(self, device: DeviceId, default: int = 0) -> int:  # type: ignore[override]
        return self._counters.get(device, default)

    def __iter__(self) -> Iterator[DeviceId]:
        return iter(self._counters)

    def __len__(self) -> int:
        return len(self._counters)

    def __le__(self, other: "VersionVector") -> bool:
        return all(c <= other.get(d) for d, c in self._counters.items())

    def __lt__(self, other: "VersionVector") -> bool:
        return self <= other and self != other

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionVector) and self._counters == other._counters

    def __hash__(self) -> int:
        return hash(frozenset(self._counters.items()))

    def concurrent_with(self, other: "VersionVector") -> bool:
        return not self <= other and not other <= self

    def advanced(self, device: DeviceId, counter: int) -> "VersionVector":
        if counter <= self.get(device):
            return self
        return VersionVector({**self._counters, device: counter})

    def merged(self, other: "VersionVector") -> "VersionVector":
        counters = dict(self._counters)
        for device, counter in other._counters.items():
            if counter > counters.get(device, 0):
                counters[device] = counter
        return VersionVector(counters)

    @classmethod
    def merge_all(cls, vectors: Iterable["VersionVector"]) -> "VersionVector":
        result = cls()
        for vector in vectors:
            result = result.merged(vector)
        return result

    def to_record(self) -> list:
        return [[device.raw, counter] for device, counter in sorted(self._counters.items())]

    @classmethod
    def from_record(cls, record: object) -> "VersionVector":
        """Parse a record; raises ValueError or TypeError when malformed."""
        if not isinstance(record, list) or len(record) > MAX_ENTRIES:
            raise ValueError("malformed version vector")
        counters: dict[DeviceId, int] = {}
        previous = None
        for entry in record:
            device_raw, counter = entry
            device = DeviceId(device_raw)
            if not isinstance(counter, int) or isinstance(counter, bool) or not 0 < counter < 2**63:
                raise ValueError("malformed version vector")
            if previous is not None and device <= previous:
                raise ValueError("version vector entries must be sorted and unique")
            counters[device] = counter
            previous = device
        return cls(counters)

    def __repr__(self) -> str:
        inner = ", ".join(f"{d.short}:{c}" for d, c in sorted(self._counters.items()))
        return f"VersionVector({inner})"
