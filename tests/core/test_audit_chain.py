"""The audit log's chain (pure): every way of altering, removing, moving or forging an entry is found,
the first bad entry is named, and no detail can carry a secret."""

from dataclasses import replace

import pytest

from vaultpeer.core import encoding
from vaultpeer.core.audit import (
    ALTERED,
    BAD_SIGNATURE,
    GENESIS,
    HEAD_MISSING,
    OUT_OF_SEQUENCE,
    AuditEntry,
    RejectionLimiter,
    StoredRow,
    address_detail,
    chain_hash,
    check_details,
    printable_name,
    verify_chain,
)
from vaultpeer.core.identity import DeviceKeys

DEVICE = DeviceKeys(bytes(range(32)), bytes(range(32, 64)))
OTHER = DeviceKeys(bytes(range(64, 96)), bytes(range(96, 128)))
PEER_ID = str(OTHER.device_id)

EVENTS = [
    ("vault.created", {"via": "cli"}),
    ("unlock.failed", {"via": "daemon", "method": "password", "reason": "wrong_password"}),
    ("unlock", {"via": "daemon", "method": "password"}),
    ("pairing.paired", {"role": "inviter", "device_id": PEER_ID, "device_name": "desktop", "peer": "127.0.0.1:4000"}),
    ("peer.rejected", {"peer": "192.0.2.7", "reason": "not_member", "count": 12}),
    ("items.imported", {"via": "cli", "format": "csv", "count": 3, "skipped": 1}),
    ("device.revoked", {"device_id": PEER_ID, "device_name": "desktop"}),
]


def build_chain(events=EVENTS, device: DeviceKeys = DEVICE, start: int = 1_790_000_000) -> list[AuditEntry]:
    entries, previous = [], GENESIS
    for n, (event, details) in enumerate(events, start=1):
        entry = AuditEntry.create(device, seq=n, time=start + n, previous=previous, event=event, details=details)
        entries.append(entry)
        previous = entry.entry_hash
    return entries


def stored(entry: AuditEntry, **changes) -> StoredRow:
    row = StoredRow(entry.seq, entry.time, entry.event, AuditEntry.encode_details(entry.details), entry.entry_hash,
                    entry.signature)
    return replace(row, **changes)


def rows_of(entries) -> list[StoredRow]:
    return [stored(e) for e in entries]


def check(rows, signer=DEVICE, **kwargs):
    return verify_chain(rows, [signer.public.signing_public], **kwargs)


def test_an_untouched_chain_is_intact_and_reports_its_head_and_count():
    entries = build_chain()
    report = check(rows_of(entries))
    assert report.ok and report.count == len(EVENTS) and report.head == entries[-1].entry_hash
    assert report.first_bad is None and report.problem is None
    assert report.to_json() == {"ok": True, "entries": len(EVENTS), "head": entries[-1].entry_hash.hex(),
                                "first_bad": None, "problem": None}
    assert check([]).ok and check([]).head is None and check([]).count == 0


def test_each_entry_hash_chains_the_previous_one_over_the_documented_body():
    entries = build_chain()
    previous = GENESIS
    for entry in entries:
        body = encoding.encode(["vaultpeer audit entry v1", entry.seq, entry.time, entry.event, dict(entry.details)])
        assert entry.entry_hash == chain_hash(previous, body)
        assert DEVICE.public.verify(entry.signature, encoding.encode(["vaultpeer audit signature v1",
                                                                       entry.entry_hash]))
        previous = entry.entry_hash


def test_a_modified_detail_time_or_event_is_found_at_that_entry():
    entries = build_chain()
    details = dict(entries[4].details, count=1)  # a flood made to look like one attempt
    for changes in ({"details": AuditEntry.encode_details(details)},
                    {"time": entries[4].time - 3600},
                    {"event": "unlock"},  # not allowed with these details: altered either way
                    {"seq": 5, "event": "bundle.rejected", "details": encoding.encode({"reason": "integrity"})}):
        rows = rows_of(entries)
        rows[4] = replace(rows[4], **changes)
        report = check(rows)
        assert (report.ok, report.first_bad, report.problem, report.count) == (False, 5, ALTERED, 4), changes
        assert report.head == entries[3].entry_hash  # the last good entry


