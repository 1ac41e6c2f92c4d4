"""A member device turned hostile: its real keys and vault state, driven by hand (for tests/e2e).

The device was paired through the real `pair` flow and its daemon stopped, so its home now
"serves a hostile program". ``HostileMember`` opens that home in-process, crafts records with the
core's own functions (any counter, parents, content, key epoch, header serial, roster statement)
and pushes them to a running daemon in one sync session that follows docs/protocol.md by hand:
Noise IK to the daemon's key (each other member's key in turn, as a daemon dials a static
address: the wrong ones close at once), ``hello``, one ``records`` batch (``last``), then the daemon's messages until
``done``, ``error`` or close. Its ``digest`` is answered with the same root and ``done``, so a
session whose records were accepted ends cleanly. Loopback only; every wait is bounded.

    hostile = HostileMember(x.home)                     # unlocked with PASSWORD
    gap = hostile.sealed(seq=hostile.next_seq + 1000)
    answer = hostile.push(a.address, revisions=[gap])   # answer.done: the session ended normally
"""

import dataclasses
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from helpers import PASSWORD
from vaultpeer.core import encoding
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import Keyring, VaultHeader
from vaultpeer.core.revision import Revision, RevisionId, seal_revision
from vaultpeer.core.roster import RosterEntry
from vaultpeer.core.sync import (
    PROTOCOL_VERSION,
    Digest,
    Done,
    Error,
    Hello,
    Message,
    Records,
    decode_message,
    encode_message,
    record_hash,
)
from vaultpeer.core.transport import HandshakeInitiator, TransportError, frame
from vaultpeer.service.home import Home
from vaultpeer.io.noise_stream import HANDSHAKE_TIMEOUT, ConnectionClosed, NoiseStream
from vaultpeer.service.vault import Vault

async def send_first_frame(host: str, port: int, first: bytes | None, *, read_for: float = math.inf,
                           timeout: float = HANDSHAKE_TIMEOUT + 5) -> tuple[bytes, float]:
    """Send ``first`` as a new connection's first frame (nothing if None), then read until the
    daemon closes or ``read_for`` seconds pass: every byte it sent, and the seconds that took."""
    with trio.fail_after(timeout):
        tcp = await trio.open_tcp_stream(host, port)
        started, received = trio.current_time(), b""
        try:
            if first is not None:
                await tcp.send_all(frame(first))
            with trio.move_on_after(read_for):
                while data := await tcp.receive_some(65536):
                    received += data
        except (trio.BrokenResourceError, OSError):
            pass  # a reset is a close too
        finally:
            await tcp.aclose()
        return received, trio.current_time() - started


#: A plausible sealed size (the smallest padding bucket plus the AEAD tag).
_JUNK_CIPHERTEXT = 256 + 16


@dataclass
class Answer:
    """How the daemon answered one pushed session."""

    #: Every message it sent, decoded, in order.
    messages: list[Message] = field(default_factory=list)
    #: The code of its ``error`` message (``"rejected"``, ``"protocol"``...), if it sent one.
    error: str | None = None
    #: It sent ``done``: the session ended normally.
    done: bool = False
    #: It closed the connection before ``done`` or ``error``: a key it refuses is closed at once,
    #: and today so is a batch it rejects (its ``error`` does not leave before the link closes).
    closed: bool = False


