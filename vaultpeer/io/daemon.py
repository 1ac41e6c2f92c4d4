"""The vaultpeer daemon: one root nursery, and in it the local API, the transports' listeners,
discovery, the dialer and one task per connected peer.

Connections come through transports (``vaultpeer.io.transports``; TCP unless told otherwise),
whose addresses the daemon only stores, compares, logs and shows. A member's (Noise IK) is
answered only if its static key belongs to a current member of the roster and its stamp is
fresh; a joining device's (Noise XX) only while this device has an invitation open; anything else
gets a connection closed without a byte. Over a member connection a ``Link``
(``vaultpeer.io.link``) runs sync sessions one after another; a local commit
(``Vault.on_local_commit``) starts one at once with every connected member (no polling). The
dialer (``vaultpeer.io.dialer``) keeps connections to the members discovery reports. The daemon
runs with or without a vault: a new device waits to join one.

Every interval the daemon measures (idle lock, password-attempt backoff, offenders, the audit
log's per-minute counts, staged imports, pairing deadlines) is read from ``trio.current_time()``,
the clock of the trio run: a test runs the daemon under ``trio.testing.MockClock`` and moves it, so
no test sleeps for a backoff. Only what must mean the same on another device or after a restart
reads the wall clock: handshake stamps, audit entries' times, a peer's ``last_seen``.
"""

import logging
from functools import partial
import os
import socket as stdlib_socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from vaultpeer.core.backoff import AttemptBackoff
from vaultpeer.core.discovery import PeerGone, PeerSeen
from vaultpeer.core.errors import RateLimited, VaultpeerError
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.item import ItemId
from vaultpeer.core.kdf import KdfParameters
from vaultpeer.core.offenders import Offenders
from vaultpeer.core.pairing import PairingError
from vaultpeer.core.roster import Member
from vaultpeer.core.revision import RevisionId
from vaultpeer.core.sync import link_id, removal_notice
from vaultpeer.core.vclock import VersionVector
from vaultpeer.core.transport import DEFAULT_PORT, Offer, OlderTransport, TransportError
from vaultpeer.io.dialer import Dialer
from vaultpeer.io.secret_service import SecretServiceOptions
from vaultpeer.io.transports import Address, Transport
from vaultpeer.io.transports.tcp import TcpTransport
from vaultpeer.service.home import Home
from vaultpeer.service.socket_link import link_socket, unlink_socket
from vaultpeer.io.api_server import serve_api
from vaultpeer.io.events import EventFeed
from vaultpeer.io.handlers import ApiHandlers
from vaultpeer.io.link import ERROR_FLUSH_TIMEOUT, Link, LinkTimes
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.pairing_pump import PairingPump
from vaultpeer.service.replication import SyncPeer
from vaultpeer.service.vault import Removal, Vault

log = logging.getLogger("vaultpeer.daemon")

MAX_UNAUTHENTICATED = 32
MAX_LINKS = 64
PAIRING_TIMEOUT = 120.0
#: How often the counts of rejected connections are written to the audit log (once a minute each).
AUDIT_FLUSH_EVERY = 15.0


@dataclass
class DaemonOptions:
    #: Where the TCP transport listens (the daemon's transport unless it is given others).
    listen: tuple[str, int] | None = ("0.0.0.0", DEFAULT_PORT)
    #: Static addresses to dial (``--peer``), each as discovery would report it.
    peers: list[Address] = field(default_factory=list)
    mdns: bool = True
    mdns_interfaces: list[str] | None = None
    offline: bool = False
    idle_lock: float | None = None
    rotate_every: float = 1800.0
    pairing_timeout: float = PAIRING_TIMEOUT
    socket_path: Path | None = None
    #: `--require-app-tokens`: a connection without an app token may call only status, api.info,
    #: app.register, app.wait and auth (issue 18).
    require_app_tokens: bool = False
    #: ``$XDG_RUNTIME_DIR``: where the daemon links its socket for apps to find (None: no link).
    runtime_dir: Path | None = None
    #: Serve the freedesktop Secret Service on the session bus (None: off).
    secret_service: SecretServiceOptions | None = None


@dataclass
class PeerState:
    """What the daemon knows of a member it has talked to (for `peers`)."""

    address: str | None = None
    last_seen: float | None = None
    last_error: str | None = None


