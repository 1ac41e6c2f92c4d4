"""Sync through files on real homes (SQLite files, device key files): an air-gapped device joins
by join request + bundle, devices converge by carrying bundles both ways, and every bad bundle is
rejected with nothing changed."""

import hashlib

import pytest

from helpers import PASSWORD
from vaultpeer.service import bundle_files as bundles
from vaultpeer.core.bundle import BUNDLE_MAGIC
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.device import DeviceProfile, save_profile
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def fingerprint(home: Home) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.path.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def titles(vault: Vault) -> list[str]:
    return sorted(v.title for v in vault.list_items())


def make_home(tmp_path, name: str) -> Home:
    home = Home(tmp_path / name)
    home.ensure()
    save_profile(home, DeviceProfile(name, "Test OS"))
    return home


def open_vault(home: Home) -> Vault:
    return Vault.open(home, allow_insecure_test_kdf=True)


@pytest.fixture
def homes(tmp_path):
    a_home, b_home, c_home = (make_home(tmp_path, n) for n in ("laptop", "desktop", "airgapped"))
    a = open_vault(a_home)
    a.init(PASSWORD, insecure_test_parameters(), "laptop", "Test OS")
    opened = [a]

    def opener(home: Home) -> Vault:
        vault = open_vault(home)
        opened.append(vault)
        return vault

    yield a, opener, (a_home, b_home, c_home)
    for vault in opened:
        vault.close()


def join_through_files(member: Vault, newcomer: Vault) -> dict:
    request = bundles.join_request(newcomer)
    bundles.admit(member, request)
    data, report = bundles.export_bundle(member, str(newcomer.device.device_id))
    assert report["incremental"] is False
    return bundles.import_bundle(newcomer, data, expect_exporter=member.device.device_id)


def test_an_air_gapped_device_joins_through_files_and_converges_both_ways(homes):
    a, opener, (_, _, c_home) = homes
    a.add("Email", {"username": "alice", "password": "one"})
    a.add("Bank", {"password": "two"})
    c = opener(c_home)

    report = join_through_files(a, c)
    assert report["joining"] is True and report["new_revisions"] == 2
    assert c.vault_id == a.vault_id and c.locked
    c.unlock(PASSWORD)
    assert titles(c) == ["Bank", "Email"]

    # concurrent edits to different fields, carried both ways
    a.edit("Email", {"username": "alice@work"})
    c.edit("Email", {"password": "changed on c"})
    c.add("Only on c", {"password": "c"})
    to_a, c_report = bundles.export_bundle(c, "laptop")
    assert c_report["incremental"] is True  # c knows what a had when a made its bundle
    assert c_report["revisions"] == 2  # only c's two new revisions
    a_report = bundles.import_bundle(a, to_a)
    assert a_report["joining"] is False and a_report["new_revisions"] == 2
    a.merge_pending()
    to_c, _ = bundles.export_bundle(a, str(c.device.device_id))
    bundles.import_bundle(c, to_c)
    c.merge_pending()
    # a learned of c's merge revision? carry once more so both hold the same heads
    bundles.import_bundle(a, bundles.export_bundle(c, "laptop")[0])

    assert a._store.head_ids() == c._store.head_ids()
    for vault in (a, c):
        email = vault.get("Email")
        assert {f.name: f.value for f in email.fields} == {"username": "alice@work", "password": "changed on c"}
        assert not email.conflict
    assert titles(a) == titles(c) == ["Bank", "Email", "Only on c"]
    assert str(c.device.device_id) in {str(d) for d in a.roster.members}


def test_importing_twice_or_an_old_bundle_changes_nothing(homes):
    a, opener, (_, _, c_home) = homes
    c = opener(c_home)
    join_through_files(a, c)
    a.add("One", {"password": "1"})
    old, _ = bundles.export_bundle(a)
    a.change_password("a newer password")  # a newer header
    a.edit("One", {"password": "2"})
    new, _ = bundles.export_bundle(a, str(c.device.device_id))

    assert bundles.import_bundle(c, new)["header_replaced"] is True
    before = (c._store.head_ids(), c.counts(), c._store.header_record())
    again = bundles.import_bundle(c, new)
    assert again["new_revisions"] == 0 and again["already_had"] >= 2
    assert bundles.import_bundle(c, old)["new_revisions"] == 0
    assert (c._store.head_ids(), c.counts(), c._store.header_record()) == before
    c.unlock("a newer password")  # the older header did not come back
    assert c.get("One").fields[0].value == "2"


def rejected(vault: Vault, home: Home, data: bytes, error=IntegrityError, match: str | None = None,
             **kwargs) -> None:
    before = fingerprint(home)
    with pytest.raises(error, match=match):
        bundles.import_bundle(vault, data, **kwargs)
    assert fingerprint(home) == before, "a rejected bundle changed the home"


