"""The command layer: what every front end does to a vault, once.

The CLI working on a home directly (no daemon running), the daemon's local API handlers, and any
front end to come (a D-Bus Secret Service, a browser host) call these and add only parsing and
presentation. Each method returns the documented JSON shape (``vaultpeer.service.views``, docs/api.md).
Nothing here pushes a change to other devices: ``Vault`` tells its ``on_local_commit`` listeners
(the daemon) after every commit, whichever front end made it.

A command with slow steps (a key derivation) is a generator: it yields each slow step as a
``Slow`` (pure: it touches no store) and gets its result back, so the CLI runs it in line
(``run_here``) and the daemon runs the slow steps in a worker thread while the vault stays on its
own thread. Either way, one definition of the command.
"""

import os
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vaultpeer.service import backup_files, bundle_files, transfer
from vaultpeer.core.backup import seal_backup
from vaultpeer.core.app_scopes import Scopes
from vaultpeer.core.errors import (AlreadyInitialized, Ambiguous, Forbidden, InvalidInput, NotFound, NoVault,
                                   VaultpeerError, WrongRecoveryKey)
from vaultpeer.core.generate import GenerateOptions
from vaultpeer.core.interchange import ImportEntry
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.item import ItemContent, resolve_reference
from vaultpeer.core.kdf import KdfParameters
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.core.text import is_plain_text
from vaultpeer.service.device import MAX_NAME_CHARS, load_profile, signing_key_state
from vaultpeer.service.home import Home
from vaultpeer.service.vault import ItemSummary, ItemView, Vault, prepare_password
from vaultpeer.core.search import Searchable, search
from vaultpeer.core import secret_service as ss
from vaultpeer.core.totp import parse_totp, totp_code
from vaultpeer.service.wordlist import generate_json
from vaultpeer.service.views import (
    audit_entry_json,
    check_json,
    conflict_json,
    history_json,
    item_json,
    listing_json,
    member_json,
    member_names,
    search_json,
)


#: The field holding an item's TOTP secret, and the one KeePass keeps its older settings in.
TOTP_FIELD = "totp"
KEEPASS_TOTP_SETTINGS = "TOTP Settings"


@dataclass(frozen=True)
class Running:
    """What only a running daemon knows, for ``status``."""

    listen: str | None
    socket: str
    peers: list[str]
    process: dict
    #: The pairing in progress: {"role": "inviter" | "joiner", "code_shown": bool}, or None.
    pairing: dict | None = None


@dataclass(frozen=True)
class Slow:
    """A slow, pure step of a command (``function()``), for its runner to run where it likes."""

    function: Callable[[], object]


def run_here(steps: Generator[Slow, object, object]) -> object:
    """Run a command with slow steps in this thread (the CLI)."""
    try:
        step = next(steps)
        while True:
            step = steps.send(step.function())
    except StopIteration as done:
        return done.value


