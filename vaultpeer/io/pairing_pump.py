"""The pairing pump: drives ``core.pairing_session`` over a Noise stream.

The machine decides everything that is pairing (what to send, what the time allows, why it
failed); this shell moves bytes between it and the stream, hands it the person's answer and the
clock of the trio run, and answers its requests with the vault's methods (enroll the joiner, join,
admit the joiner's roster). It holds the one pairing in progress on this device: an invitation
(attempts to join arrive through the daemon's listener) or a search for one to join (found and
dialled through callables the daemon gives it). The daemon records and announces a pairing and
runs the member connection that follows (``Daemon.after_pairing``).
"""

import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from vaultpeer.core.errors import AlreadyInitialized, NoVault, VaultpeerError
from vaultpeer.core.pairing import Identity, PairingError
from vaultpeer.core.pairing_session import (
    CONNECTION_LOST,
    TIMED_OUT,
    AdmitRoster,
    EnrollJoiner,
    Event,
    Failed,
    Invitation,
    Joining,
    JoinVault,
    PairingSession,
    Role,
    Send,
    ShowCode,
)
from vaultpeer.core.text import inert
from vaultpeer.core.transport import TransportError
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.transports import Address
from vaultpeer.service.device import load_profile

if TYPE_CHECKING:  # the daemon creates the pump: no import cycle at run time
    from vaultpeer.io.daemon import Daemon

log = logging.getLogger("vaultpeer.daemon")

#: What a lost connection looks like on a send or a receive.
_LOST = (ConnectionClosed, TransportError, trio.BrokenResourceError, trio.ClosedResourceError)
#: What finding, dialling and handshaking, or the member connection after a pairing, may raise.
_FAILURES = (PairingError, VaultpeerError, TransportError, ConnectionClosed, trio.TooSlowError, OSError,
             trio.BrokenResourceError)


class _Run:
    """The pairing in progress (its pure state) and what the API calls wait on."""

    def __init__(self, state: Invitation | Joining):
        self.state = state
        self.code_ready = trio.Event()
        self.done = trio.Event()
        self.answer: bool | None = None
        self.answered = trio.Event()
        #: What a join does runs in here, so that cancelling the pairing stops it.
        self.scope = trio.CancelScope()

    def update(self) -> None:
        """Wake whoever waits, after the state changed."""
        if self.state.code is not None or self.state.ended:
            self.code_ready.set()
        if self.state.ended:
            self.done.set()

    def fail(self, message: str) -> None:
        self.state.fail(message)
        self.update()


