"""The audit log on real homes (SQLite files, key files): what the vault records, that the chain holds
across processes and old stores, that floods stay bounded, and that no secret ever reaches it."""

import sqlite3
import threading

import pytest

from helpers import PASSWORD, make_replicas, sync_pair
from vaultpeer.service import bundle_files as bundles
from vaultpeer.service.backup_files import create_backup, open_backup_file, restore_home
from vaultpeer.core.audit import AuditEntry, verify_chain
from vaultpeer.core.errors import IntegrityError, WrongPassword, WrongRecoveryKey
from vaultpeer.core.interchange import ImportEntry
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.sync import Hello, encode_message
from vaultpeer.service.home import Home
from vaultpeer.service.store import Store
from vaultpeer.service.replication import SyncPeer
from vaultpeer.service.transfer import import_entries
from vaultpeer.service.vault import Vault

CANARY_PASSWORD = "CANARY-MASTER-PW-audit-5e2b"
CANARY_WRONG = "CANARY-WRONG-GUESS-audit-77a1"
CANARY_NEW = "CANARY-NEW-MASTER-PW-audit-c3d9"
CANARY_ITEM = {"title": "CanaryTitle-audit-4f0e", "user": "canary-user-audit-91", "secret": "CANARY-FIELD-audit-0b8d"}


def events(vault: Vault) -> list[tuple[str, dict]]:
    report = verify_chain(vault.audit_trail.rows(), vault.audit_public_keys)
    assert report.ok, report
    return [(e["event"], e["details"]) for e in (_json(row) for row in vault.audit_trail.rows())]


def _json(row) -> dict:
    return AuditEntry.from_stored(row.seq, row.time, row.event, row.details, row.entry_hash, row.signature).to_json()


def new_events(vault: Vault, before: int) -> list[tuple[str, dict]]:
    return events(vault)[before:]


def open_vault(home: Home) -> Vault:
    return Vault.open(home, allow_insecure_test_kdf=True)


@pytest.fixture
def vault(tmp_path):
    with open_vault(Home(tmp_path / "device-a")) as opened:
        opened.recovery_key = opened.init(PASSWORD, insecure_test_parameters(), "laptop", "Test OS")
        yield opened


def test_creating_unlocking_and_failing_to_unlock_are_recorded(vault):
    assert events(vault) == [("vault.created", {"via": "cli"})]
    vault.lock()
    with pytest.raises(WrongPassword):
        vault.unlock("not the password")
    vault.unlock(PASSWORD)
    vault.lock()
    with pytest.raises(WrongRecoveryKey):
        vault.unlock_with_recovery_key(RecoveryKey(bytes(20)))
    vault.unlock_with_recovery_key(RecoveryKey.parse(vault.recovery_key.reveal()))
    assert new_events(vault, 1) == [
        ("unlock.failed", {"via": "cli", "method": "password", "reason": "wrong_password"}),
        ("unlock", {"via": "cli", "method": "password"}),
        ("unlock.failed", {"via": "cli", "method": "recovery_key", "reason": "wrong_recovery_key"}),
        ("unlock", {"via": "cli", "method": "recovery_key"}),
    ]


