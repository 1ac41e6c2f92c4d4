"""Pairing as one pure state machine for both roles (h11 style), and the bookkeeping of a pairing run.

A :class:`PairingSession` is one pairing connection, inviter or joiner, from the first message to
the last (docs/protocol.md, "Pairing")::

    CODE      joiner -> commit, inviter -> nonce, joiner -> reveal     (``CodeExchange``)
    CONFIRM   each side -> confirm, as soon as its person answered (they may cross)
    IDENTITY  joiner -> identity        ENROLL  the inviter's vault vouches for the joiner
    WELCOME   inviter -> welcome        JOIN    the joiner's vault takes header and roster
    JOINED    joiner -> joined          ADMIT   the inviter's vault admits the joiner's roster
    PAIRED (or FAILED, from anywhere)

It does no I/O and reads no clock. Its inputs are the other device's messages (``receive``), the
person's answer (``answer``), a lost connection (``connection_lost``) and the time (``tick``; every
input takes ``now``, and ``deadline()`` says when the next ``tick`` is due). Each input returns the
events to act on, in order: :class:`Send` these bytes, :class:`ShowCode` to the person and ask for
the answer, let the vault do its part (:class:`EnrollJoiner`, :class:`JoinVault`,
:class:`AdmitRoster`, which the shell answers with ``welcome``, ``joined`` or ``admitted``), and at
the end :class:`Paired` or :class:`Failed` (an audit-log reason word and a message for the person).

:class:`Invitation` and :class:`Joining` keep what spans connections: the deadline, the attempts
to join an invitation, the code shown, how the run ended.
"""

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from vaultpeer.core.identity import DevicePublicKeys
from vaultpeer.core.keys import VaultHeader
from vaultpeer.core.pairing import (
    CodeExchange,
    Confirm,
    Identity,
    Joined,
    PairingError,
    PairingMessage,
    Welcome,
    decode_message,
    encode_message,
)
from vaultpeer.core.pairing_limits import (
    ATTEMPT_TIMEOUT,
    CONFIRM_FINISH,
    CONFIRM_GRACE,
    CONFIRM_TIMEOUT,
    MAX_CONCURRENT_ATTEMPTS,
    MAX_FAILED_ATTEMPTS,
)
from vaultpeer.core.roster import RosterEntry
from vaultpeer.core.sync import LocalProtocolError

UNEXPECTED = "pairing failed: the other device sent something unexpected"
CONNECTION_LOST = "pairing failed: the connection to the other device was lost"
TIMED_OUT = "pairing timed out"
NOT_CONFIRMED = "the other device did not confirm the code"


class Role(Enum):
    """A side of a pairing; the value is the audit log's ``role`` word."""

    INVITER = "inviter"
    JOINER = "joiner"


class Phase(Enum):
    CODE = "code"
    CONFIRM = "confirm"
    IDENTITY = "identity"
    ENROLL = "enroll"
    WELCOME = "welcome"
    JOIN = "join"
    JOINED = "joined"
    ADMIT = "admit"
    PAIRED = "paired"
    FAILED = "failed"


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Bytes for the other device (one pairing message, before the Noise channel seals it)."""

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ShowCode:
    """Show the person the code and ask whether both devices show it (then call ``answer``)."""

    code: str = field(repr=False)


@dataclass(frozen=True)
class EnrollJoiner:
    """(Inviter) Vouch for the joining device; then call ``welcome`` with the header, the roster
    and the entry just made."""

    keys: DevicePublicKeys
    name: str
    os_description: str


@dataclass(frozen=True)
class JoinVault:
    """(Joiner) Join the vault of ``partner`` (the inviter) with the header and roster it sent;
    then call ``joined`` with this device's roster."""

    header: VaultHeader
    roster: tuple[RosterEntry, ...]
    partner: DevicePublicKeys
    name: str
    os_description: str


@dataclass(frozen=True)
class AdmitRoster:
    """(Inviter) Admit the joiner's roster entries as a records batch's; then call ``admitted``."""

    roster: tuple[RosterEntry, ...]


@dataclass(frozen=True)
class Paired:
    """Both sides are members: the connection goes on as a member connection."""