def test_a_modified_entry_with_its_hash_recomputed_still_fails_on_the_signature():
    """Someone who can write the database but not the key files cannot make a change consistent."""
    entries = build_chain()
    rows = rows_of(entries)
    details = {"via": "cli", "method": "password"}
    body = encoding.encode(["vaultpeer audit entry v1", 2, entries[1].time, "unlock", details])
    forged_hash = chain_hash(entries[0].entry_hash, body)
    rows[1] = replace(rows[1], event="unlock", details=encoding.encode(details), entry_hash=forged_hash)
    report = check(rows)
    assert (report.ok, report.first_bad, report.problem) == (False, 2, BAD_SIGNATURE)


def test_a_chain_rewritten_with_another_key_fails_at_its_first_entry():
    forged = build_chain(device=OTHER)
    assert check(rows_of(forged)).first_bad == 1 and check(rows_of(forged)).problem == BAD_SIGNATURE
    assert check(rows_of(forged), signer=OTHER).ok
    # one entry of another device's log spliced in, at the right seq and chained: bad signature
    entries = build_chain()
    spliced = AuditEntry.create(OTHER, seq=3, time=entries[2].time, previous=entries[1].entry_hash,
                                event="unlock", details={"via": "cli"})
    rows = rows_of(entries[:2] + [spliced] + entries[3:])
    assert (check(rows).first_bad, check(rows).problem) == (3, BAD_SIGNATURE)


def test_a_forged_signature_is_found():
    entries = build_chain()
    rows = rows_of(entries)
    for bad in (bytes(64), entries[5].signature[:-1] + bytes([entries[5].signature[-1] ^ 1]), b"",
                entries[4].signature):
        rows[5] = replace(rows[5], signature=bad)
        report = check(rows)
        assert (report.ok, report.first_bad, report.problem) == (False, 6, BAD_SIGNATURE)


def test_a_deleted_middle_entry_is_found_even_when_the_rest_is_renumbered():
    entries = build_chain()
    rows = rows_of(entries)
    del rows[2]
    report = check(rows)
    assert (report.ok, report.first_bad, report.problem, report.count) == (False, 3, OUT_OF_SEQUENCE, 2)
    renumbered = rows[:2] + [replace(r, seq=r.seq - 1) for r in rows[2:]]
    report = check(renumbered)
    assert (report.ok, report.first_bad) == (False, 3) and report.problem in (ALTERED, BAD_SIGNATURE)


def test_a_reordered_pair_is_found():
    entries = build_chain()
    rows = rows_of(entries)
    rows[3], rows[4] = rows[4], rows[3]
    report = check(rows)
    assert (report.ok, report.first_bad, report.problem) == (False, 4, OUT_OF_SEQUENCE)
    # swapping their seq numbers too does not help: seq is in the hashed body
    swapped = list(rows)
    swapped[3], swapped[4] = replace(rows[3], seq=4), replace(rows[4], seq=5)
    report = check(swapped)
    assert (report.ok, report.first_bad, report.problem) == (False, 4, ALTERED)


def test_removing_the_newest_entries_shows_only_against_a_noted_head():
    entries = build_chain()
    noted = entries[-1].entry_hash
    truncated = rows_of(entries[:-2])
    assert check(truncated).ok  # a shorter chain is still consistent: that is the documented limit
    report = check(truncated, expected_head=noted)
    assert (report.ok, report.problem, report.first_bad, report.count) == (False, HEAD_MISSING, None, 5)
    assert check(rows_of(entries), expected_head=noted).ok
    assert check(rows_of(entries), expected_head=noted[:8]).ok  # a shortened note will do
    assert check(rows_of(entries), expected_head=entries[2].entry_hash).ok  # any entry noted earlier
    assert not check([], expected_head=noted).ok


def test_every_single_bit_flip_in_a_stored_entry_is_found():
    entries = build_chain()
    clean = rows_of(entries)
    target = clean[3]
    for column in ("details", "entry_hash", "signature"):
        value = getattr(target, column)
        for position in range(len(value)):
            flipped = bytearray(value)
            flipped[position] ^= 0x01
            rows = list(clean)
            rows[3] = replace(target, **{column: bytes(flipped)})
            report = check(rows)
            assert not report.ok and report.first_bad == 4, (column, position)


