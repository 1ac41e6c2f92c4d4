"""Sync through files, bound to a vault: join requests, admitting, and bundle export / import.

The formats and their cryptography are in ``vaultpeer.core.bundle``; this module decides what goes
into a bundle (what the target lacks, by what this device last knew of it, else everything) and
applies one: everything is verified before anything is stored, and one bad record rejects the
whole bundle. None of it needs the vault key, so a locked device (or daemon) can inspect and import
bundles and write a join request. Admitting a device and exporting a bundle sign with the device's
key, which is sealed under the vault's keys once the device holds a vault: they need it unlocked.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vaultpeer.core.bundle import MAX_BUNDLE_SIZE, BundleContents, JoinRequest, members_key, open_bundle, seal_bundle
from vaultpeer.core.errors import AlreadyInitialized, IntegrityError, InvalidInput, NoVault, VaultpeerError
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.roster import Member, Roster
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.device import load_profile
from vaultpeer.service.vault import Vault


class NotExpectedExporter(VaultpeerError):
    code = "integrity"


class BundleRefused(InvalidInput):
    """A bundle that opened but is not acceptable here; ``reason`` is what the audit log records."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@contextmanager
def _audited_rejection(vault: Vault) -> Iterator[None]:
    """Record a rejected bundle in the audit log (after any transaction was rolled back)."""
    try:
        yield
    except IntegrityError:
        vault.audit("bundle.rejected", reason="integrity")
        raise
    except NotExpectedExporter:
        vault.audit("bundle.rejected", reason="wrong_exporter")
        raise
    except BundleRefused as exc:
        vault.audit("bundle.rejected", reason=exc.reason)
        raise
    except AlreadyInitialized:
        vault.audit("bundle.rejected", reason="refused")
        raise


@dataclass(frozen=True)
class BundleSummary:
    """What a person is shown before importing (and what import reports)."""

    exporter: DeviceId
    exporter_name: str
    target: DeviceId | None
    created: int
    revisions: int
    #: This device has no vault yet: importing joins the bundle's vault.
    joining: bool

    def to_json(self) -> dict:
        return {"exporter": str(self.exporter), "exporter_name": self.exporter_name,
                "for": None if self.target is None else str(self.target), "created": self.created,
                "revisions": self.revisions, "joining": self.joining}


def read_bundle_file(path: Path) -> bytes:
    """A bundle file's bytes, refusing anything too large to be one before reading it."""
    try:
        if path.stat().st_size > MAX_BUNDLE_SIZE:
            raise InvalidInput("that file is too large to be a vaultpeer bundle")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def join_request(vault: Vault) -> bytes:
    """This device's signed public identity, for a member to admit."""
    if vault.initialized:
        raise AlreadyInitialized("this device already belongs to a vault")
    profile = load_profile(vault.home)
    return JoinRequest.make(vault.device, profile.name, profile.os_description)


def read_join_request(data: bytes) -> JoinRequest:
    return JoinRequest.parse(data)


def admit(vault: Vault, data: bytes) -> Member:
    """Vouch for the device of a join request (after the person compared device ids)."""
    request = JoinRequest.parse(data)
    roster = vault.roster
    if request.device_id in roster.revoked:
        raise InvalidInput("that device was revoked from this vault; it cannot be admitted again")
    if request.device_id not in roster.members:
        vault.require_signing_key("the roster entry admitting a device")
        vault.enroll(request.keys, request.name, request.os_description)
        vault.audit("device.admitted", device_id=str(request.device_id), device_name=request.name)
    return vault.roster.members[request.device_id]