@dataclass
class Traffic:
    """What the member links carried since the daemon started (``status``'s ``sync``): sync
    sessions finished, and transport bytes (Noise frames after the handshakes) each way."""

    sessions: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def to_json(self) -> dict:
        return {"sessions": self.sessions, "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received}


class Daemon:
    """``transports``: how to reach other devices (by default TCP, listening on ``options.listen``).
    The first one that listens gives ``listen_address`` (``status``, the mDNS advert)."""

    def __init__(self, home: Home, options: DaemonOptions, *, allow_insecure_test_kdf: bool = False,
                 transports: Sequence[Transport] | None = None):
        self.home = home
        self.options = options
        self.vault = Vault.open(home, allow_insecure_test_kdf=allow_insecure_test_kdf, clock=trio.current_time)
        self.vault.audit_via = "daemon"
        # every commit made here, by any front end, goes to the connected members at once
        self.vault.on_local_commit.append(self.changed)
        self.device_id = self.vault.device.device_id
        self.transports = list(transports) if transports is not None else [TcpTransport(options.listen)]
        self.listen_address: Address | None = None
        self.socket_path = options.socket_path or home.socket_path
        #: ``$XDG_RUNTIME_DIR/vaultpeer/<home hash>.sock`` while it is served (service/socket_link.py).
        self.socket_link: Path | None = None
        self.links: dict[DeviceId, Link] = {}
        self.peers: dict[DeviceId, PeerState] = {}
        self.traffic = Traffic()
        #: The one pairing in progress (inviting or joining), driven over its connection.
        self.pairing_pump = PairingPump(self, find_invitation=self._find_invitation, dial=self._dial_invitation)
        self._unauthenticated = 0
        #: What discovery and ``--peer`` report now, by key (the dialer follows members; pairing
        #: looks for invitations).
        self._seen: dict[str, PeerSeen] = {}
        self.dialer = Dialer(self.vault, seen=self._seen, links=self.links, dial=self.dial, run_link=self._run_link)
        #: The local API's events (``events.subscribe``), with their change cursors.
        self.events = EventFeed(self.vault)
        self._nursery: trio.Nursery | None = None
        self._discovery = None
        self._advertised_key: bytes | None = None
        #: Set when ``run`` starts: the daemon may be built outside trio, where there is no clock yet.
        self._last_activity = 0.0
        self.started = trio.Event()
        #: Called whenever the vault locks (by request or after --idle-lock): drop plaintext.
        self.on_lock: list[Callable[[], None]] = []
        #: Called with each link when its first message arrives (``Link.times``): for benchmarks.
        self.on_first_message: list[Callable[[Link], None]] = []
        #: Addresses that keep failing handshakes or breaking the protocol, refused for a while.
        self.offenders = Offenders()
        #: Master-password attempts (unlock, passwd): a few free, then doubling waits.
        self.password_attempts = AttemptBackoff()

    # --- the root nursery -------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.touch()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.events.run)
                await nursery.start(self.pairing_pump.run)
                handlers = ApiHandlers(self)
                await nursery.start(serve_api, self.socket_path, handlers.dispatch)
                if self.options.runtime_dir is not None:
                    self.socket_link = link_socket(self.options.runtime_dir, self.home.path, self.socket_path)
                if not self.options.offline:
                    for transport in self.transports:
                        address = await nursery.start(transport.serve, self._inbound)
                        if address is not None:
                            log.info("listening on %s", address)
                            self.listen_address = self.listen_address or address
                    await nursery.start(self.dialer.run)
                    events_send, events = trio.open_memory_channel(64)
                    nursery.start_soon(self._discovery_events, events)
                    mdns_port = self._mdns_port()
                    if mdns_port is not None:
                        from vaultpeer.io.discovery import Discovery

                        self._discovery = Discovery(
                            port=mdns_port,
                            interfaces=self.options.mdns_interfaces,
                            key_provider=self._discovery_key,
                            own_noise_key=self.vault.device.public.noise_public,
                            member_keys=self._other_member_keys,
                            recognised_keys=self.vault.previous_discovery_keys,
                            rotate_every=self.options.rotate_every,
                        )
                        await nursery.start(self._discovery.run, events_send.clone())
                    for address in self.options.peers:
                        events_send.send_nowait(PeerSeen(f"static:{address}", address, False, "static"))
                if self.options.idle_lock:
                    nursery.start_soon(self._idle_lock)
                nursery.start_soon(self._flush_audit_log)
                if self.options.secret_service is not None:
                    from vaultpeer.io.secret_service.bus import serve_secret_service  # jeepney: only when asked

                    await nursery.start(serve_secret_service, self, self.options.secret_service)
                notify_systemd("READY=1")
                self.started.set()
                task_status.started(self)
        finally:
            if self.socket_link is not None:
                unlink_socket(self.socket_link, self.socket_path)
            self.vault.close()

    def stop(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _mdns_port(self) -> int | None:
        """The port the mDNS advert carries: None with mDNS off, or with no listener mDNS can announce."""
        if not self.options.mdns or self.listen_address is None:
            return None
        from vaultpeer.io.discovery import advertised_port  # zeroconf is loaded only with mDNS on

        return advertised_port(self.listen_address)

    def _discovery_key(self) -> bytes | None:
        try:
            key = self.vault.header.discovery_key if self.vault.initialized else None
        except VaultpeerError:
            key = None
        self._advertised_key = key
        return key

    def _other_member_keys(self) -> list[bytes]:
        if not self.vault.initialized:
            return []
        return [m.keys.noise_public for m in self.vault.roster.members.values() if m.device_id != self.device_id]

    def _refresh_discovery_if_key_changed(self) -> None:
        """After a join or a new header: advertise under the current key and look again."""
        if self._discovery is not None and self._nursery is not None:
            try:
                current = self.vault.header.discovery_key if self.vault.initialized else None
            except VaultpeerError:
                return
            if current != self._advertised_key:
                self._nursery.start_soon(self._discovery.refresh)

    async def _idle_lock(self) -> None:
        """Lock once nobody used the daemon for ``idle_lock`` seconds. It sleeps until the moment
        the lock could be due, not in ticks (a laptop on battery): a use meanwhile only moves that
        moment later, so it looks again when it wakes."""
        while True:
            due = self._last_activity + self.options.idle_lock
            now = trio.current_time()
            if now < due:
                await trio.sleep(due - now)
                continue
            if not self.vault.locked:
                self.lock()
                log.info("locked after %s s without use", self.options.idle_lock)
            # locked (or just locked): no lock can be due before a use, and one from now on is
            # due no sooner than this
            await trio.sleep(self.options.idle_lock)

    def offense(self, address: Address, reason: str, *, audit: bool = True) -> None:
        """A failure caused by whoever is at ``address`` (``reason``: a word of ``_OFFENSES``):
        recorded in the audit log (unless the caller already did), counted against its remote
        (``Address.remote``), and logged once when that starts being refused (a flood cannot
        flood the log)."""
        remote = address.remote
        if audit:
            self.rejected_input(address, reason)
        if self.offenders.failed(remote, trio.current_time()):
            log.warning("refusing connections from %s for %d s: %d failures within %d s (the last: %s)", remote,
                        self.offenders.penalty, self.offenders.limit, self.offenders.window, _OFFENSES[reason])

    def lock(self, reason: str | None = None) -> None:
        """Drop the vault key, the password-derived key, the decrypted index and anything else
        that holds plaintext (``on_lock`` callbacks, e.g. staged imports); tell the apps, if it
        was unlocked (locking a locked vault is no event)."""
        was_locked = self.vault.locked
        self.vault.lock(reason)
        for forget in self.on_lock:
            forget()
        if not was_locked:
            self.publish({"type": "locked", **({"reason": reason} if reason else {})})

    async def unlock(self, password: str) -> None:
        """One master-password attempt (the local API's unlock, a Secret Service prompt): refused
        while the backoff says wait, the slow derivation in a worker thread; then tell the apps and
        make the merges that waited for the vault key."""
        was_locked = self.vault.locked
        try:
            self.password_attempts.begin(trio.current_time())
        except RateLimited:
            self.audit_refused_attempt("unlock.failed")
            raise
        kek = await trio.to_thread.run_sync(self.vault.derive_kek, password)
        self.vault.unlock_with_kek(kek)
        self.password_attempts.succeeded()
        if was_locked:  # unlocking an unlocked vault (the password checked again) is no event
            self.publish({"type": "unlocked"})
        self.vault.merge_pending()

    def notice_self_lock(self, was_unlocked: bool) -> None:
        """The vault locked itself while admitting records (a rotated key it cannot open): finish
        the lock here too, say why in the log, and tell the apps."""
        if was_unlocked and self.vault.locked:
            reason = self.vault.locked_reason or "the vault locked itself"
            log.warning("locked: %s", reason)
            self.lock(reason)

    async def _flush_audit_log(self) -> None:
        """Write the counts of rejections whose minute has passed, and the handshake stamps
        accepted since the last time (the rest on close)."""
        while True:
            await trio.sleep(AUDIT_FLUSH_EVERY)
            self._audit(self.vault.flush_audit)
            try:
                self.vault.save_link_stamps()
                self.vault.intake.save_peer_knowledge()
            except Exception:  # noqa: BLE001 - a full disk must not stop the daemon; close tries again
                log.exception("could not save the members' handshake stamps or knowledge")

    def _audit(self, record: Callable[..., object], *args: object, **details: object) -> None:
        """Write to the audit log (``Vault.audit``, ``Vault.audit_rejection``...); a failure to
        write it is logged and never stops the daemon or a connection's handling."""
        try:
            record(*args, **details)
        except Exception:  # noqa: BLE001
            log.exception("could not write to the audit log")

    def audit_refused_attempt(self, event: str) -> None:
        """A master-password attempt refused by the backoff, in the audit log (counted per minute)."""
        self._audit(self.vault.audit_refused_attempt, event, "password")

    def rejected_input(self, address: Address, reason: str) -> None:
        """Input refused from the network, in the audit log (at most one entry per remote and minute)."""
        self._audit(self.vault.audit_rejection, reason, peer=address.remote)

    def audit_pairing_failure(self, role: str, address: Address | None, reason: str) -> None:
        peer = {"peer": str(address)} if address else {}
        self._audit(self.vault.audit, "pairing.failed", role=role, reason=reason, **peer)

    def touch(self) -> None:
        self._last_activity = trio.current_time()

    # --- events for the local API --------------------------------------------------------------

    def publish(self, event: dict) -> None:
        """Tell the apps (an event other than ``items.changed``, which the feed makes from the store)."""
        self.events.publish(event)

    # --- changes and sync ------------------------------------------------------------------

    def changed(self, item_ids: list[str] | None = None) -> None:
        """Something was committed locally: push it to every connected member now."""
        for link in list(self.links.values()):
            link.poke()
        self.events.items_may_have_changed()

    def sync_now(self) -> None:
        for link in list(self.links.values()):
            link.poke()
        self.dialer.redial()

    def applied(self, session: SyncPeer, link: Link) -> None:
        """Revisions from ``link``'s member were stored (mid-session): tell the local apps, and
        pass them on at once to the other members that may lack them."""
        self.events.announce_now()
        for other in list(self.links.values()):
            if other is not link and needs_relay(other.device_id, other.peer_holds, source=link.device_id,
                                                 source_links=session.peer_links, revisions=session.just_received):
                other.poke()

    def hello_links(self) -> Iterable[DeviceId]:
        """The members this device is connected to, as its hellos name them (``needs_relay``)."""
        return list(self.links)

    def _relay(self, link: Link) -> None:
        """What arrived from one member (a roster or header change) goes on to all the others."""
        for other in list(self.links.values()):
            if other is not link:
                other.poke()

    def after_sync(self, session: SyncPeer, link: Link) -> None:
        self._refresh_discovery_if_key_changed()
        if session.stats.records_changed:
            self._roster_changed()
            self._relay(link)
        # merges wait for the session's end: a merge revision made mid-session would make the
        # two sides' state digests differ
        touched = session.stats.items_touched
        if not self.vault.locked and (touched is None or touched):  # None: too many to name, look at all
            self.vault.merge_pending(touched)  # pushed as it commits (on_local_commit)

    def after_init(self) -> None:
        """A vault was created here through the API (``vault.init``): from now on this daemon
        serves it as after a join: advertised under its key, dialling members as they come, and
        unlocked (the apps are told)."""
        self._refresh_discovery_if_key_changed()
        self._roster_changed()
        self.publish({"type": "unlocked"})

    def after_import(self, report: dict) -> None:
        """A bundle was imported: what a sync session would have brought, so the same follow-ups."""
        self._refresh_discovery_if_key_changed()
        if report["roster_changed"] or report["header_replaced"]:
            self._roster_changed()
        touched = {ItemId.parse(i) for i in report["items_touched"]}
        if not self.vault.locked and touched:
            self.vault.merge_pending(touched)
        if report["new_revisions"] or report["roster_changed"] or report["header_replaced"]:
            self.changed(report["items_touched"])

    def _roster_changed(self) -> None:
        """A device may have become a member (dial it now: an earlier attempt was refused and is
        backing off, or its mDNS name was not recognised yet) or stopped being one (drop its link)."""
        self._drop_links_to_non_members()
        self.dialer.redial()
        if self._discovery is not None and self._nursery is not None:
            self._nursery.start_soon(self._discovery.recheck)

    def _drop_links_to_non_members(self) -> None:
        """A revocation arrived (or was made here): a connection authenticated before it must not
        carry anything more."""
        removed = self.vault.removal is not None
        for device_id, link in list(self.links.items()):
            if removed or self.vault.member_for_noise_key(link.member.keys.noise_public) is None:
                log.warning("closing the connection to %s: %s", device_id.short,
                            "this device was removed from the vault" if removed else "it is no longer a member")
                revocations = [] if removed else self.vault.revocations_of(device_id)
                if revocations:  # tell it why, and nothing else
                    link.dismiss(removal_notice(self.vault.vault_id, revocations))
                else:
                    link.close()
                self.links.pop(device_id, None)

    def removed_from_vault(self, removal: Removal) -> None:
        """A member told this device that it was removed from the vault, and the revocation counts
        here: every member connection ends and none is made again; the apps are told."""
        log.warning("this device was removed from the vault by %s (%s): it no longer syncs with the other "
                    "devices; its copy stays readable here", removal.by_name, removal.by.short)
        self.publish({"type": "device.removed", **removal.to_json()})
        self._roster_changed()

    def peer_state(self, device_id: DeviceId) -> PeerState:
        return self.peers.setdefault(device_id, PeerState())

    # --- connections ---------------------------------------------------------------------------

    async def dial(self, address: Address) -> trio.abc.Stream:
        """A connection to ``address``, through the transport it names; OSError when nothing answers."""
        for transport in self.transports:
            if transport.name == address.transport:
                return await transport.dial(address)
        raise OSError(f"no transport here reaches {address}")

    async def _inbound(self, connection: trio.abc.Stream, address: Address) -> None:
        """Handle one incoming connection; never lets an exception escape (that would crash the
        transport's listener).

        Nothing is sent before the initiator's first message is judged (``_answerable``): a
        prober, a stranger, a revoked device, a replayed message and a pairing attempt with no
        invitation open all get a connection closed without a byte."""
        try:
            if self.offenders.refused(address.remote, trio.current_time()):
                await connection.aclose()  # penalised for repeated failures: closed unread, not logged again
                return
            if self._unauthenticated >= MAX_UNAUTHENTICATED or len(self.links) >= MAX_LINKS:
                log.warning("refused a connection from %s: too many connections", address)
                self.rejected_input(address, "too_many_connections")
                await connection.aclose()
                return
            self._unauthenticated += 1
            refusal: list[str] = []
            try:
                stream = await NoiseStream.answer(connection, self.vault.device,
                                                  partial(self._answerable, refusal=refusal))
            except OlderTransport:
                stream = None
                refusal.append("handshake_failed")
                log.info("%s runs an older vaultpeer (transport version 1), which cannot connect to this one: "
                         "upgrade it", address)
            except (TransportError, ConnectionClosed, trio.TooSlowError, trio.BrokenResourceError, OSError):
                stream = None
                refusal.append("handshake_failed")
            finally:
                self._unauthenticated -= 1
            if stream is None:
                reason = refusal[0]
                log.info("refused %s: %s", address, _OFFENSES[reason])
                # our own key (this device dialling itself) is counted, but is not input to record;
                # a member dialling a device removed from the vault has done nothing wrong
                if reason != "this_device_removed":
                    self.offense(address, reason, audit=reason != "own_key")
                await connection.aclose()
                return
            if stream.purpose == "pair":
                await self.pairing_pump.accept(stream, address)
                return
            member = self.vault.member_for_noise_key(stream.remote_static)
            if member is None:  # a revoked device (told so), or revoked during the handshake
                revoked = self.vault.revoked_device_for_noise_key(stream.remote_static)
                if revoked is not None:
                    await self._tell_removed(stream, revoked, address)
                await stream.aclose()
                return
            await self._run_link(stream, member, initiator=False, address=address)
        except Exception:  # noqa: BLE001 - the server must survive any one connection
            log.exception("unexpected error on an incoming connection")

    async def _tell_removed(self, stream: NoiseStream, device_id: DeviceId, address: Address) -> None:
        """A revoked device dialled this one: send it the revocations of it (a ``removed`` notice),
        nothing else. Counted against its address like a refused key, so a device that keeps
        dialling is soon refused unheard; an honest one stops once told."""
        log.info("told %s at %s that it was removed from the vault", device_id.short, address)
        self.offense(address, "revoked_member", audit=False)
        with trio.move_on_after(ERROR_FLUSH_TIMEOUT):
            try:
                await stream.send(removal_notice(self.vault.vault_id, self.vault.revocations_of(device_id)))
            except (ConnectionClosed, TransportError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return  # it went away: it will be told next time
        await stream.close_when_read(ERROR_FLUSH_TIMEOUT)

    def _answerable(self, offer: Offer, *, refusal: list[str]) -> bool:
        """Whether to answer an initiator's first message (before anything is sent). A refusal
        appends the reason word (``_OFFENSES``) to ``refusal``."""
        if offer.purpose == "pair":
            if not self.pairing_pump.invitation_open:
                refusal.append("no_invitation")
                return False
            return True
        if self.vault.removal is not None:  # this device is no longer a member: it links to no one
            refusal.append("this_device_removed")
            return False
        member = self.vault.member_for_noise_key(offer.remote_static)
        if member is None:
            revoked = self.vault.revoked_device_for_noise_key(offer.remote_static)
            if revoked is not None and self.vault.admit_link_stamp(revoked, offer.stamp):
                return True  # answered only to be told it was removed (``_tell_removed``)
            refusal.append("not_member")
            return False
        if member.device_id == self.device_id:
            refusal.append("own_key")
            return False
        if not self.vault.admit_link_stamp(member.device_id, offer.stamp):
            refusal.append("handshake_replayed")
            return False
        return True

    async def _run_link(self, stream: NoiseStream, member: Member, *, initiator: bool, address: Address,
                        times: LinkTimes | None = None) -> Link:
        link = Link(self, stream, member, initiator=initiator, address=address, times=times)
        existing = self.links.get(member.device_id)
        if existing is not None:
            # both sides dialled: keep the connection dialled by the lower device id, on both sides
            if link.dialer < existing.dialer:
                existing.close()
            else:
                await stream.aclose()
                return link
        self.links[member.device_id] = link
        self.peer_state(member.device_id).address = str(address)
        self.publish({"type": "peer.connected", "device_id": str(member.device_id)})
        try:
            await link.run()
        finally:
            if self.links.get(member.device_id) is link:
                del self.links[member.device_id]
                self.publish({"type": "peer.disconnected", "device_id": str(member.device_id)})
                # a static address skips members already connected: try them again now
                self.dialer.redial()
                # what that member was pushing here as it went, and the others did not relay
                # (they were told it was connected here: ``needs_relay``), comes from them now
                for other in list(self.links.values()):
                    other.poke()
        return link

    async def _discovery_events(self, events: trio.MemoryReceiveChannel) -> None:
        async for event in events:
            if isinstance(event, PeerSeen):
                self._seen[event.key] = event
                if not event.pairing:
                    self.dialer.follow(event.key)
            elif isinstance(event, PeerGone):
                self._seen.pop(event.key, None)

    # --- pairing (driven by the pairing pump) ---------------------------------------------------

    async def advertise_invitation(self) -> object:
        """Advertise an open invitation over mDNS; what ``withdraw_invitation`` takes."""
        return await self._discovery.start_pairing() if self._discovery is not None else None

    async def withdraw_invitation(self, advert: object) -> None:
        if self._discovery is not None:
            await self._discovery.stop_pairing(advert)

    async def _dial_invitation(self, address: Address) -> NoiseStream:
        """A pairing connection (Noise XX) to the inviting device at ``address``."""
        try:
            connection = await self.dial(address)
        except OSError:
            raise PairingError(f"pairing failed: nothing answers at {address}") from None
        return await NoiseStream.dial(connection, self.vault.device, purpose="pair")

    async def after_pairing(self, stream: NoiseStream, member: Member, *, role: str, address: Address) -> None:
        """A pairing succeeded: record it, tell the apps and the discovery, and go on as a member
        connection (the joiner is its initiator). The other members were told of the new device
        when the inviter enrolled it."""
        self._audit(self.vault.audit, "pairing.paired", role=role, device_id=str(member.device_id),
                    device_name=member.name, peer=str(address))
        self._refresh_discovery_if_key_changed()  # the joiner advertises under the vault's key now
        self._roster_changed()  # the other members can be dialled now
        self.publish({"type": "peer.paired", "device_id": str(member.device_id)})
        await self._run_link(stream, member, initiator=role == "joiner", address=address)

    async def _find_invitation(self) -> Address:
        """The one device inviting on the network. With several, naming one is safer than guessing
        (the codes would catch a wrong guess, but the person should not have to)."""
        while not any(seen.pairing for seen in self._seen.values()):
            await trio.sleep(0.1)
        await trio.sleep(0.5)  # give other invitations on the network a moment to show up
        inviting = {seen.address for seen in self._seen.values() if seen.pairing}
        if len(inviting) > 1:
            raise PairingError("several devices are inviting right now: name the one to join with "
                               "`vaultpeer pair --join HOST:PORT` (its `vaultpeer status` shows the address)")
        return inviting.pop()

    async def remove_peer(self, device_id: DeviceId, kdf: KdfParameters, kek: bytes) -> None:
        """Revoke a member, with the fresh-salt key ``prepare_rotation`` derived for the new keyring."""
        self.vault.revoke_prepared(device_id, kdf, kek)  # pushed as it commits (on_local_commit)
        self._drop_links_to_non_members()
        self._refresh_discovery_if_key_changed()  # the revoked device no longer recognises us


def needs_relay(target: DeviceId, target_holds: VersionVector | None, *, source: DeviceId,
                source_links: frozenset[bytes], revisions: Iterable[RevisionId]) -> bool:
    """Whether revisions just received from ``source`` must be passed on to the member ``target``.

    Not if ``target`` is known to hold them all (``target_holds``: its knowledge vector, from its
    last hello or converged session here), nor if it wrote them all, nor if ``source`` wrote them
    all and said in this session's hello (``source_links``) that it is connected to ``target``:
    a device pushes what it writes to every member it is connected to itself. In a full mesh no
    receiver relays an edit; where a member is reachable only through others, each hop passes it
    on. Only what ``source`` wrote is left to it: a hostile member's claims can keep its own
    revisions from some members (as not sending them could), never another member's."""
    revisions = list(revisions)
    if not revisions:
        return False
    if target_holds is not None and all(r.seq <= target_holds.get(r.author) for r in revisions):
        return False
    authors = {r.author for r in revisions}
    if authors == {target}:
        return False
    return not (authors == {source} and link_id(target.raw) in source_links)


#: What the log says of each kind of offense (keyed by the audit log's reason word).
_OFFENSES = {
    "handshake_failed": "a failed handshake",
    "not_member": "a key that is not a member",
    "revoked_member": "a revoked device (told so)",
    "this_device_removed": "a member's key (this device was removed from the vault)",
    "own_key": "this device's own key",
    "handshake_replayed": "a replayed handshake message",
    "no_invitation": "a pairing attempt with no invitation open",
    "bad_frame": "a frame that failed to decrypt",
    "sync_protocol": "a sync session that broke the protocol",
    "too_many_connections": "too many connections at once",
    "pairing_failed": "a failed attempt to join an invitation",  # audited as pairing.failed
}


def notify_systemd(state: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET, if systemd set it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(path)
            sock.sendall(state.encode())
        except OSError as exc:
            log.warning("could not notify systemd: %s", exc)
