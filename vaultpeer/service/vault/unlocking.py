"""Unlocking: the master password and the recovery key, the keyring while unlocked, this device's
signing key sealed under the vault's keys (``vaultpeer.service.device``, core/signing_seal.py),
password changes, and locking.

It reads no header itself: the vault passes the current (verified) one in.
"""

import os
from collections.abc import Callable
from dataclasses import replace

from vaultpeer.core.errors import (
    InvalidInput,
    NoVault,
    SigningKeyLocked,
    VaultLocked,
    VaultpeerError,
    WrongPassword,
    WrongRecoveryKey,
)
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.kdf import SALT_SIZE, KdfParameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader
from vaultpeer.service.device import SEALED, secure_signing_key, signing_key_state
from vaultpeer.service.home import Home
from vaultpeer.service.store import Store
from vaultpeer.service.vault.audit_trail import AuditTrail

MIN_PASSWORD_CHARS = 8


class Unlocking:
    def __init__(self, store: Store, device: DeviceKeys, audit: AuditTrail, committed: Callable[[list[str]], None],
                 *, home: Home | None, allow_insecure_test_kdf: bool):
        self._store = store
        #: The full keys while unlocked (or while the seed is still in clear on disk); the
        #: public-only form (``can_sign`` False) while locked with the seed sealed.
        self.device = device
        self._audit = audit
        self._committed = committed
        self._home = home
        self._allow_insecure_test_kdf = allow_insecure_test_kdf
        self._keyring: Keyring | None = None
        self._kek: bytes | None = None
        #: Why the vault locked itself, if it did (a rotated key this device cannot open).
        self.locked_reason: str | None = None
        #: Called after every lock: what was read with the keys goes with them.
        self.on_lock: list[Callable[[], None]] = []

    @property
    def allows_insecure_test_kdf(self) -> bool:
        return self._allow_insecure_test_kdf

    @property
    def locked(self) -> bool:
        return self._keyring is None

    @property
    def keyring(self) -> Keyring | None:
        """The keyring while unlocked, else None (for reads that work either way, like ``check``)."""
        return self._keyring

    def check_kdf(self, kdf: KdfParameters) -> None:
        """The KDF floor (InvalidInput below it), unless this vault allows the test-only parameters."""
        kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)

    # --- unlocking and locking ---------------------------------------------------------------

    def derive_kek(self, header: VaultHeader, password: str) -> bytes:
        """The slow step of unlocking, on its own so a daemon can run it in a thread."""
        self.check_kdf(header.kdf)
        return header.password_kek(password)

    def unlock_with_kek(self, header: VaultHeader, kek: bytes) -> None:
        try:
            keyring = header.open_with_kek(kek)
        except WrongPassword:
            self._audit.record("unlock.failed", via=self._audit.via, method="password", reason="wrong_password")
            raise
        self._unlocked(keyring, kek)

    def unlock_with_recovery_key(self, header: VaultHeader, recovery_key: RecoveryKey) -> None:
        try:
            keyring = header.open_with_recovery_key(recovery_key)
        except WrongRecoveryKey:
            self._audit.record("unlock.failed", via=self._audit.via, method="recovery_key",
                               reason="wrong_recovery_key")
            raise
        self._unlocked(keyring, None)

    def _unlocked(self, keyring: Keyring, kek: bytes | None) -> None:
        self.device = self.unsealed_keys(keyring)
        self._keyring, self._kek = keyring, kek
        self.locked_reason = None

    def created(self, keyring: Keyring, kek: bytes) -> None:
        """A vault was just created with ``keyring``: unlocked with it."""
        self.device = self.unsealed_keys(keyring)
        self._keyring, self._kek = keyring, kek

    def rotated(self, keyring: Keyring, kek: bytes) -> None:
        """This device rotated the vault key (a revocation): seal new revisions with ``keyring``."""
        self._keyring, self._kek = keyring, kek

    def lock(self, reason: str | None = None) -> None:
        self._keyring = self._kek = None
        self.locked_reason = reason
        self._drop_signing_key_if_sealed()
        for listener in list(self.on_lock):
            listener()

    def require_unlocked(self) -> Keyring:
        """The keyring (NoVault without a vault, VaultLocked while locked)."""
        if self._keyring is not None:
            return self._keyring  # only a vault's header unlocks, and a store never loses its header
        if self._store.header_record() is None:
            raise NoVault()
        raise VaultLocked()

    def sealing_keyring(self, header: VaultHeader) -> Keyring:
        """The keyring to seal new revisions with: never one older than the header's key epoch. If
        the header moved on to an epoch this device cannot open, it locks and says why."""
        keyring = self.require_unlocked()
        if keyring.current_epoch < header.key_epoch:
            self.adopt(header)
            keyring = self.require_unlocked()
        return keyring

    def adopt(self, header: VaultHeader) -> None:
        """A newer header arrived. If our derived key opens it, take its keyring. If not (the
        password changed elsewhere, or the key was rotated under a fresh salt, or two devices
        rotated at once and the other won), lock and say why, rather than go on sealing under keys
        the winning header does not hold (or that a revoked device holds)."""
        if self._keyring is None:
            return
        try:
            if self._kek is not None:
                self._keyring = header.open_with_kek(self._kek)
                return
        except VaultpeerError:
            self._kek = None
        # Our key does not open it. Even at the same epoch it may hold another key (two devices
        # rotated at once), so go on with nothing held: lock, and let the password open it.
        self.lock("the vault key was rotated on another device (a device was unpaired, or the "
                  "password changed there): unlock again with the master password")

    # --- the signing key, sealed under the vault's keys ------------------------------------------

    def unsealed_keys(self, keyring: Keyring) -> DeviceKeys:
        """This device's full keys, the seed opened with ``keyring``. A seed still in clear on disk
        is sealed now (and its clear file removed), one sealed under an older epoch resealed."""
        if self._home is None:
            return self.device  # keys held only in memory (tests): nothing on disk to seal
        return secure_signing_key(self._home, self.device, keyring)

    def _drop_signing_key_if_sealed(self) -> None:
        """While locked, the seed is at hand only if it is still in clear on disk anyway."""
        if self._home is not None and self.device.can_sign and signing_key_state(self._home) == SEALED:
            self.device = self.device.without_signing_key()

    def require_own_signing_key(self) -> None:
        """Creating or joining a vault signs with a key in clear; a sealed one belongs to a vault
        this home no longer holds (its database was removed), whose keys are gone with it."""
        if not self.device.can_sign:
            raise SigningKeyLocked(
                "this home's signing key is sealed under the keys of a vault it no longer holds: "
                "create or join a vault in a new home (--home DIR)")

    def require_signing_key(self, action: str) -> None:
        """SigningKeyLocked naming ``action`` (e.g. "admitting a device") unless this device can sign
        now: said before the action starts rather than half-way through."""
        if not self.device.can_sign:
            raise SigningKeyLocked(f"unlock the vault first: {action} is signed with this device's key, "
                                   "which is sealed by the vault's keys while it is locked")

    # --- changing the password -----------------------------------------------------------------

    def change_password(self, header: VaultHeader, new_password: str, *, keyring: Keyring | None = None) -> None:
        """Re-wrap the keyring under a new password (fresh salt, same cost). No item is re-encrypted.

        ``keyring`` is the proof of the old password (or recovery key) when the vault is locked;
        otherwise the unlocked keyring is used.
        """
        kdf, kek = prepare_password(header, new_password, allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        self.set_password(header, kdf, kek, keyring=keyring)

    def open_for_password_change(self, header: VaultHeader, *, kek: bytes | None = None,
                                 recovery_key: RecoveryKey | None = None) -> Keyring:
        """The keyring of ``header``, opened with the current password's KEK or the recovery key:
        the proof a password change asks for while locked. A wrong one is recorded in the audit log."""
        method = "password" if kek is not None else "recovery_key"
        try:
            return header.open_with_kek(kek) if kek is not None else header.open_with_recovery_key(recovery_key)
        except (WrongPassword, WrongRecoveryKey) as exc:
            self._audit.record("password.change_failed", via=self._audit.via, method=method, reason=exc.code)
            raise

    def set_password(self, header: VaultHeader, kdf: KdfParameters, kek: bytes, *,
                     keyring: Keyring | None = None, proof: str | None = None) -> None:
        """The quick step of a password change, with what ``prepare_password`` derived. ``proof``
        ("password" or "recovery_key") is what opened the keyring, for the audit log."""
        was_unlocked = not self.locked
        proof = proof or ("password" if self._kek is not None else "recovery_key")
        keyring = keyring or self.require_unlocked()
        # proven while locked: the keyring opens the sealed seed for this one signature (and seals
        # a seed still in clear); the vault stays locked
        signer = self.device if was_unlocked else self.unsealed_keys(keyring)
        new_header = header.with_password(keyring, kek, kdf, signer)
        with self._store.transaction():
            self._store.put_header_record(new_header.to_bytes())
        if was_unlocked:
            self._kek = kek
        else:
            self._drop_signing_key_if_sealed()  # a seed that was in clear is sealed now
        self._committed([])
        self._audit.record("password.changed", via=self._audit.via, method=proof)


def prepare_password(header: VaultHeader, new_password: str, *,
                     allow_insecure_test_kdf: bool = False) -> tuple[KdfParameters, bytes]:
    """The slow step of a password change: the KDF at the header's cost with a fresh salt. Touches
    no store, so a daemon can run it in a thread."""
    check_new_password(new_password)
    kdf = replace(header.kdf, salt=os.urandom(SALT_SIZE))
    kdf.check_strength(allow_insecure_test_kdf=allow_insecure_test_kdf)
    return kdf, kdf.derive(new_password)


def prepare_rotation(header: VaultHeader, password: str, *,
                     allow_insecure_test_kdf: bool = False) -> tuple[KdfParameters, bytes]:
    """The slow step of a revocation: check ``password`` against ``header`` (WrongPassword), then
    derive its key under a fresh salt for the rotated keyring. Touches no store (a daemon runs it in
    a thread)."""
    header.kdf.check_strength(allow_insecure_test_kdf=allow_insecure_test_kdf)
    header.open_with_kek(header.password_kek(password))
    kdf = replace(header.kdf, salt=os.urandom(SALT_SIZE))
    return kdf, kdf.derive(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a master password needs at least {MIN_PASSWORD_CHARS} characters")