class VaultCommands:
    """``access``: the scopes of the app a request comes from (issue 18), when they are limited to
    a folder or tag: then an item out of its reach is treated as absent (NotFound, left out of
    lists, searches and conflicts: its existence does not show), and a write that would touch an
    item out of reach, or move one out of (or into) reach, is Forbidden."""

    def __init__(self, vault: Vault, home: Home, access: Scopes | None = None):
        self.vault = vault
        self.home = home
        self.access = access if access is not None and (access.limited or access.limits_writes()) else None

    # --- state ------------------------------------------------------------------------------

    def status(self, running: Running | None = None) -> dict:
        """This device, its vault and (``running``) its daemon; no password needed."""
        vault = self.vault
        profile = load_profile(self.home)
        initialized = vault.initialized
        counts = vault.counts()
        info = {
            "device_id": str(vault.device.device_id),
            "name": profile.name,
            "os": profile.os_description,
            "vault_id": vault.vault_id.hex() if initialized else None,
            "locked": vault.locked,
            "listen": running.listen if running else None,
            "socket": running.socket if running else None,
            "peers": running.peers if running else [],
            "pairing": running.pairing if running else None,
            "conflicts": vault.conflict_count() if not vault.locked else vault.conflicted_item_count(),
            "items": counts["items"],
            "revisions": counts["revisions"],
            "home": str(self.home.path),
            "signing_key": signing_key_state(self.home),
        }
        if running is not None:
            info["process"] = running.process
        return {**info, **(vault.health() if initialized else {})}

    def change_password(self, new_password: str, *, password: str | None = None,
                        recovery_key: str | None = None) -> Generator[Slow, object, dict]:
        """Re-wrap the vault key under ``new_password``, proven by the current ``password`` or
        by the ``recovery_key`` (a wrong one is in the audit log). No item is re-encrypted; the
        vault stays locked if it was."""
        vault = self.vault
        header = vault.header
        if recovery_key is not None:
            try:
                key = RecoveryKey.parse(recovery_key)
            except ValueError as exc:
                raise WrongRecoveryKey(f"that is not a recovery key: {exc}") from None
            keyring, proof = vault.open_for_password_change(header, recovery_key=key), "recovery_key"
        else:
            kek = yield Slow(partial(header.password_kek, password))
            keyring, proof = vault.open_for_password_change(header, kek=kek), "password"
        kdf, new_kek = yield Slow(partial(prepare_password, header, new_password,
                                          allow_insecure_test_kdf=vault.allows_insecure_test_kdf))
        vault.set_password(kdf, new_kek, keyring=keyring, proof=proof)
        return {"changed": True}

    def rename_device(self, name: str | None, os_description: str | None) -> dict:
        """Change this device's name and/or OS description (InvalidInput if not plain text) and
        tell the other members (``Vault.describe_self``): at once when the vault is unlocked, else
        at its next unlock. ``announced``: whether they are told now (null with no vault yet)."""
        from vaultpeer.service.device import DeviceProfile, save_profile

        profile = load_profile(self.home)
        if name or os_description:
            profile = DeviceProfile(name or profile.name, os_description or profile.os_description)
            try:
                save_profile(self.home, profile)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        announced = self.vault.describe_self() or not self.vault.locked if self.vault.initialized else None
        return {"device_id": str(self.vault.device.device_id), "name": profile.name, "os": profile.os_description,
                "announced": announced}

    def init(self, password: str, name: str | None = None, quick_kdf: bool = False,
             measure: Callable[[KdfParameters], float] | None = None,
             still_wanted: Callable[[], bool] = lambda: True) -> Generator[Slow, object, dict]:
        """Create this device's vault under ``password`` (left unlocked) and return
        ``{"vault_id", "device_id", "name", "recovery_key", "kdf"}``: the recovery key is not stored
        anywhere, this is the one time it is told. Argon2id is calibrated on this machine (a slow
        step, timed by ``measure``), or the floor with ``quick_kdf``, or the test-only parameters
        when the vault allows them. Everything is checked before anything is written: an
        initialized vault (AlreadyInitialized), a short password or a bad ``name`` (InvalidInput).
        ``still_wanted`` is asked after the slow steps, before anything is written: a caller that
        went away meanwhile could never be told the recovery key, so no vault is made for it."""
        from vaultpeer.core import kdf as kdf_module
        from vaultpeer.service.device import DeviceProfile, save_profile
        from vaultpeer.service.vault.unlocking import check_new_password

        vault = self.vault
        if vault.initialized:
            raise AlreadyInitialized(f"this device already has a vault (home: {self.home.path})")
        check_new_password(password)
        profile = load_profile(self.home)
        if name is not None:
            profile = DeviceProfile(name, profile.os_description)
            if not is_plain_text(name, MAX_NAME_CHARS) or not name.strip():
                raise InvalidInput(f"a device name is 1-{MAX_NAME_CHARS} characters of plain text")
        cpus = os.cpu_count() or 1
        if vault.allows_insecure_test_kdf:
            params = kdf_module.insecure_test_parameters()
        elif quick_kdf:
            params = kdf_module.minimum_parameters(cpus)
        else:
            params = yield Slow(partial(kdf_module.calibrate, measure or _time_derivation, cpu_count=cpus))
        kek = yield Slow(partial(params.derive, password))
        if not still_wanted():
            raise VaultpeerError("the caller went away before the vault was created: nothing was written")
        if name is not None:
            save_profile(self.home, profile)
        recovery_key = vault.init(password, params, profile.name, profile.os_description, kek=kek)
        return {"vault_id": vault.vault_id.hex(), "device_id": str(vault.device.device_id), "name": profile.name,
                "recovery_key": recovery_key.reveal(),
                "kdf": {"memory_kib": params.memory_kib, "time_cost": params.time_cost,
                        "parallelism": params.parallelism}}

    def audit_log(self, limit: int | None = None) -> list:
        """This device's audit log, oldest first (``limit``: only the newest that many), as
        `log --json` shows it; no password needed (it holds no secret)."""
        return [audit_entry_json(row) for row in self.vault.audit_trail.rows(newest=limit)]

    def verify_audit_log(self, head: bytes | None = None) -> dict:
        """The audit log's hash chain and signatures checked (and, with ``head``, that the entry
        with that hash, or hash prefix, noted earlier is still there), as `log --verify --json`."""
        from vaultpeer.core.audit import verify_chain

        return verify_chain(self.vault.audit_trail.rows(), self.vault.audit_public_keys, expected_head=head).to_json()

    def check(self, decrypt: bool = False) -> dict:
        """The database, every revision's signature, and whether every revision decrypts: that
        needs the vault unlocked, and ``decrypt`` insists on it (VaultLocked); an unlocked vault
        is always checked so (``decrypted`` says whether it was)."""
        if not self.vault.initialized:
            raise NoVault()
        if decrypt:
            self.vault.unlocked_keyring()
        return check_json(self.vault.check())

    # --- items ------------------------------------------------------------------------------

    def _item(self, view: ItemView) -> dict:
        return item_json(view, member_names(self.vault.roster), self.vault.created(view.id))

    # --- an app's reach (issue 18) --------------------------------------------------------------

    def _views(self, deleted: bool | None) -> list[ItemSummary]:
        """The items (live, deleted, or both for None) in the app's reach, as the index has them
        (nothing decrypted)."""
        views = self.vault.summaries(deleted=deleted) if deleted is not None else \
            self.vault.summaries() + self.vault.summaries(deleted=True)
        return [v for v in views if self.access is None or self.access.visible(v.searchable)]

    def _reference(self, item: str, *, deleted: bool | None = False) -> str:
        """``item`` as the vault should look it up: unchanged for the person, and for an app with
        limited scopes resolved among the items in its reach only (to the full id), so that an
        item out of reach is NotFound, and never a candidate of an ambiguous name."""
        if self.access is None:
            return item
        views = self._views(deleted)
        try:
            return str(resolve_reference(item, [(v.id, v.title) for v in views]))
        except Ambiguous as exc:
            by_id = {str(v.id): v for v in views}
            raise Ambiguous(str(exc), [{"id": c["id"], "title": c["title"],
                                        "username": by_id[c["id"]].searchable.username,
                                        "folder": by_id[c["id"]].searchable.folder}
                                       for c in exc.candidates]) from None

    def _writable(self, item: str, *, deleted: bool | None = False) -> str:
        """``item`` (as ``_reference``), which the app must also be allowed to write."""
        reference = self._reference(item, deleted=deleted)
        if self.access is not None and not self.access.writable(
                self.vault.find_summary(reference, deleted=deleted).searchable):
            raise Forbidden("this app may read this item but not change it")
        return reference

    def _stays_in_reach(self, content: ItemContent) -> None:
        """A write leaves the item in the app's reach (it cannot move one out of, or into, it)."""
        if self.access is not None and not self.access.writable(
                Searchable.from_fields(content.title, ((f.name, f.value) for f in content.fields))):
            raise Forbidden("this app may write only items in its folder or with its tag: this one would not be")

    # --- items ---------------------------------------------------------------------------------

    def list_items(self, deleted: bool = False) -> list:
        return [listing_json(v) for v in self._views(deleted)]

    def get(self, item: str) -> dict:
        return self._item(self.vault.get(self._reference(item)))

    def search(self, text: str, deleted: bool = False) -> list:
        """Items (``deleted`` ones instead) matching every word of ``text`` (title, username, URL
        and its host, folder, tags; case-insensitive), best first (core/search.py)."""
        views = {v.id: v for v in self._views(deleted)}
        return [search_json(views[i]) for i in search(text, ((i, v.searchable) for i, v in views.items()))]

    def search_url(self, url: str, deleted: bool = False) -> list:
        """Items (``deleted`` ones instead) for the web page at ``url``, as browser extensions
        match (core/urlmatch.py: the same host, else the same registrable domain), best first,
        in ``search``'s shape. Every URL field of an item counts (``url``, ``url 2``...)."""
        from vaultpeer.core.urlmatch import parse_site_url, search_by_url
        from vaultpeer.service.public_suffixes import registrable_domain

        parse_site_url(url)  # a bad URL is refused before the vault is read (locked or not)
        views = {v.id: v for v in self._views(deleted)}  # an app's: its reach only
        items = ((i, v.title, v.urls) for i, v in views.items())
        return [search_json(views[i]) for i in search_by_url(url, items, registrable_domain)]

    def otp(self, item: str, now: float | None = None) -> dict:
        """The current TOTP code of ``item`` (its ``totp`` field: an otpauth URI or a base32
        secret; KeePass's ``TOTP Settings`` field is read too), at ``now`` (unix time)."""
        view = self.vault.get(self._reference(item))
        values = {f.name.casefold(): f.value for f in reversed(view.fields)}  # the first of a name wins
        secret = values.get(TOTP_FIELD, "")
        if not secret.strip():
            raise NotFound(f"the item has no TOTP secret (no {TOTP_FIELD} field)")
        settings = parse_totp(secret, values.get(KEEPASS_TOTP_SETTINGS.casefold()))
        return totp_code(settings, time.time() if now is None else now).to_json()

    def add(self, title: str, fields: Mapping[str, str], generate: Sequence[str] = (),
            options: GenerateOptions = GenerateOptions()) -> dict:
        """A new item; each field named in ``generate`` gets a new password (or passphrase) as
        ``options`` says."""
        values = _with_generated(fields, generate, options)
        self._stays_in_reach(ItemContent.build(title, values))
        view = self.vault.add(title, values)
        return {"id": str(view.id), "title": view.title, "revision": str(view.revision)}

    def edit(self, item: str, fields: Mapping[str, str], remove: Sequence[str] = (), title: str | None = None,
             generate: Sequence[str] = (), options: GenerateOptions = GenerateOptions()) -> dict:
        item = self._writable(item)
        values = _with_generated(fields, generate, options)
        if self.access is not None:
            self._stays_in_reach(self.vault.get(item).content.edited(values, remove, title))
        return self._item(self.vault.edit(item, values, remove, title))

    def delete(self, item: str) -> dict:
        return self._item(self.vault.delete(self._writable(item)))

    def history(self, item: str) -> list:
        names = member_names(self.vault.roster)
        return [history_json(e, names) for e in self.vault.history(self._reference(item, deleted=None))]

    def restore(self, item: str, revision: str | None = None) -> dict:
        item = self._writable(item, deleted=None)
        if self.access is not None and revision is not None:
            for entry in self.vault.history(item):
                if str(entry.revision) == revision.strip():
                    self._stays_in_reach(ItemContent(entry.title, entry.fields))
        return self._item(self.vault.restore(item, revision))

    def conflicts(self) -> list:
        return [conflict_json(v) for v in self.vault.conflicts()
                if self.access is None or self.access.visible(v.searchable)]

    def resolve(self, item: str, take: str | None = None, fields: Mapping[str, str] | None = None,
                title: str | None = None) -> dict:
        item = self._writable(item)
        if self.access is not None:
            view = self.vault.get(item)
            deciding = {register[1].casefold() for register in (view.conflicts or {})
                        if len(register) == 2 and register[0] == "field"}
            if deciding & self.access.limit_fields():
                raise Forbidden("this item's folder or tags are in conflict: only the person can resolve that")
            self._stays_in_reach(view.content.edited(fields or {}, (), title))
        return self._item(self.vault.resolve_conflict(item, take=take, set_fields=fields or {}, title=title))

    def import_entries(self, entries: list[ImportEntry], progress: Callable[[int], None] | None = None,
                       file_format: str | None = None) -> dict:
        if self.access is not None:
            for entry in entries:
                self._stays_in_reach(ItemContent.build(entry.title, entry.fields))
        return transfer.import_entries(self.vault, entries, progress, source_format=file_format)

    def export_items(self) -> list:
        return transfer.export_items(self.vault)

    # --- the Secret Service (core/secret_service.py, io/secret_service) -----------------------

    def exposed_items(self) -> list["ExposedItem"]:
        """The live items D-Bus clients see: those carrying the ``secret-service`` marker."""
        return [_exposed(self.vault.view(s.id)) for s in self.vault.summaries() if s.exposed]

    def exposed_item(self, item_id: str) -> "ExposedItem":
        """One exposed item by its full id (NotFound if it is not there, deleted or not exposed)."""
        for summary in self.vault.summaries():
            if str(summary.id) == item_id and summary.exposed:
                return _exposed(self.vault.view(summary.id))
        raise NotFound("no such Secret Service item")

    def create_exposed(self, item: ss.SecretItem, replace: bool = False) -> tuple["ExposedItem", bool]:
        """Store a Secret Service item; with ``replace``, over the exposed item that has exactly
        these attributes, if there is one. Returns the item and whether it is new."""
        title, fields = ss.to_fields(item)
        if replace:
            same = [e for e in self.exposed_items() if dict(e.item.attributes) == dict(item.attributes)]
            if same:
                current = self.vault.get(same[0].id)
                stale = [f.name for f in current.fields
                         if f.name.startswith(ss.ATTRIBUTE_PREFIX) and f.name not in fields]
                return _exposed(self._edit_if_changed(same[0].id, fields, stale, title)), False
        return _exposed(self.vault.add(title, fields)), True

    def set_exposed_secret(self, item_id: str, secret: bytes, content_type: str) -> "ExposedItem":
        view = self.vault.get(self.exposed_item(item_id).id)
        names = {f.name for f in view.fields}
        if ss.SECRET_FIELD in names or ss.FALLBACK_SECRET_FIELD not in names:
            fields = ss.secret_fields(secret, content_type)
        else:  # a person's own login, exposed: its password is the secret
            ss.check_secret(secret, content_type)
            try:
                fields = {ss.FALLBACK_SECRET_FIELD: secret.decode("utf-8")}
            except UnicodeDecodeError:
                raise InvalidInput("this item's secret is its password, which is text") from None
        return _exposed(self._edit_if_changed(item_id, fields))

    def set_exposed_label(self, item_id: str, label: str) -> "ExposedItem":
        self.exposed_item(item_id)
        label = ss.check_label(label)
        return _exposed(self._edit_if_changed(item_id, {}, (), label if label.strip() else ss.EMPTY_LABEL_TITLE))

    def set_exposed_attributes(self, item_id: str, attributes: dict[str, str]) -> "ExposedItem":
        self.exposed_item(item_id)
        fields = ss.attribute_fields(attributes)
        view = self.vault.get(item_id)
        stale = [f.name for f in view.fields if f.name.startswith(ss.ATTRIBUTE_PREFIX) and f.name not in fields]
        return _exposed(self._edit_if_changed(item_id, fields, stale))

    def delete_exposed(self, item_id: str) -> None:
        self.exposed_item(item_id)
        self.vault.delete(item_id)

    def delete_exposed_collection(self) -> tuple[int, int]:
        """A client deletes the Secret Service collection: the items clients stored (they hold a
        ``secret`` field) are deleted, restorable as any deleted item; the person's own items that
        were shown to clients are hidden again, never deleted. Returns (deleted, hidden)."""
        deleted = hidden = 0
        for exposed in self.exposed_items():  # each change its own commit (and pushed as it is)
            view = self.vault.get(exposed.id)
            if any(f.name == ss.SECRET_FIELD for f in view.fields):
                self.vault.delete(exposed.id)
                deleted += 1
            else:
                self.vault.edit(exposed.id, {}, [ss.EXPOSED_FIELD])
                hidden += 1
        return deleted, hidden

    def _edit_if_changed(self, item_id: str, fields: Mapping[str, str], remove: Sequence[str] = (),
                         title: str | None = None) -> ItemView:
        view = self.vault.get(item_id)
        current = view.content
        if current.edited(fields, remove, title) == current:
            return view
        return self.vault.edit(item_id, fields, remove, title)

    # --- sync through files (docs/cli.md: join-request, admit, bundle) ------------------------

    def join_request(self) -> bytes:
        """This device's signed public identity, for a member to admit."""
        return bundle_files.join_request(self.vault)

    def admit(self, request: bytes) -> dict:
        """Vouch for the device of a join request (signed: the signing key must be at hand)."""
        return member_json(bundle_files.admit(self.vault, request))

    def export_bundle(self, target: str | None = None) -> tuple[bytes, dict]:
        """The bundle's bytes and its report (only what ``target`` lacks, if named)."""
        return bundle_files.export_bundle(self.vault, target)

    def inspect_bundle(self, data: bytes) -> dict:
        return bundle_files.inspect_bundle(self.vault, data).to_json()

    def import_bundle(self, data: bytes, exporter: DeviceId) -> dict:
        """Apply a bundle made by ``exporter`` (the device id the person confirmed)."""
        return bundle_files.import_bundle(self.vault, data, expect_exporter=exporter)

    # --- backups (docs/cli.md: backup) --------------------------------------------------------

    def seal_backup(self) -> Generator[Slow, object, tuple[bytes, dict]]:
        """A sealed backup of the whole vault and ``{"revisions", "items"}``, for the caller to
        write: read here, sealed as a slow step."""
        keyring, contents = backup_files.snapshot(self.vault)
        data = yield Slow(partial(seal_backup, keyring, contents))
        return data, {"revisions": len(contents.revisions), "items": len({r.item_id for r in contents.revisions})}

    def create_backup(self, directory: Path, keep: int = backup_files.DEFAULT_KEEP) -> dict:
        """Write a backup file into ``directory`` and rotate old ones (the CLI without a daemon)."""
        return backup_files.create_backup(self.vault, directory, keep=keep).to_json()