class PairingPump:
    def __init__(self, daemon: "Daemon", *, find_invitation: Callable[[], Awaitable[Address]],
                 dial: Callable[[Address], Awaitable[NoiseStream]]):
        self.daemon = daemon
        self._find_invitation = find_invitation
        self._dial = dial
        self._run: _Run | None = None
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The pump's tasks (an invitation's expiry, a join) run here, a child of the daemon's nursery."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def in_progress(self) -> dict | None:
        """The pairing in progress, as `status` shows it: ``{"role", "code_shown"}``, or None.
        An inviter's shows as soon as joining devices are answered."""
        run = self._run
        if run is None or run.state.ended:
            return None
        return {"role": run.state.role.value, "code_shown": run.state.code is not None}

    @property
    def invitation_open(self) -> bool:
        """Whether a joining device's handshake is answered now."""
        return self._run is not None and isinstance(self._run.state, Invitation) and self._run.state.is_open

    # --- what the API calls ----------------------------------------------------------------

    async def invite(self, timeout: float | None = None, client_gone: trio.Event | None = None) -> str:
        """Open an invitation (pair.invite) for ``timeout`` seconds (default: the daemon's
        pairing timeout) and return the code once a device reached it. When no device reached the
        code in time, the invitation ends and is withdrawn from mDNS at once. ``client_gone``: the
        API connection that asked closed; the pairing is cancelled then (``cancel``)."""
        daemon = self.daemon
        if not daemon.vault.initialized:
            raise NoVault("this device has no vault to invite into: run `vaultpeer init`, or join with `pair --join`")
        if daemon.options.offline or daemon.listen_address is None:
            raise PairingError("pairing needs the network: this daemon runs --offline")
        daemon.vault.require_signing_key("the roster entry admitting the joining device")
        run = self._start(Invitation(timeout=self._timeout(timeout), now=trio.current_time()))
        advert = await daemon.advertise_invitation()
        self._nursery.start_soon(self._expire_invitation, run, advert)
        self._watch(run, client_gone)
        return await self._code(run)

    async def join(self, address: Address | None, timeout: float | None = None,
                   client_gone: trio.Event | None = None) -> str:
        """Join (pair.join): find the inviting device, handshake, exchange nonces, all within
        ``timeout`` seconds (default: the daemon's pairing timeout); return the code.

        A home restored from a backup (no member vouches for it yet) may join the vault it holds;
        ``Vault.join`` refuses any other vault once the inviter's header arrives."""
        vault = self.daemon.vault
        if vault.initialized and not vault.awaiting_rejoin:
            raise AlreadyInitialized("this device already belongs to a vault")
        if self.daemon.options.offline:
            raise PairingError("pairing needs the network: this daemon runs --offline")
        if vault.initialized:
            # a restored home holds its vault, so its signing key is sealed until it is unlocked
            vault.require_signing_key("rejoining (this device's roster entries)")
        run = self._start(Joining(timeout=self._timeout(timeout), now=trio.current_time()))
        self._nursery.start_soon(self._join, run, address)
        self._watch(run, client_gone)
        return await self._code(run)

    async def confirm(self, accept: bool) -> dict:
        """The person's answer (pair.confirm); the pairing's result once both sides are done."""
        run = self._run
        if run is None or run.state.code is None or run.answered.is_set():
            raise PairingError("no pairing is waiting for a confirmation")
        run.answer = accept
        run.answered.set()
        await run.done.wait()
        if run.state.result is None:
            raise PairingError(run.state.error or "pairing failed")
        return run.state.result

    def cancel(self, message: str = "pairing was cancelled on this device") -> bool:
        """End the pairing in progress (pair.cancel; or the program that started it went away).
        Before a code is shown, an invitation ends and is withdrawn, a join stops; once a code is
        shown, it is declined, so the other device is told. False if nothing was left to cancel
        (no pairing, or it ended, or it was declined already); PairingError once both sides said
        yes (it is completing)."""
        run = self._run
        if run is None or run.state.ended:
            return False
        if run.state.code is not None:
            if run.answered.is_set():
                if run.answer:
                    raise PairingError("this pairing was confirmed and is completing: it can no longer be cancelled")
                return False
            run.answer = False
            run.answered.set()
            return True
        self.daemon.audit_pairing_failure(run.state.role.value, None, "cancelled")
        log.info("pairing: %s", message)
        run.fail(message)
        run.scope.cancel()
        return True

    def _watch(self, run: _Run, client_gone: trio.Event | None) -> None:
        """Cancel ``run`` if ``client_gone`` is set while it waits for its code (the call that
        started it is pending). Once the code is shown, the pairing no longer depends on that
        connection: pair.confirm may come on another, and pair.cancel or the confirmation's own
        time limit end it."""
        if client_gone is None:
            return

        async def watch() -> None:
            async with trio.open_nursery() as nursery:
                async def until_code() -> None:
                    await run.code_ready.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_code)
                await client_gone.wait()
                if self._run is run and run.state.code is None:
                    self.cancel("pairing was cancelled: the program that started it went away")
                nursery.cancel_scope.cancel()

        self._nursery.start_soon(watch)

    def _start(self, state: Invitation | Joining) -> _Run:
        if self._run is not None and not self._run.state.ended:
            raise PairingError("a pairing is already in progress on this device")
        self._run = _Run(state)
        return self._run

    def _timeout(self, timeout: float | None) -> float:
        return self.daemon.options.pairing_timeout if timeout is None else timeout

    @staticmethod
    async def _code(run: _Run) -> str:
        await run.code_ready.wait()
        if run.state.code is None:
            raise PairingError(run.state.error or "pairing failed")
        return run.state.code

    # --- inviting ------------------------------------------------------------------------------

    async def _expire_invitation(self, run: _Run, advert: object) -> None:
        with trio.move_on_at(run.state.deadline):
            await run.done.wait()
        run.state.expire()
        run.update()
        await run.done.wait()
        await self.daemon.withdraw_invitation(advert)

    async def accept(self, stream: NoiseStream, address: Address) -> None:
        """A device's pairing connection (its XX handshake answered): an attempt to join."""
        run = self._run
        invitation = run.state if run is not None and isinstance(run.state, Invitation) else None
        refusal = "no_invitation" if invitation is None else invitation.begin_attempt()
        if refusal is not None:
            if refusal == "no_invitation":
                log.warning("refused a pairing attempt from %s: no invitation is open", address)
            else:
                log.warning("refused a pairing attempt from %s: %d attempts are already running", address,
                            invitation.attempts)
            self.daemon.offense(address, refusal)
            await stream.aclose()
            return
        log.info("pairing: %s is asking to join", address)
        now = trio.current_time()
        session = PairingSession(Role.INVITER, handshake_hash=stream.handshake_hash,
                                 remote_static=stream.remote_static, now=now,
                                 code_deadline=invitation.attempt_deadline(now))

        took_it = False

        def show_code(code: str) -> bool:
            nonlocal took_it
            if not invitation.reach_code():
                log.info("pairing: %s came too late: the invitation was taken or ended", address)
                return False
            took_it = True
            self._show(run, code)  # the person sees the code from here on: any failure ends the invitation
            return True

        try:
            if not await self._converse(stream, session, run, show_code):
                await stream.aclose()
            elif session.code is None:
                await stream.aclose()
                self._failed_attempt(run, address, session.outcome)
            else:
                await self._finish(run, session, stream, address)
        finally:
            if took_it and not invitation.ended:  # only an unexpected error ends it here
                run.fail("pairing failed")

    def _failed_attempt(self, run: _Run, address: Address, failed: Failed) -> None:
        """An attempt to join failed before any code was shown: logged, audited and counted
        against its address (``Invitation.attempt_failed`` says whether the invitation ends)."""
        self.daemon.audit_pairing_failure("inviter", address, failed.reason)
        self.daemon.offense(address, "pairing_failed", audit=False)
        outcome = run.state.attempt_failed(trio.current_time())
        run.update()
        log.warning("pairing: the attempt from %s failed before any code was shown (%s); %s", address,
                    failed.message, outcome)

    # --- joining -------------------------------------------------------------------------------

    async def _join(self, run: _Run, address: Address | None) -> None:
        with run.scope:
            await self._join_in_scope(run, address)

    async def _join_in_scope(self, run: _Run, address: Address | None) -> None:
        joining = run.state
        try:
            try:
                with trio.fail_at(joining.deadline):
                    if address is None:
                        address = await self._find_invitation()
                    log.info("pairing: joining through %s", address)
                    joining.found = True
                    stream = await self._dial(address)
            except trio.TooSlowError:
                if trio.current_time() < joining.deadline:
                    raise  # the handshake's own limit
                raise PairingError(joining.timed_out()) from None
        except _FAILURES as exc:
            self._failed(run, Role.JOINER, address, Failed(_reason(exc), _message(exc)))
            return
        profile = load_profile(self.daemon.home)
        identity = Identity(self.daemon.vault.device.public.signing_public, profile.name, profile.os_description)
        session = PairingSession(Role.JOINER, handshake_hash=stream.handshake_hash,
                                 remote_static=stream.remote_static, now=trio.current_time(),
                                 code_deadline=joining.deadline, identity=identity)
        try:
            await self._converse(stream, session, run, partial(self._show, run))
            await self._finish(run, session, stream, address)
        finally:
            if not joining.ended:  # only an unexpected error ends it here
                run.fail("pairing failed")
            if run.scope.cancel_called and not joining.result:
                await trio.aclose_forcefully(stream)

    # --- both ----------------------------------------------------------------------------------

    @staticmethod
    def _show(run: _Run, code: str) -> bool:
        run.state.code = code
        run.update()
        return True

    async def _finish(self, run: _Run, session: PairingSession, stream: NoiseStream, address: Address) -> None:
        """The session is over (a code was shown, for an invitation): paired, and the connection
        goes on as a member connection, or failed and closed."""
        try:
            if isinstance(session.outcome, Failed):
                self._failed(run, session.role, address, session.outcome)
                await stream.aclose()
                return
            vault = self.daemon.vault
            member = vault.member_for_noise_key(stream.remote_static)
            result = {"paired": True, "device_id": str(member.device_id), "name": member.name,
                      "os": member.os_description}
            if session.role is Role.JOINER:
                result["vault_id"] = vault.vault_id.hex()
                log.info("joined the vault through %s", member.device_id.short)
            else:
                log.info("paired with %s (%s)", member.device_id.short, inert(member.name))
            run.state.succeed(result)
            run.update()
            await self.daemon.after_pairing(stream, member, role=session.role.value, address=address)
        except _FAILURES:
            await stream.aclose()

    def _failed(self, run: _Run, role: Role, address: Address | None, failed: Failed) -> None:
        reason, message = failed.reason, failed.message
        if isinstance(run.state, Joining):
            reason, message = run.state.failure(reason, message, trio.current_time())
        self.daemon.audit_pairing_failure(role.value, address, reason)
        run.fail(message)

    async def _converse(self, stream: NoiseStream, session: PairingSession, run: _Run,
                        show_code: Callable[[str], bool]) -> bool:
        """Move messages, the person's answer and the time between ``stream`` and ``session``
        until it is paired or failed. False if ``show_code`` would not show the code (the attempt
        came too late): the session is left where it is."""
        outbox: list[bytes] = []
        if not self._act(session, session.start(), outbox, show_code):
            return False
        while True:
            while outbox:
                try:
                    await stream.send(outbox.pop(0))
                except _LOST:
                    self._act(session, session.connection_lost(trio.current_time()), outbox, show_code)
            if session.done:
                return True
            for take in await self._next_inputs(stream, session, run):
                if not self._act(session, take(trio.current_time()), outbox, show_code):
                    return False

    @staticmethod
    async def _next_inputs(stream: NoiseStream, session: PairingSession,
                           run: _Run) -> list[Callable[[float], list[Event]]]:
        """Wait for what the session waits for: the other device's next message, the person's
        answer, or its next deadline (``tick``). Reading is cancelled at no loss (the Noise stream
        keeps a partial message)."""
        inputs: list[Callable[[float], list[Event]]] = []
        async with trio.open_nursery() as nursery:
            deadline = session.deadline()
            nursery.cancel_scope.deadline = math.inf if deadline is None else deadline

            async def read() -> None:
                try:
                    data = await stream.receive()
                except _LOST:
                    inputs.append(session.connection_lost)
                else:
                    inputs.append(partial(session.receive, data))
                nursery.cancel_scope.cancel()

            async def answer() -> None:
                await run.answered.wait()
                inputs.append(partial(session.answer, run.answer))
                nursery.cancel_scope.cancel()

            if session.expects_message:
                nursery.start_soon(read)
            if session.expects_answer:
                nursery.start_soon(answer)
            if not (session.expects_message or session.expects_answer):
                nursery.start_soon(trio.sleep_forever)  # only the deadline
        return inputs or [session.tick]

    def _act(self, session: PairingSession, events: list[Event], outbox: list[bytes],
             show_code: Callable[[str], bool]) -> bool:
        """Do what the events say, in order (the vault's part at once, so its answer's events
        follow); False if the code is not to be shown."""
        pending = list(events)
        while pending:
            event = pending.pop(0)
            if isinstance(event, Send):
                outbox.append(event.data)
            elif isinstance(event, ShowCode):
                if not show_code(event.code):
                    return False
            elif isinstance(event, (EnrollJoiner, JoinVault, AdmitRoster)):
                pending += self._vault_answer(session, event)
        return True

    def _vault_answer(self, session: PairingSession, event: EnrollJoiner | JoinVault | AdmitRoster) -> list[Event]:
        vault = self.daemon.vault
        try:
            if isinstance(event, EnrollJoiner):
                entry = vault.enroll(event.keys, event.name, event.os_description)
                return session.welcome(vault.header, vault.outgoing_roster(), entry)
            if isinstance(event, JoinVault):
                vault.join(event.header, event.roster, event.partner, event.name, event.os_description)
                return session.joined(vault.outgoing_roster())
            vault.receive_records(None, event.roster, ())
            return session.admitted()
        except VaultpeerError as exc:
            return session.fail(_reason(exc), str(exc))


def _reason(exc: BaseException) -> str:
    """Why a pairing failed, as the audit log records it (a word, never a message)."""
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, (ConnectionClosed, TransportError, trio.BrokenResourceError, OSError)):
        return "connection_lost"
    if isinstance(exc, AlreadyInitialized):
        return "refused"
    return "failed"


def _message(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return TIMED_OUT
    if isinstance(exc, (ConnectionClosed, TransportError, trio.BrokenResourceError, OSError)):
        return CONNECTION_LOST
    return str(exc)