def export_bundle(vault: Vault, target: str | None = None) -> tuple[bytes, dict]:
    """The bundle's bytes and a report. With ``target`` (a member's id, id prefix or name) only
    what it lacks, by what this device last knew of it, encrypted for it as well as the members."""
    if not vault.initialized:
        raise NoVault()
    vault.require_signing_key("a bundle")
    target_id = vault.find_member(target) if target is not None else None
    if target_id is not None and target_id not in vault.roster.members:
        raise InvalidInput("that device is not a member of this vault (admit it first)")
    known = vault.intake.peer_knowledge(target_id) if target_id is not None else None
    revisions = tuple(vault.revisions_missing_from(known or VersionVector()))
    header = vault.header
    contents = BundleContents(
        vault_id=header.vault_id,
        exporter=vault.device.public,
        target=target_id,
        created=int(time.time()),
        knowledge=vault.knowledge(),
        header=header,
        roster=tuple(vault.outgoing_roster()),
        revisions=revisions,
    )
    device_public = vault.roster.members[target_id].keys.noise_public if target_id is not None else None
    data = seal_bundle(contents, vault.device, members=members_key(header), device_public=device_public)
    return data, {"revisions": len(revisions), "for": None if target_id is None else str(target_id),
                  "incremental": known is not None, "bytes": len(data)}


def _open(vault: Vault, data: bytes) -> BundleContents:
    members = [members_key(vault.header)] if vault.initialized else []
    return open_bundle(data, members=members, device=vault.device)


def _joining_roster(vault: Vault, contents: BundleContents) -> Roster:
    """The roster a device joining through this bundle would have (anchored on the exporter)."""
    anchors = [vault.device.public, contents.exporter]
    return Roster(contents.vault_id, anchors, []).with_entries(contents.roster)


def inspect_bundle(vault: Vault, data: bytes) -> BundleSummary:
    """Open and verify a bundle without applying it."""
    with _audited_rejection(vault):
        return _inspect(vault, data)[0]


def _inspect(vault: Vault, data: bytes) -> tuple[BundleSummary, BundleContents]:
    contents = _open(vault, data)
    joining = not vault.initialized
    if joining:
        roster = _joining_roster(vault, contents)
        if contents.target != vault.device.device_id or vault.device.device_id not in roster.members:
            raise BundleRefused("this bundle does not admit this device: on a member, run `vaultpeer admit` with "
                                "this device's join request, then `vaultpeer bundle export FILE --for DEVICE`",
                                "not_for_this_device")
    else:
        if contents.vault_id != vault.vault_id:
            raise IntegrityError()
        roster = vault.roster.with_entries(contents.roster)
    exporter = contents.exporter.device_id
    member = roster.members.get(exporter)
    if member is None or member.keys != contents.exporter:
        raise BundleRefused("this bundle was made by a device that is not (or no longer) a member of this vault; "
                            "nothing was imported", "not_member")
    summary = BundleSummary(exporter, member.name, contents.target, contents.created, len(contents.revisions),
                            joining)
    return summary, contents


def import_bundle(vault: Vault, data: bytes, *, expect_exporter: DeviceId | None = None) -> dict:
    """Verify everything, then apply it in one transaction. Joining (a device with no vault yet)
    requires ``expect_exporter``: the device id the person confirmed on the admitting device."""
    with _audited_rejection(vault):
        summary, contents = _inspect(vault, data)
        if expect_exporter is not None and expect_exporter != summary.exporter:
            raise NotExpectedExporter("this bundle was not made by the device you confirmed; nothing was imported")
        if summary.joining and expect_exporter is None:
            raise InvalidInput("joining through a bundle needs the admitting device's id confirmed")
        with vault.transaction():
            if summary.joining:
                profile = load_profile(vault.home)
                vault.join(contents.header, contents.roster, contents.exporter, profile.name, profile.os_description)
            received = vault.receive_records(contents.header, contents.roster, contents.revisions)
            vault.intake.raise_peer_knowledge(summary.exporter, contents.knowledge)
    vault.audit("bundle.imported", device_id=str(summary.exporter), count=len(received.revisions))
    return {**summary.to_json(), "new_revisions": len(received.revisions),
            "already_had": len(contents.revisions) - len(received.revisions),
            "header_replaced": received.header_replaced, "roster_changed": received.roster_changed,
            "items_touched": sorted({str(r.item_id) for r in received.revisions})}
