"""A device's vault: the store and device identity, plus the keyring while unlocked.

This is the one place that turns person-level operations (add, edit, delete, restore, change the
password) into sealed, signed revisions, and the one place that admits revisions from elsewhere
(``receive``): each is verified against the vault's members before anything is stored, and one
bad revision rejects its whole batch. The CLI uses it directly today; the daemon will hold one.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from vaultpeer.core.errors import (
    AlreadyInitialized,
    IntegrityError,
    InvalidInput,
    NoVault,
    NotFound,
    VaultLocked,
)
from vaultpeer.core.history import causal_order, displayed_head
from vaultpeer.core.identity import DeviceId, DeviceKeys
from vaultpeer.core.item import Field, ItemContent, ItemId, resolve_reference
from vaultpeer.core.kdf import KdfParameters, SALT_SIZE
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader, create_vault
from vaultpeer.core.revision import Revision, RevisionId, open_revision, seal_revision
from vaultpeer.device import load_or_create_keys
from vaultpeer.home import Home
from vaultpeer.store import Store


@dataclass(frozen=True, repr=False)
class ItemView:
    """An item as shown to its owner: the content of its displayed head, and its state."""

    id: ItemId
    title: str
    fields: tuple[Field, ...]
    revision: RevisionId
    deleted: bool
    #: True while the item has several heads (concurrent edits not yet merged or resolved).
    conflict: bool
    heads: tuple[RevisionId, ...]

    def __repr__(self) -> str:
        return f"ItemView({self.id}, revision={self.revision}, redacted)"


@dataclass(frozen=True, repr=False)
class HistoryEntry:
    revision: RevisionId
    parents: tuple[RevisionId, ...]
    deleted: bool
    is_head: bool
    title: str
    fields: tuple[Field, ...]

    def __repr__(self) -> str:
        return f"HistoryEntry({self.revision}, redacted)"


@dataclass(frozen=True)
class CheckReport:
    database_ok: bool
    revisions_checked: int
    bad_signatures: tuple[str, ...]
    undecryptable: tuple[str, ...]
    decrypted: bool

    @property
    def ok(self) -> bool:
        return self.database_ok and not self.bad_signatures and not self.undecryptable


class Vault:
    def __init__(self, home: Home, store: Store, device: DeviceKeys, *, allow_insecure_test_kdf: bool = False):
        self.home = home
        self.store = store
        self.device = device
        self._allow_insecure_test_kdf = allow_insecure_test_kdf
        self._keyring: Keyring | None = None
        self._kek: bytes | None = None
        self._index: dict[ItemId, ItemView] | None = None
        self._verified_header: tuple[bytes, VaultHeader] | None = None

    @classmethod
    def open(cls, home: Home, *, allow_insecure_test_kdf: bool = False) -> "Vault":
        home.ensure()
        device = load_or_create_keys(home)
        return cls(home, Store.open(home.database), device, allow_insecure_test_kdf=allow_insecure_test_kdf)

    def close(self) -> None:
        self.lock()
        self.store.close()

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"Vault(home={str(self.home.path)!r}, device={self.device.device_id.short}…, {state})"

    # --- header, keys and locking --------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self.store.header_record() is not None

    @property
    def header(self) -> VaultHeader:
        """The stored header, verified against its author's signing key."""
        record = self.store.header_record()
        if record is None:
            raise NoVault()
        if self._verified_header is None or self._verified_header[0] != record:
            header = VaultHeader.from_bytes(record)
            header.verify(self.store.member(header.author))
            self._verified_header = (record, header)
        return self._verified_header[1]

    @property
    def vault_id(self) -> bytes:
        return self.header.vault_id

    @property
    def locked(self) -> bool:
        return self._keyring is None

    def init(self, password: str, kdf: KdfParameters) -> RecoveryKey:
        """Create this device's vault. Returns the recovery key, which is not stored anywhere."""
        if self.initialized:
            raise AlreadyInitialized()
        kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        _check_new_password(password)
        kek = kdf.derive(password)
        header, keyring, recovery_key = create_vault(kek, kdf, self.device)
        with self.store.transaction():
            self.store.put_member(self.device.public)
            self.store.put_header_record(header.to_bytes())
        self._keyring, self._kek, self._index = keyring, kek, None
        return recovery_key

    def unlock(self, password: str) -> None:
        header = self.header
        header.kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        kek = header.password_kek(password)
        self._keyring = header.open_with_kek(kek)
        self._kek = kek

    def unlock_with_recovery_key(self, recovery_key: RecoveryKey) -> None:
        """Open with the recovery key; set a new password next (``change_password``)."""
        self._keyring = self.header.open_with_recovery_key(recovery_key)
        self._kek = None

    def lock(self) -> None:
        self._keyring = self._kek = self._index = None

    def change_password(self, new_password: str) -> None:
        """Re-wrap the keyring under a new password (fresh salt, same cost). No item is re-encrypted."""
        keyring = self._require_unlocked()
        _check_new_password(new_password)
        header = self.header
        kdf = replace(header.kdf, salt=os.urandom(SALT_SIZE))
        kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        kek = kdf.derive(new_password)
        new_header = header.with_password(keyring, kek, kdf, self.device)
        with self.store.transaction():
            self.store.put_header_record(new_header.to_bytes())
        self._kek = kek

    def _require_unlocked(self) -> Keyring:
        if not self.initialized:
            raise NoVault()
        if self._keyring is None:
            raise VaultLocked()
        return self._keyring

    # --- reading ---------------------------------------------------------------------------------

    def _view(self, item_id: ItemId, item_heads: list[Revision], vault_id: bytes) -> ItemView:
        shown = displayed_head(item_heads)
        content = open_revision(vault_id, self._require_unlocked(), shown)
        return ItemView(
            id=item_id,
            title=content.title,
            fields=content.fields,
            revision=shown.revision_id,
            deleted=shown.deleted,
            conflict=len(item_heads) > 1,
            heads=tuple(sorted(r.revision_id for r in item_heads)),
        )

    def _items(self) -> dict[ItemId, ItemView]:
        self._require_unlocked()
        if self._index is None:
            grouped: dict[ItemId, list[Revision]] = {}
            for revision in self.store.all_heads():
                grouped.setdefault(revision.item_id, []).append(revision)
            vault_id = self.vault_id
            self._index = {item_id: self._view(item_id, heads, vault_id) for item_id, heads in grouped.items()}
        return self._index

    def _refresh(self, item_ids: Iterable[ItemId]) -> None:
        if self._index is None:
            return
        vault_id = self.vault_id
        for item_id in item_ids:
            self._index[item_id] = self._view(item_id, self.store.heads_of(item_id), vault_id)

    def resolve(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """The item ``reference`` names among live items (``deleted=False``), deleted ones
        (``True``) or all (``None``)."""
        items = self._items()
        candidates = [(v.id, v.title) for v in items.values() if deleted is None or v.deleted == deleted]
        try:
            return items[resolve_reference(reference, candidates)]
        except NotFound:
            if deleted is False and any(
                v.deleted and (str(v.id).startswith(reference.lower()) or v.title == reference)
                for v in items.values()
            ):
                raise NotFound("that item is deleted: see `vaultpeer ls --deleted` and `vaultpeer restore`") from None
            raise

    def list_items(self, *, deleted: bool = False) -> list[ItemView]:
        views = [v for v in self._items().values() if v.deleted == deleted]
        return sorted(views, key=lambda v: (v.title.casefold(), str(v.id)))

    def _verified(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """Resolve, then check the heads' signatures: whatever is shown or built upon is verified."""
        view = self.resolve(reference, deleted=deleted)
        vault_id = self.vault_id
        for head in self.store.heads_of(view.id):
            head.verify(vault_id, self.store.member(head.author))
        return view

    def get(self, reference: str) -> ItemView:
        return self._verified(reference)

    def history(self, reference: str) -> list[HistoryEntry]:
        view = self.resolve(reference, deleted=None)
        vault_id, keyring = self.vault_id, self._require_unlocked()
        entries = []
        for revision in causal_order(self.store.revisions_of(view.id)):
            revision.verify(vault_id, self.store.member(revision.author))
            content = open_revision(vault_id, keyring, revision)
            entries.append(
                HistoryEntry(
                    revision=revision.revision_id,
                    parents=revision.parents,
                    deleted=revision.deleted,
                    is_head=revision.revision_id in view.heads,
                    title=content.title,
                    fields=content.fields,
                )
            )
        return entries

    # --- writing ---------------------------------------------------------------------------------

    def _commit(self, item_id: ItemId, content: ItemContent, parents: Iterable[RevisionId], *,
                deleted: bool = False) -> ItemView:
        keyring = self._require_unlocked()
        vault_id = self.vault_id
        with self.store.transaction():
            revision = seal_revision(
                vault_id=vault_id,
                keyring=keyring,
                author=self.device,
                item_id=item_id,
                seq=self.store.next_seq(self.device.device_id),
                parents=parents,
                content=content,
                deleted=deleted,
            )
            self.store.insert_revisions([revision])
        self._refresh([item_id])
        return self._items()[item_id]

    def add(self, title: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> ItemView:
        return self._commit(ItemId.generate(), ItemContent.build(title, fields), parents=())

    def edit(
        self,
        reference: str,
        set_fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        remove: Iterable[str] = (),
        title: str | None = None,
    ) -> ItemView:
        view = self._verified(reference)
        current = ItemContent(view.title, view.fields)
        changed = current.edited(set_fields, remove, title)
        if changed.to_plaintext() == current.to_plaintext() and not view.conflict:
            raise InvalidInput("nothing to change")
        return self._commit(view.id, changed, parents=view.heads)

    def delete(self, reference: str) -> ItemView:
        """Write a tombstone (which keeps the content, so the item can be listed and restored)."""
        view = self._verified(reference)
        return self._commit(view.id, ItemContent(view.title, view.fields), parents=view.heads, deleted=True)

    def restore(self, reference: str, revision: str | None = None) -> ItemView:
        """A new revision with the content of an older one (or, for a deleted item, its last content)."""
        view = self._verified(reference, deleted=None)
        if revision is None:
            if not view.deleted:
                raise InvalidInput("the item is not deleted: name the revision to restore (see `history`)")
            content = ItemContent(view.title, view.fields)
        else:
            matches = [r for r in self.store.revisions_of(view.id) if str(r.revision_id) == revision.strip()]
            if not matches:
                raise NotFound("this item has no such revision (see `vaultpeer history`)")
            target = matches[0]
            target.verify(self.vault_id, self.store.member(target.author))
            content = open_revision(self.vault_id, self._require_unlocked(), target)
        return self._commit(view.id, content, parents=view.heads)

    # --- replication -------------------------------------------------------------------------

    def receive(self, revisions: Iterable[Revision]) -> list[Revision]:
        """Admit revisions from another device; works while locked.

        Every revision's author must be a member and its signature must verify for this vault,
        and no revision may contradict a stored one; otherwise IntegrityError and nothing of the
        batch is stored. Returns the revisions that were new.
        """
        revisions = list(revisions)
        vault_id = self.vault_id
        members: dict[DeviceId, object] = {}
        for revision in revisions:
            if revision.author not in members:
                members[revision.author] = self.store.member(revision.author)
            revision.verify(vault_id, members[revision.author])  # type: ignore[arg-type]
        added = self.store.insert_revisions(revisions)
        if not self.locked:
            self._refresh({r.item_id for r in added})
        return added

    def check(self) -> CheckReport:
        """Verify the database, every signature, and (when unlocked) that every revision decrypts."""
        database_ok = self.store.integrity_check()
        vault_id = self.vault_id
        keyring = self._keyring
        bad_signatures, undecryptable, checked = [], [], 0
        for revision in self.store.all_revisions():
            checked += 1
            try:
                revision.verify(vault_id, self.store.member(revision.author))
            except IntegrityError:
                bad_signatures.append(str(revision.revision_id))
                continue
            if keyring is not None:
                try:
                    open_revision(vault_id, keyring, revision)
                except IntegrityError:
                    undecryptable.append(str(revision.revision_id))
        return CheckReport(database_ok, checked, tuple(bad_signatures), tuple(undecryptable), keyring is not None)


MIN_PASSWORD_CHARS = 8


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a master password needs at least {MIN_PASSWORD_CHARS} characters")