@dataclass(frozen=True)
class Failed:
    """The pairing ended without pairing: close the connection. ``reason`` is the audit log's
    word (``timeout``, ``connection_lost``, ``declined``, ``declined_by_peer``, ``refused``,
    ``failed``); ``message`` is what the person reads. Neither holds a secret."""

    reason: str
    message: str


Event = Send | ShowCode | EnrollJoiner | JoinVault | AdmitRoster | Paired | Failed

#: After the code is confirmed, the one table for both roles: in each phase that waits for the
#: other device, the message it must send and the phase it leads to.
_EXPECTED: dict[Phase, tuple[type[PairingMessage], Phase]] = {
    Phase.IDENTITY: (Identity, Phase.ENROLL),  # the inviter waits for the joiner's identity
    Phase.WELCOME: (Welcome, Phase.JOIN),  # the joiner waits for the inviter's welcome
    Phase.JOINED: (Joined, Phase.ADMIT),  # the inviter waits for the joiner's roster
}


class PairingSession:
    """One side of one pairing connection. ``code_deadline``: when the code must be reached
    (the inviter: the attempt's limit, ``Invitation.attempt_deadline``; the joiner: its
    ``Joining.deadline``). The joiner gives the ``identity`` it will send."""

    def __init__(self, role: Role, *, handshake_hash: bytes, remote_static: bytes, now: float,
                 code_deadline: float, identity: Identity | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom):
        if (role is Role.JOINER) != (identity is not None):
            raise LocalProtocolError("the joiner, and only the joiner, sends an identity")
        self.role = role
        self.phase = Phase.CODE
        self.outcome: Paired | Failed | None = None
        self._remote_static = remote_static
        self._identity = identity
        self._exchange = CodeExchange(joiner=role is Role.JOINER, handshake_hash=handshake_hash,
                                      random_bytes=random_bytes)
        self._code_deadline = code_deadline
        self._code_at = now
        #: This person's answer and the other device's, while confirming (None: not yet).
        self._mine: bool | None = None
        self._theirs: bool | None = None

    # --- what the shell asks -----------------------------------------------------------------

    @property
    def code(self) -> str | None:
        return self._exchange.code

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def expects_message(self) -> bool:
        """Whether to read the other device's next message now. While this person is still
        deciding after the other device confirmed, nothing more may come: it is not read."""
        if self.phase is Phase.CONFIRM:
            return self._theirs is None
        return self.phase is Phase.CODE or self.phase in _EXPECTED

    @property
    def expects_answer(self) -> bool:
        """Whether the person's answer is awaited (the code is shown)."""
        return self.phase is Phase.CONFIRM and self._mine is None

    def deadline(self) -> float | None:
        """When ``tick`` next has something to do (None: never, the session is over)."""
        if self.done:
            return None
        if self.phase is Phase.CODE:
            return self._code_deadline
        if self.phase is Phase.CONFIRM:
            return self._code_at + CONFIRM_TIMEOUT + (0.0 if self._mine is None else CONFIRM_GRACE)
        return self._code_at + CONFIRM_TIMEOUT + CONFIRM_FINISH

    # --- inputs ------------------------------------------------------------------------------

    def start(self) -> list[Event]:
        """The joiner's commitment (the inviter sends nothing first)."""
        first = self._exchange.start()
        return [Send(first)] if first is not None else []

    def tick(self, now: float) -> list[Event]:
        """Time has passed: whatever was due by ``now`` ends the session."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self.phase is not Phase.CONFIRM:
            return self._fail("timeout", TIMED_OUT)
        if self._mine is None:
            return [Send(encode_message(Confirm(False))),
                    *self._fail("timeout", f"no answer was given on this device within {CONFIRM_TIMEOUT:g} s")]
        return self._fail("timeout", NOT_CONFIRMED)

    def receive(self, data: bytes, now: float) -> list[Event]:
        """One whole message from the other device."""
        events = self.tick(now)
        if self.done:
            return events
        if self.phase is Phase.CODE:
            return self._receive_code(data, now)
        if self.phase is Phase.CONFIRM:
            return self._receive_confirm(data)
        if self.phase not in _EXPECTED:
            raise LocalProtocolError(f"no message from the other device is expected now ({self.phase.value})")
        kind, following = _EXPECTED[self.phase]
        try:
            message = decode_message(data)
        except PairingError as exc:
            return self._fail("failed", str(exc))
        if not isinstance(message, kind):
            return self._fail("failed", UNEXPECTED)
        self.phase = following
        if isinstance(message, Identity):
            keys = DevicePublicKeys(self._remote_static, message.signing_public)
            return [EnrollJoiner(keys, message.name, message.os_description)]
        if isinstance(message, Welcome):
            # the inviter's keys: the first entry about the key the code confirmed
            partner = next((e.member for e in message.roster if e.member.noise_public == self._remote_static), None)
            if partner is None:
                return self._fail("failed", "pairing failed: the other device did not describe itself")
            me = self._identity
            return [JoinVault(message.header, message.roster, partner, me.name, me.os_description)]
        return [AdmitRoster(message.roster)]

    def answer(self, accept: bool, now: float) -> list[Event]:
        """The person's answer: both devices show the code (``accept``), or not."""
        events = self.tick(now)
        if self.done:
            return events
        if not self.expects_answer:
            raise LocalProtocolError("no answer is awaited now")
        self._mine = accept
        events = [Send(encode_message(Confirm(accept)))]
        if not accept:
            return events + self._fail("declined", "pairing was declined on this device")
        if self._theirs:
            return events + self._confirmed()
        return events

    def connection_lost(self, now: float) -> list[Event]:
        """Reading from or sending to the other device failed."""
        events = self.tick(now)
        if self.done:
            return events
        if self.phase is Phase.CONFIRM and self._theirs is None:
            return self._peer_said_no()  # a failed read counts as the other side's "no"
        return self._fail("connection_lost", CONNECTION_LOST)

    # --- the vault's answers ------------------------------------------------------------------

    def welcome(self, header: VaultHeader, roster: Iterable[RosterEntry], entry: RosterEntry) -> list[Event]:
        """(Inviter, after EnrollJoiner) The header, this device's roster and the entry vouching
        for the joiner (sent once more after the roster, as the protocol says)."""
        self._require(Phase.ENROLL)
        self.phase = Phase.JOINED
        return [Send(encode_message(Welcome(header, (*roster, entry))))]

    def admitted(self) -> list[Event]:
        """(Inviter, after AdmitRoster) The joiner's entries are stored: paired."""
        self._require(Phase.ADMIT)
        return self._paired()

    def joined(self, roster: Iterable[RosterEntry]) -> list[Event]:
        """(Joiner, after JoinVault) This device's roster, for the inviter: paired."""
        self._require(Phase.JOIN)
        return [Send(encode_message(Joined(tuple(roster)))), *self._paired()]

    def fail(self, reason: str, message: str) -> list[Event]:
        """The shell's side failed (the vault refused): the session ends with ``reason``."""
        return [] if self.done else self._fail(reason, message)

    # --- inside ----------------------------------------------------------------------------------

    def _receive_code(self, data: bytes, now: float) -> list[Event]:
        try:
            reply = self._exchange.receive(data)
        except PairingError as exc:
            return self._fail("failed", str(exc))
        events: list[Event] = [Send(reply)] if reply is not None else []
        if self._exchange.code is not None:
            self.phase = Phase.CONFIRM
            self._code_at = now
            events.append(ShowCode(self._exchange.code))
        return events

    def _receive_confirm(self, data: bytes) -> list[Event]:
        try:
            message = decode_message(data)
        except PairingError:
            message = None
        # anything but one confirm (a message in its place, a second message) counts as a "no"
        if self._theirs is not None or not isinstance(message, Confirm) or not message.ok:
            return self._peer_said_no()
        self._theirs = True
        return self._confirmed() if self._mine else []

    def _peer_said_no(self) -> list[Event]:
        self._theirs = False
        events = [Send(encode_message(Confirm(False)))] if self._mine is None else []
        return events + self._fail("declined_by_peer", NOT_CONFIRMED)

    def _confirmed(self) -> list[Event]:
        """Both said yes: the joiner describes itself, the inviter waits for that."""
        if self.role is Role.INVITER:
            self.phase = Phase.IDENTITY
            return []
        self.phase = Phase.WELCOME
        return [Send(encode_message(self._identity))]

    def _paired(self) -> list[Event]:
        self.phase = Phase.PAIRED
        self.outcome = Paired()
        return [self.outcome]

    def _fail(self, reason: str, message: str) -> list[Event]:
        self.phase = Phase.FAILED
        self.outcome = Failed(reason, message)
        return [self.outcome]

    def _require(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise LocalProtocolError(f"the vault's answer is not awaited now ({self.phase.value})")


# --- a pairing run: an invitation, or the joining device's search --------------------------------


class PairingRun:
    """What one pairing in progress on a device keeps across connections (pure)."""

    def __init__(self, *, timeout: float, now: float):
        #: Seconds to wait for the other device (until a code is shown), and when they are up.
        self.timeout = timeout
        self.deadline = now + timeout
        self.code: str | None = None
        #: How it ended: the result for the person, or what went wrong.
        self.result: dict | None = None
        self.error: str | None = None

    @property
    def ended(self) -> bool:
        return self.result is not None or self.error is not None

    def fail(self, message: str) -> None:
        if not self.ended:
            self.error = message

    def succeed(self, result: dict) -> None:
        if not self.ended:
            self.result = result


class Invitation(PairingRun):
    """An invitation takes attempts to join until one reaches the code (``claimed``): an attempt
    that fails before that (a stranger's, most likely) leaves it open, up to MAX_FAILED_ATTEMPTS.
    Once the person sees a code, any failure ends it."""

    role = Role.INVITER

    def __init__(self, *, timeout: float, now: float):
        super().__init__(timeout=timeout, now=now)
        #: Attempts to join running now, and those that failed, before any code was shown.
        self.attempts = 0
        self.failed_attempts = 0
        #: A joiner reached the code: the person is comparing it (no other attempt is taken).
        self.claimed = False

    @property
    def is_open(self) -> bool:
        """Whether an attempt to join may start (the XX handshake is answered only then)."""
        return not self.claimed and not self.ended

    def timed_out(self) -> str:
        return f"no device joined within {self.timeout:g} s; the invitation is withdrawn"

    def begin_attempt(self) -> str | None:
        """A device asks to join: None if it may try (counted), else why not (an offense word)."""
        if not self.is_open:
            return "no_invitation"
        if self.attempts >= MAX_CONCURRENT_ATTEMPTS:
            return "too_many_connections"
        self.attempts += 1
        return None

    def attempt_deadline(self, now: float) -> float:
        """No person is involved yet: the joiner's device answers at once."""
        return min(self.deadline, now + ATTEMPT_TIMEOUT)

    def reach_code(self) -> bool:
        """An attempt reached the code: it takes the invitation, unless another did or it ended
        (False: it came too late)."""
        self.attempts -= 1
        if not self.is_open:
            return False
        self.claimed = True
        return True

    def attempt_failed(self, now: float) -> str:
        """An attempt failed before any code was shown. The invitation stays open unless this was
        the last failure allowed or its time is up; one that another attempt took is left alone.
        Returns what became of it, for the log."""
        self.attempts -= 1
        self.failed_attempts += 1
        if not self.is_open:
            return "the invitation was already taken or ended"
        if self.failed_attempts >= MAX_FAILED_ATTEMPTS:
            self.fail(f"the invitation ended after {MAX_FAILED_ATTEMPTS} failed attempts to join "
                      "(`vaultpeer log` shows them); if they were not yours, someone on the network interfered")
            return "the invitation ends"
        if now >= self.deadline:
            self.fail(self.timed_out())
            return "the invitation's time is up"
        return "still waiting"

    def expire(self) -> None:
        """Its time is up (or it ended): unless a code is shown, no device joined in time."""
        if not self.claimed:
            self.fail(self.timed_out())


class Joining(PairingRun):
    """The joining device's side: find the invitation, connect, reach the code, all in time."""

    role = Role.JOINER

    def __init__(self, *, timeout: float, now: float):
        super().__init__(timeout=timeout, now=now)
        #: The inviting device was found: it is the one that must answer now.
        self.found = False

    def timed_out(self) -> str:
        seconds = f"{self.timeout:g}"
        if self.found:
            return f"the inviting device did not answer within {seconds} s"
        return f"no invitation to join was found within {seconds} s"

    def failure(self, reason: str, message: str, now: float) -> tuple[str, str]:
        """The reason word and message of a failure at ``now``: past the deadline with no code
        shown, the time was up, whatever broke last."""
        if self.code is None and now >= self.deadline:
            return "timeout", self.timed_out() if reason == "timeout" else message
        return reason, message