def test_a_damaged_row_is_reported_not_raised():
    entries = build_chain()
    for changes in ({"details": b"\xff\x00garbage"}, {"details": "text"}, {"time": "yesterday"},
                    {"entry_hash": None}, {"details": encoding.encode(["a", "list"])},
                    {"details": encoding.encode({"password": "hunter2"})}):
        rows = rows_of(entries)
        rows[1] = replace(rows[1], **changes)
        report = check(rows)
        assert (report.ok, report.first_bad, report.problem) == (False, 2, ALTERED), changes


@pytest.mark.parametrize("event, details", [
    ("unlock.failed", {"password": "hunter2"}),  # no such key, for any event
    ("items.imported", {"title": "Bank"}),
    ("items.imported", {"value": "hunter2"}),
    ("unlock.failed", {"reason": "the password was hunter2"}),  # reasons are words of a fixed list
    ("unlock.failed", {"reason": b"wrong_password"}),  # no byte strings
    ("items.imported", {"count": 1.5}),  # no floats
    ("items.imported", {"count": True}),
    ("items.imported", {"count": -1}),
    ("items.imported", {"count": "3"}),
    ("items.imported", {"format": "hunter2"}),
    ("device.revoked", {"device_id": "hunter2"}),  # only a real device id
    ("device.revoked", {"device_id": PEER_ID.lower()}),  # in its canonical form
    ("device.revoked", {"device_name": "two\nlines"}),
    ("device.revoked", {"device_name": "x" * 65}),
    ("device.revoked", {"device_name": ["nested"]}),
    ("peer.rejected", {"peer": "not an address"}),
    ("peer.rejected", {"peer": {"nested": "map"}}),
    ("pairing.paired", {"reason": "timeout"}),  # a key this event does not record
    ("made.up", {}),
])
def test_details_that_could_carry_a_secret_are_refused(event, details):
    with pytest.raises(ValueError):
        check_details(event, details)
    with pytest.raises(ValueError):
        AuditEntry.create(DEVICE, seq=1, time=0, previous=GENESIS, event=event, details=details)


def test_names_and_addresses_from_peers_are_made_recordable():
    # shown as core.text.inert shows it, so the log reads the same as `peers`
    assert printable_name("evil\nname\x1b[31m\u202e") == "evil\\nname\\x1b[31m\\u202e"
    assert printable_name("") == "?" and len(printable_name("y" * 100)) == 64
    assert printable_name("x" * 61 + "\x1b") == "x" * 61  # an escape is never cut in two
    assert printable_name("\x1b" * 20) == "\\x1b" * 16
    assert address_detail("[::1]:22047") == "[::1]:22047" and address_detail("host name; rm") == "unrecognised"
    check_details("pairing.paired", {"device_name": printable_name("a\tb"), "peer": address_detail("x y")})


def test_an_entry_repr_holds_nothing_but_the_entry():
    entry = build_chain()[3]
    assert "desktop" in repr(entry)  # names are not secret; the point is that there is no other text
    assert entry.to_json()["time"].endswith("Z") and entry.to_json()["hash"] == entry.entry_hash.hex()


def test_a_flood_from_one_source_makes_at_most_one_entry_per_window_and_keeps_the_count():
    limiter = RejectionLimiter(window=60, max_sources=4)
    details = {"peer": "192.0.2.1", "reason": "handshake_failed"}
    written = []
    for n in range(600):  # ten per second for a minute
        written += limiter.note("192.0.2.1", details, now=n / 10)
    assert written == [(details, 1)]  # the first at once
    assert limiter.due(59.9) == []
    assert limiter.due(60.0) == [(details, 599)]
    for n in range(3000):  # five more minutes of it
        written += limiter.note("192.0.2.1", details, now=60 + n / 10)
    written += limiter.due(1000, everything=True)
    assert len(written) <= 1 + 1 + 5 + 1
    assert sum(count for _, count in written) + 599 == 3600


def test_a_flood_from_many_sources_is_bounded_too():
    limiter = RejectionLimiter(window=60, max_sources=4)
    written = []
    for n in range(1000):
        host = f"10.0.{n // 250}.{n % 250}"
        written += limiter.note(host, {"peer": host, "reason": "not_member"}, now=n / 100)
    written += limiter.due(100, everything=True)
    assert len(written) <= 4 + 1 + 1  # four sources tracked, then one bucket for the rest
    assert sum(count for _, count in written) == 1000
    assert {"peer": "*", "reason": "not_member"} in [details for details, _ in written]
    for details, _ in written:
        check_details("peer.rejected", details)