def test_a_failed_unlock_adds_exactly_one_audit_entry_and_nothing_else(vault):
    vault.add("Email", {"password": "x"})
    tables = ("header", "anchors", "roster", "knowledge", "revisions", "edges", "heads", "meta")
    before = {t: vault._store._db.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    count = len(events(vault))
    vault.lock()
    with pytest.raises(WrongPassword):
        vault.unlock("not the password")
    assert {t: vault._store._db.execute(f"SELECT * FROM {t}").fetchall() for t in tables} == before
    assert [e for e, _ in new_events(vault, count)] == ["unlock.failed"]


def test_password_changes_and_failed_proofs_are_recorded(vault):
    count = len(events(vault))
    vault.change_password("a second password")
    vault.lock()
    vault.unlock_with_recovery_key(RecoveryKey.parse(vault.recovery_key.reveal()))
    vault.change_password("a third password")
    header = vault.header
    with pytest.raises(WrongPassword):
        vault.open_for_password_change(header, kek=header.password_kek("not it"))
    with pytest.raises(WrongRecoveryKey):
        vault.open_for_password_change(header, recovery_key=RecoveryKey(bytes(20)))
    assert new_events(vault, count) == [
        ("password.changed", {"via": "cli", "method": "password"}),
        ("unlock", {"via": "cli", "method": "recovery_key"}),
        ("password.changed", {"via": "cli", "method": "recovery_key"}),
        ("password.change_failed", {"via": "cli", "method": "password", "reason": "wrong_password"}),
        ("password.change_failed", {"via": "cli", "method": "recovery_key", "reason": "wrong_recovery_key"}),
    ]


def test_admitting_and_revoking_a_device_are_recorded(vault, tmp_path):
    with open_vault(Home(tmp_path / "device-b")) as other:
        request = bundles.join_request(other)
        member = bundles.admit(vault, request)
        count = len(events(vault))
        vault.revoke(member.device_id, PASSWORD)
    assert new_events(vault, count - 1) == [
        ("device.admitted", {"device_id": str(member.device_id), "device_name": member.name}),
        ("device.revoked", {"device_id": str(member.device_id), "device_name": member.name}),
    ]


def test_an_import_records_its_format_and_counts_in_the_same_transaction(vault):
    entries = [ImportEntry(f"Item {n}", (("password", f"pw-{n}"),), f"t:{n}") for n in range(3)]
    count = len(events(vault))
    import_entries(vault, entries, source_format="csv")
    import_entries(vault, entries, source_format="not a format")
    assert new_events(vault, count) == [
        ("items.imported", {"via": "cli", "format": "csv", "count": 3, "skipped": 0}),
        ("items.imported", {"via": "cli", "format": "unknown", "count": 0, "skipped": 3}),
    ]


def test_bundles_imported_and_rejected_are_recorded(vault, tmp_path):
    with open_vault(Home(tmp_path / "device-b")) as other:
        bundles.admit(vault, bundles.join_request(other))
        data, _ = bundles.export_bundle(vault, str(other.device.device_id))
        tampered = bytearray(data)
        tampered[len(data) // 2] ^= 1
        with pytest.raises(IntegrityError):
            bundles.import_bundle(other, bytes(tampered), expect_exporter=vault.device.device_id)
        with pytest.raises(bundles.NotExpectedExporter):
            bundles.import_bundle(other, data, expect_exporter=other.device.device_id)
        bundles.import_bundle(other, data, expect_exporter=vault.device.device_id)
        assert events(other) == [
            ("bundle.rejected", {"reason": "integrity"}),
            ("bundle.rejected", {"reason": "wrong_exporter"}),
            ("bundle.imported", {"device_id": str(vault.device.device_id), "count": 0}),
        ]


def test_a_restore_is_recorded_on_the_new_device(vault, tmp_path):
    vault.add("Mail", {"password": "x"})
    written = create_backup(vault, tmp_path / "backups")
    opened = open_backup_file(written.path, password=PASSWORD, allow_insecure_test_kdf=True)
    restore_home(Home(tmp_path / "restored"), opened, allow_insecure_test_kdf=True)
    with open_vault(Home(tmp_path / "restored")) as restored:
        assert events(restored) == [("backup.restored", {"device_id": str(vault.device.device_id), "count": 1})]


def test_input_rejected_by_a_sync_session_is_recorded_with_the_peer():
    a, b = make_replicas(2)
    count = len(events(b))
    peer = SyncPeer(b, initiator=False, peer=a.device.device_id)
    peer.start()
    peer.receive(b"\xff not a sync message")
    assert peer.failed
    foreign = encode_message(Hello(bytes(16), a.intake.store_id, a.knowledge(), bytes(32), bytes(32)))
    SyncPeer(b, initiator=False, peer=a.device.device_id).receive(foreign)
    b.flush_audit(everything=True)
    assert new_events(b, count) == [
        ("peer.rejected", {"device_id": str(a.device.device_id), "reason": "sync_protocol", "count": 1}),
        ("peer.rejected", {"device_id": str(a.device.device_id), "reason": "sync_protocol", "count": 1}),
    ]
    # an honest session records nothing
    count = len(events(b))
    a.add("fine", {"password": "x"})
    sync_pair(a, b)
    assert new_events(b, count) == []


def test_a_flood_of_rejections_makes_a_bounded_number_of_entries_with_the_whole_count(vault, tmp_path):
    count = len(events(vault))
    for n in range(1000):
        vault.audit_rejection("handshake_failed", peer="192.0.2.9")
    for n in range(200):
        vault.audit_rejection("not_member", peer=f"198.51.100.{n}")
    assert len(events(vault)) - count <= 1 + 16  # written at once: one per source, 16 sources at most
    vault.close()
    with open_vault(Home(tmp_path / "device-a")) as again:
        written = new_events(again, count)
    assert len(written) <= 2 + 16 + 1
    assert sum(d["count"] for e, d in written if d.get("peer") == "192.0.2.9") == 1000
    assert sum(d["count"] for e, d in written if d.get("reason") == "not_member") == 200


def test_two_connections_appending_at_once_make_one_chain(vault, tmp_path):
    """As a CLI command and the daemon would: two connections to one database, appending in
    parallel threads. Each append reads the head and inserts in one BEGIN IMMEDIATE transaction."""
    home = Home(tmp_path / "device-a")
    others = [open_vault(home) for _ in range(2)]

    def append(writer: Vault) -> None:
        for _ in range(40):
            writer.audit("unlock", via="cli", method="password")

    threads = [threading.Thread(target=append, args=(writer,)) for writer in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for writer in others:
        writer.close()
    report = verify_chain(vault.audit_trail.rows(), vault.audit_public_keys)
    assert report.ok and report.count == 81
    assert [row.seq for row in vault.audit_trail.rows()] == list(range(1, 82))


def test_a_store_made_before_the_audit_log_gains_it_and_keeps_everything(vault, tmp_path):
    vault.add("Mail", {"password": "x"})
    vault.close()
    home = Home(tmp_path / "device-a")
    connection = sqlite3.connect(home.database)
    connection.execute("DROP TABLE audit")  # what a store of the previous release looks like
    connection.commit()
    connection.close()
    with open_vault(home) as again:
        again.unlock(PASSWORD)
        assert [v.title for v in again.list_items()] == ["Mail"]
        assert events(again) == [("unlock", {"via": "cli", "method": "password"})]
    assert Store.open(home.database).audit_rows()  # and it is still there on the next opening


def test_no_secret_or_item_content_ever_reaches_the_audit_table(tmp_path):
    home = Home(tmp_path / "canary")
    with open_vault(home) as vault:
        recovery = vault.init(CANARY_PASSWORD, insecure_test_parameters(), "laptop", "Test OS")
        vault.add(CANARY_ITEM["title"], {"username": CANARY_ITEM["user"], "password": CANARY_ITEM["secret"]})
        import_entries(vault, [ImportEntry(CANARY_ITEM["title"] + "-imported",
                                           (("password", CANARY_ITEM["secret"]),), "csv:canary")],
                       source_format="csv")
        vault.lock()
        with pytest.raises(WrongPassword):
            vault.unlock(CANARY_WRONG)
        vault.unlock(CANARY_PASSWORD)
        vault.change_password(CANARY_NEW)
        keys = [vault.device.signing_seed, vault.device.noise_private, recovery._raw, vault.unlocking._kek,
                *vault.unlocked_keyring()._keys.values()]
        for n in range(50):
            vault.audit_rejection("not_member", peer="192.0.2.1")
    connection = sqlite3.connect(home.database)
    rows = connection.execute("SELECT seq, time, event, details, hash, signature FROM audit").fetchall()
    connection.close()
    assert len(rows) >= 7
    dump = b"".join(value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row)
    texts = [CANARY_PASSWORD, CANARY_WRONG, CANARY_NEW, recovery.reveal(), *CANARY_ITEM.values()]
    for canary in [t.encode() for t in texts] + [t.encode("utf-16-le") for t in texts]:
        assert canary not in dump
    for key in keys:
        assert key not in dump