def _time_derivation(params: KdfParameters) -> float:
    """How long one derivation under ``params`` takes here (what calibration measures)."""
    start = time.perf_counter()
    params.derive("calibration")
    return time.perf_counter() - start


@dataclass(frozen=True, repr=False)
class ExposedItem:
    """An item Secret Service clients see: its id, their view of it, and when it last changed."""

    id: str
    item: ss.SecretItem
    revision: str
    modified: int

    def __repr__(self) -> str:
        return f"ExposedItem({self.id}, redacted)"


def _exposed(view: ItemView) -> ExposedItem:
    return ExposedItem(str(view.id), ss.from_fields(view.title, ((f.name, f.value) for f in view.fields)),
                       str(view.revision), view.modified or 0)


def _with_generated(fields: Mapping[str, str], generate: Sequence[str], options: GenerateOptions) -> dict:
    """``fields`` and a generated value for each field named in ``generate``; a field given a
    value and also to generate is refused (one of the two would be dropped silently)."""
    both = sorted(set(fields) & set(generate))
    if both:
        raise InvalidInput(f"the field {both[0]!r} is given a value and also to generate: choose one")
    return {**fields, **_generated(generate, options)}


def _generated(names: Sequence[str], options: GenerateOptions) -> dict[str, str]:
    """A new secret for each field in ``names``, each drawn on its own."""
    return {name: generate_json(options)["password"] for name in names}