class HostileMember:
    """A paired member's home opened in-process: ``device`` (its keys), ``vault`` (its state).

    With ``password=None`` the home is opened and not unlocked (a copied home, no password): no
    keyring then, and whether ``device`` can still sign is up to the code under test.
    """

    def __init__(self, home: Path, password: str | None = PASSWORD):
        self.vault = Vault.open(Home(home), allow_insecure_test_kdf=True)
        if password is not None:
            self.vault.unlock(password)

    def close(self) -> None:
        self.vault.close()

    @property
    def device(self) -> DeviceKeys:
        # read from the vault each time: unlocking may be what hands it the signing key
        return self.vault.device

    @property
    def device_id(self) -> DeviceId:
        return self.vault.device.device_id

    @property
    def vault_id(self) -> bytes:
        return self.vault.header.vault_id

    @property
    def header(self) -> VaultHeader:
        return self.vault.header

    @property
    def next_seq(self) -> int:
        """The counter an honest X would use next (from what its own store holds)."""
        return self.vault._store.next_seq(self.device_id)

    # --- records -----------------------------------------------------------------------------

    def sealed(self, *, item_id: ItemId | None = None, seq: int | None = None,
               parents: Iterable[RevisionId] = (), title: str = "planted",
               fields: Mapping[str, str] | None = None, deleted: bool = False,
               keyring: Keyring | None = None) -> Revision:
        """A well-formed revision, really sealed (under ``keyring``'s newest epoch, by default the
        vault's) and signed by X: any item, counter, parents and content."""
        return seal_revision(
            vault_id=self.vault_id,
            keyring=keyring or self.vault.unlocked_keyring(),
            author=self.device,
            item_id=item_id or ItemId.generate(),
            seq=seq if seq is not None else self.next_seq,
            parents=parents,
            content=ItemContent.build(title, fields or {"password": os.urandom(8).hex()}),
            deleted=deleted,
        )

    def junk(self, *, item_id: ItemId | None = None, seq: int | None = None,
             parents: Iterable[RevisionId] = (), key_epoch: int | None = None) -> Revision:
        """A revision whose ciphertext is random bytes, validly signed by X (at any key epoch)."""
        unsigned = Revision(
            item_id=item_id or ItemId.generate(),
            revision_id=RevisionId(self.device_id, seq if seq is not None else self.next_seq),
            parents=tuple(sorted(set(parents))),
            deleted=False,
            key_epoch=key_epoch if key_epoch is not None else self.header.key_epoch,
            nonce=os.urandom(12),
            ciphertext=os.urandom(_JUNK_CIPHERTEXT),
            signature=bytes(64),
        )
        return self.resigned(unsigned)

    def resigned(self, revision: Revision) -> Revision:
        return dataclasses.replace(revision, signature=self.device.sign(revision.signed_bytes(self.vault_id)))

    def header_with(self, **changes) -> VaultHeader:
        """The current header with ``changes`` (``serial=...``, ``recovery_public=...``), signed by X."""
        return dataclasses.replace(self.header, **changes).signed_by(self.device)

    def statement(self, member: DevicePublicKeys | None = None, *, name: str, os_description: str,
                  version: int | None = None, revoked: bool = False, revoked_after: int = 0) -> RosterEntry:
        """X's roster entry about ``member`` (X itself by default), newer than X's last one about it."""
        member = member or self.device.public
        if version is None:
            own = [e.version for e in self.vault._store.roster_entries()
                   if e.member_id == member.device_id and e.author == self.device_id]
            version = max(own, default=0) + 1
        return RosterEntry(member, name, os_description, revoked, revoked_after, version,
                           self.device_id).signed_by(self.vault_id, self.device)

    # --- one sync session, by hand ----------------------------------------------------------------

    def push(self, address: str, *, header: VaultHeader | None = None, roster: Iterable[RosterEntry] = (),
             revisions: Iterable[Revision] = (), timeout: float = 15, version: int = PROTOCOL_VERSION) -> Answer:
        """Dial the daemon at ``address`` (``status --json``'s ``listen``) as X and send one
        ``records`` batch (after a ``hello`` saying ``version``); returns how it answered."""
        batch = Records(header, tuple(roster), tuple(revisions), last=True, repair=False)
        host, port = address.rsplit(":", 1)
        return trio.run(self._session, host, int(port), batch, timeout, version)

    def _hello(self, version: int = PROTOCOL_VERSION) -> Hello:
        # X's own knowledge (the daemon sends little) and X's hashes (it sends no header or roster
        # unless its own differ)
        return Hello(
            vault_id=self.vault_id,
            store_id=os.urandom(16),
            knowledge=self.vault.knowledge(),
            header_hash=record_hash([self.header.to_bytes()]),
            roster_hash=record_hash([e.to_bytes() for e in self.vault.outgoing_roster()]),
            version=version,
        )

    async def _session(self, host: str, port: int, batch: Records, timeout: float,
                       version: int = PROTOCOL_VERSION) -> Answer:
        with trio.fail_after(timeout):
            others = [m for m in self.vault.roster.members.values() if m.device_id != self.device_id]
            for member in others:
                tcp = await trio.open_tcp_stream(host, port)
                try:
                    try:
                        stream = await NoiseStream.dial(tcp, self.device, purpose="sync",
                                                        responder_static=member.keys.noise_public,
                                                        stamp=self.vault.next_link_stamp(time.time_ns()))
                    except (ConnectionClosed, TransportError, trio.BrokenResourceError):
                        continue  # not this member's address (or it refuses this device)
                    return await self._exchange(stream, batch, version)
                finally:
                    await tcp.aclose()
            return Answer(closed=True)

    def link_first_message(self, to: bytes) -> bytes:
        """The first handshake message of a member link from this device to the member whose Noise
        key is ``to`` (Noise IK, a fresh stamp): what a daemon sends first when it dials."""
        return HandshakeInitiator(static_private=self.device.noise_private, purpose="sync", responder_static=to,
                                  stamp=self.vault.next_link_stamp(time.time_ns())).start()

    def send_first(self, address: str, first: bytes) -> bytes:
        """Open a connection to ``address``, send ``first`` as its first frame, and return every
        byte the daemon sends in the next second or until it closes (b"": it answered nothing;
        an answered link stays open)."""
        host, port = address.rsplit(":", 1)
        return trio.run(partial(send_first_frame, host, int(port), first, read_for=1))[0]

    async def _exchange(self, stream: NoiseStream, batch: Records, version: int = PROTOCOL_VERSION) -> Answer:
        answer = Answer()
        try:
            try:
                hello = encode_message(self._hello(version))
                if version < 5:  # a hello from before version 5: no ``links``
                    body = encoding.decode(hello, max_size=1 << 20)
                    del body["links"]
                    hello = encoding.encode(body)
                await stream.send(hello)
                await stream.send(encode_message(batch))
            except trio.BrokenResourceError:
                pass  # it may have said something before it closed: read it
            while True:
                message = decode_message(await stream.receive())
                answer.messages.append(message)
                if isinstance(message, Digest):  # the same root back: nothing to narrow
                    await stream.send(encode_message(Digest(message.root)))
                    await stream.send(encode_message(Done(True)))
                elif isinstance(message, Done):
                    answer.done = True
                    return answer
                elif isinstance(message, Error):
                    answer.error = message.code
                    return answer
        except (ConnectionClosed, TransportError, trio.BrokenResourceError):
            answer.closed = True
            return answer