def test_tampered_truncated_and_foreign_bundles_are_rejected_and_change_nothing(homes, tmp_path):
    a, opener, (a_home, b_home, c_home) = homes
    a.add("Secret", {"password": "x"})
    b = opener(b_home)
    join_through_files(a, b)
    b.unlock(PASSWORD)
    b.add("From b", {"password": "y"})
    data, _ = bundles.export_bundle(b, "laptop")

    for position in (len(BUNDLE_MAGIC) + 3, len(data) // 2, len(data) - 1):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        rejected(a, a_home, bytes(tampered))
    rejected(a, a_home, data[: len(data) - 40])
    rejected(a, a_home, data[: len(BUNDLE_MAGIC) + 1])
    rejected(a, a_home, b"not a bundle at all", InvalidInput, "not a vaultpeer bundle")
    with_future_version = BUNDLE_MAGIC + bytes([9]) + data[len(BUNDLE_MAGIC) + 1:]
    rejected(a, a_home, with_future_version, InvalidInput, "format version 9")

    foreign_home = make_home(tmp_path, "stranger")
    foreign = opener(foreign_home)
    foreign.init(PASSWORD, insecure_test_parameters(), "stranger", "Test OS")
    foreign.add("Foreign", {"password": "z"})
    foreign_bundle, _ = bundles.export_bundle(foreign)
    rejected(a, a_home, foreign_bundle)

    # the genuine bundle still imports after all that
    assert bundles.import_bundle(a, data)["new_revisions"] == 1


def test_a_bundle_from_a_revoked_device_is_rejected(homes):
    a, opener, (a_home, b_home, _) = homes
    b = opener(b_home)
    join_through_files(a, b)
    b.unlock(PASSWORD)
    b.add("Before revocation", {"password": "1"})
    bundles.import_bundle(a, bundles.export_bundle(b, "laptop")[0])
    a.unlock(PASSWORD)
    b.add("After revocation", {"password": "2"})
    late, _ = bundles.export_bundle(b, "laptop")
    a.revoke(b.device.device_id, PASSWORD)
    rejected(a, a_home, late, InvalidInput, "no longer")
    assert titles(a) == ["Before revocation"]


def test_joining_needs_the_right_device_and_the_confirmed_exporter(homes, tmp_path):
    a, opener, (a_home, b_home, c_home) = homes
    b, c = opener(b_home), opener(c_home)
    bundles.admit(a, bundles.join_request(b))
    for_b, _ = bundles.export_bundle(a, str(b.device.device_id))
    # c was not admitted and the bundle is not for it: it cannot even open it
    rejected(c, c_home, for_b, expect_exporter=a.device.device_id)
    # b must name the exporter it confirmed; a wrong one changes nothing
    rejected(b, b_home, for_b, bundles.NotExpectedExporter, expect_exporter=c.device.device_id)
    rejected(b, b_home, for_b, InvalidInput, "confirmed")
    assert not b.initialized
    # a bundle for "any member" cannot admit anyone
    bundles.admit(a, bundles.join_request(c))
    everyone, _ = bundles.export_bundle(a)
    rejected(c, c_home, everyone, expect_exporter=a.device.device_id)
    assert bundles.import_bundle(b, for_b, expect_exporter=a.device.device_id)["joining"] is True


def test_a_bundle_reveals_nothing_in_clear(homes):
    a, opener, (_, _, c_home) = homes
    a.add("CanaryTitle-1d9c", {"username": "canary-user-77", "password": "CANARY-PW-3b1f"})
    c = opener(c_home)
    bundles.admit(a, bundles.join_request(c))
    data, _ = bundles.export_bundle(a, str(c.device.device_id))
    for secret in (b"CanaryTitle-1d9c", b"canary-user-77", b"CANARY-PW-3b1f", a.vault_id,
                   a.device.device_id.raw, c.device.device_id.raw, a.device.public.signing_public,
                   b"laptop", b"airgapped", b"Test OS"):
        assert secret not in data


def test_admit_refuses_a_damaged_request_and_a_revoked_device(homes):
    a, opener, (a_home, b_home, _) = homes
    b = opener(b_home)
    request = bundles.join_request(b)
    damaged = bytearray(request)
    damaged[-5] ^= 1
    with pytest.raises(InvalidInput, match="damaged or altered"):
        bundles.admit(a, bytes(damaged))
    with pytest.raises(InvalidInput, match="not a vaultpeer join request"):
        bundles.admit(a, b"hello")
    assert b.device.device_id not in a.roster.members
    bundles.admit(a, request)
    a.unlock(PASSWORD)
    a.revoke(b.device.device_id, PASSWORD)
    with pytest.raises(InvalidInput, match="revoked"):
        bundles.admit(a, request)
