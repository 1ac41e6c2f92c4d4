"""The pairing machine, both roles driven against each other with no I/O (as h11's tests drive a
ConnectionPair): the seven messages, both answers, every timeout by passed-in time, and a hostile
other side."""

import random
import re

import pytest

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import create_vault
from vaultpeer.core.pairing import (
    Commit,
    Confirm,
    Identity,
    Joined,
    Nonce,
    Reveal,
    Welcome,
    commitment,
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
from vaultpeer.core.pairing_session import (
    NOT_CONFIRMED,
    UNEXPECTED,
    AdmitRoster,
    EnrollJoiner,
    Failed,
    Invitation,
    Joining,
    JoinVault,
    Paired,
    PairingSession,
    Phase,
    Role,
    Send,
    ShowCode,
)
from vaultpeer.core.roster import vouch
from vaultpeer.core.sync import LocalProtocolError

HASH = bytes(range(64))
JOIN_DEADLINE = 120.0
DECLINED = Failed("declined", "pairing was declined on this device")
BY_PEER = Failed("declined_by_peer", NOT_CONFIRMED)
LOST = Failed("connection_lost", "pairing failed: the connection to the other device was lost")
TIMED_OUT = Failed("timeout", "pairing timed out")


@pytest.fixture(scope="module")
def vault():
    """The inviter's keys, its vault's header and its roster entry about itself; the joiner's keys."""
    inviter, joiner = DeviceKeys.generate(), DeviceKeys.generate()
    kdf = insecure_test_parameters()
    header, _, _ = create_vault(kdf.derive("a test password"), kdf, inviter)
    own = vouch(header.vault_id, inviter, inviter.public, "laptop", "Linux")
    return inviter, joiner, header, own


class SessionPair:
    """An inviter and a joiner session with the messages in flight between them, and the vault's
    part answered as the pump answers it (pure: the entries are made with ``vouch``)."""

    def __init__(self, vault, *, inviter_hash=HASH, joiner_hash=HASH, now=0.0):
        self.inviter_keys, self.joiner_keys, self.header, self.own = vault
        self.inviter = PairingSession(Role.INVITER, handshake_hash=inviter_hash,
                                      remote_static=self.joiner_keys.public.noise_public, now=now,
                                      code_deadline=now + ATTEMPT_TIMEOUT)
        self.joiner = PairingSession(Role.JOINER, handshake_hash=joiner_hash,
                                     remote_static=self.inviter_keys.public.noise_public, now=now,
                                     code_deadline=now + JOIN_DEADLINE,
                                     identity=Identity(self.joiner_keys.public.signing_public, "phone", "Android"))
        #: Messages on their way to each side, and every event each side produced.
        self.to = {self.inviter: [], self.joiner: []}
        self.events = {self.inviter: [], self.joiner: []}
        self.sent: list[tuple[str, str]] = []  # (sender role, message kind), in order
        self.act(self.joiner, self.joiner.start())

    def other(self, side):
        return self.joiner if side is self.inviter else self.inviter

    def act(self, side, events):
        for event in events:
            self.events[side].append(event)
            if isinstance(event, Send):
                self.to[self.other(side)].append(event.data)
                self.sent.append((side.role.value, decode_message(event.data).__class__.__name__))
            elif isinstance(event, EnrollJoiner):
                entry = vouch(self.header.vault_id, self.inviter_keys, event.keys, event.name, event.os_description)
                self.act(side, side.welcome(self.header, [self.own, entry], entry))  # the vault's roster has it
            elif isinstance(event, JoinVault):
                mine = [vouch(self.header.vault_id, self.joiner_keys, event.partner, "paired device", "unknown"),
                        vouch(self.header.vault_id, self.joiner_keys, self.joiner_keys.public, event.name,
                              event.os_description)]
                self.act(side, side.joined(mine))
            elif isinstance(event, AdmitRoster):
                self.act(side, side.admitted())
        return events

    def deliver(self, side, now=0.0):
        """The oldest message in flight to ``side`` arrives."""
        return self.act(side, side.receive(self.to[side].pop(0), now))

    def inject(self, side, message, now=0.0):
        """A message the other side never made (a hostile device, or one in the middle)."""
        data = message if isinstance(message, bytes) else encode_message(message)
        return self.act(side, side.receive(data, now))

    def answer(self, side, accept, now=0.0):
        return self.act(side, side.answer(accept, now))

    def to_code(self, now=0.0):
        """Commit, nonce, reveal: both show a code."""
        self.deliver(self.inviter, now)
        self.deliver(self.joiner, now)
        self.deliver(self.inviter, now)
        return self.inviter.code, self.joiner.code

    def to_confirmed(self, now=0.0):
        """Both said yes: the joiner's identity is on its way."""
        if self.inviter.code is None:
            self.to_code(now)
        self.answer(self.inviter, True, now)
        self.answer(self.joiner, True, now)
        self.deliver(self.joiner, now)  # the inviter's yes: the joiner sends its identity
        self.deliver(self.inviter, now)  # the joiner's yes


def outcome(side):
    return side.outcome


# --- the whole exchange ----------------------------------------------------------------------------


def test_both_sides_pair_with_the_seven_messages_in_order_and_the_same_code(vault):
    pair = SessionPair(vault)
    inviter_code, joiner_code = pair.to_code()
    assert inviter_code == joiner_code and re.fullmatch(r"\d{3} \d{3}", inviter_code)
    assert ShowCode(inviter_code) in pair.events[pair.inviter] and ShowCode(joiner_code) in pair.events[pair.joiner]
    assert pair.inviter.expects_answer and pair.joiner.expects_answer
    pair.to_confirmed()
    pair.deliver(pair.inviter)  # identity -> the vault enrolls, welcome
    pair.deliver(pair.joiner)  # welcome -> the vault joins, joined
    pair.deliver(pair.inviter)  # joined -> the vault admits
    assert outcome(pair.inviter) == Paired() and outcome(pair.joiner) == Paired()
    assert pair.sent == [("joiner", "Commit"), ("inviter", "Nonce"), ("joiner", "Reveal"), ("inviter", "Confirm"),
                         ("joiner", "Confirm"), ("joiner", "Identity"), ("inviter", "Welcome"), ("joiner", "Joined")]
    assert pair.to == {pair.inviter: [], pair.joiner: []}
    enroll = next(e for e in pair.events[pair.inviter] if isinstance(e, EnrollJoiner))
    assert (enroll.keys, enroll.name, enroll.os_description) == (pair.joiner_keys.public, "phone", "Android")
    join = next(e for e in pair.events[pair.joiner] if isinstance(e, JoinVault))
    assert join.partner == pair.inviter_keys.public and join.header == pair.header
    assert [e.member for e in join.roster] == [pair.inviter_keys.public, pair.joiner_keys.public,
                                               pair.joiner_keys.public]  # the new entry sent once more
    assert pair.inviter.deadline() is None and not pair.inviter.expects_message


@pytest.mark.parametrize("order", ["inviter first", "joiner first", "crossing"])
def test_the_two_answers_may_come_in_any_order_and_cross(vault, order):
    pair = SessionPair(vault)
    pair.to_code()
    if order == "inviter first":
        pair.answer(pair.inviter, True)
        pair.deliver(pair.joiner)  # the joiner hears yes before its person answers
        assert not pair.joiner.expects_message  # nothing more may come before its own answer
        pair.answer(pair.joiner, True)  # -> confirm and identity at once
        pair.deliver(pair.inviter)
    elif order == "joiner first":
        pair.answer(pair.joiner, True)
        pair.deliver(pair.inviter)
        pair.answer(pair.inviter, True)
        pair.deliver(pair.joiner)
    else:
        pair.answer(pair.inviter, True)
        pair.answer(pair.joiner, True)
        pair.deliver(pair.inviter)
        pair.deliver(pair.joiner)
    for _ in range(3):
        pair.deliver(pair.inviter if pair.to[pair.inviter] else pair.joiner)
    assert outcome(pair.inviter) == outcome(pair.joiner) == Paired()


# --- declining --------------------------------------------------------------------------------------


@pytest.mark.parametrize("decliner", ["inviter", "joiner"])
def test_either_side_declining_ends_both_after_the_other_said_yes(vault, decliner):
    pair = SessionPair(vault)
    pair.to_code()
    no, yes = (pair.inviter, pair.joiner) if decliner == "inviter" else (pair.joiner, pair.inviter)
    pair.answer(yes, True)
    assert pair.answer(no, False) == [Send(encode_message(Confirm(False))), DECLINED]
    pair.deliver(yes)
    assert outcome(yes) == BY_PEER and outcome(no) == DECLINED
    assert not any(isinstance(e, (EnrollJoiner, JoinVault, Paired)) for e in pair.events[yes] + pair.events[no])


def test_the_other_sides_no_ends_the_wait_before_this_person_answers(vault):
    pair = SessionPair(vault)
    pair.to_code()
    pair.answer(pair.joiner, False)
    # the inviter's person has not answered: its "no" goes out at once, without waiting
    assert pair.deliver(pair.inviter) == [Send(encode_message(Confirm(False))), BY_PEER]
    assert pair.inviter.deadline() is None and not pair.inviter.expects_answer
    assert pair.answer(pair.inviter, True) == []  # too late: the answer changes nothing
    assert outcome(pair.inviter) == BY_PEER


@pytest.mark.parametrize("instead", [Identity(b"k" * 32, "phone", "Android"), Nonce(b"n" * 32), b"\xa0", b""])
def test_anything_but_a_confirm_counts_as_the_other_sides_no(vault, instead):
    pair = SessionPair(vault)
    pair.to_code()
    assert pair.inject(pair.inviter, instead) == [Send(encode_message(Confirm(False))), BY_PEER]


def test_a_connection_lost_while_confirming_counts_as_a_no(vault):
    pair = SessionPair(vault)
    pair.to_code()
    pair.answer(pair.inviter, True)
    assert pair.inviter.connection_lost(1.0) == [BY_PEER]  # its yes was sent: no second confirm
    pair.to[pair.joiner].clear()
    assert pair.joiner.connection_lost(1.0) == [Send(encode_message(Confirm(False))), BY_PEER]


# --- time ---------------------------------------------------------------------------------------------


def test_an_attempt_that_does_not_reach_the_code_in_time_ends(vault):
    pair = SessionPair(vault, now=100.0)
    pair.deliver(pair.inviter, 101.0)  # the commitment, in time
    assert pair.inviter.deadline() == 100.0 + ATTEMPT_TIMEOUT
    assert pair.inviter.tick(109.9) == []
    assert pair.inviter.tick(110.0) == [TIMED_OUT]
    assert pair.inviter.code is None
    assert pair.joiner.deadline() == 100.0 + JOIN_DEADLINE
    assert pair.joiner.tick(100.0 + JOIN_DEADLINE) == [TIMED_OUT]


def test_a_message_after_the_deadline_is_too_late(vault):
    pair = SessionPair(vault)
    assert pair.deliver(pair.inviter, ATTEMPT_TIMEOUT) == [TIMED_OUT]  # the commitment came late


def test_no_answer_within_the_confirm_timeout_sends_a_no(vault):
    pair = SessionPair(vault)
    pair.to_code(now=5.0)
    pair.answer(pair.joiner, True, 6.0)
    pair.deliver(pair.inviter, 7.0)
    assert pair.inviter.deadline() == 5.0 + CONFIRM_TIMEOUT
    assert pair.inviter.tick(5.0 + CONFIRM_TIMEOUT - 0.1) == []
    assert pair.act(pair.inviter, pair.inviter.tick(5.0 + CONFIRM_TIMEOUT)) == [
        Send(encode_message(Confirm(False))), Failed("timeout", "no answer was given on this device within 120 s")]
    # the joiner said yes and waits a little longer than its person had, then hears the no
    assert pair.joiner.deadline() == 5.0 + CONFIRM_TIMEOUT + CONFIRM_GRACE
    assert pair.deliver(pair.joiner, 5.0 + CONFIRM_TIMEOUT) == [BY_PEER]


def test_a_yes_waits_a_little_longer_for_the_other_answer_then_gives_up(vault):
    pair = SessionPair(vault)
    pair.to_code(now=5.0)
    pair.answer(pair.inviter, True, 50.0)
    limit = 5.0 + CONFIRM_TIMEOUT + CONFIRM_GRACE
    assert pair.inviter.tick(limit - 0.1) == []
    assert pair.inviter.tick(limit) == [Failed("timeout", NOT_CONFIRMED)]


@pytest.mark.parametrize("stage", ["identity", "welcome", "joined"])
def test_the_roster_exchange_must_end_within_the_finish_time(vault, stage):
    pair = SessionPair(vault)
    pair.to_code(now=5.0)
    pair.to_confirmed(now=7.0)  # the identity is on its way
    waiting = pair.inviter
    if stage in ("welcome", "joined"):
        pair.deliver(pair.inviter, 8.0)  # the welcome is on its way
        waiting = pair.joiner
    if stage == "joined":
        pair.deliver(pair.joiner, 9.0)  # the joined message is on its way
        waiting = pair.inviter
    pair.to[waiting].clear()  # and lost
    limit = 5.0 + CONFIRM_TIMEOUT + CONFIRM_FINISH
    assert waiting.deadline() == limit and waiting.tick(limit - 0.1) == []
    assert waiting.tick(limit) == [TIMED_OUT]


# --- wrong and hostile messages -------------------------------------------------------------------


def messages(vault):
    inviter, joiner, header, own = vault
    return [Commit(b"c" * 32), Nonce(b"n" * 32), Reveal(b"r" * 32), Confirm(True),
            Identity(joiner.public.signing_public, "phone", "Android"), Welcome(header, (own,)), Joined((own,))]


@pytest.mark.parametrize("stage", ["commit", "reveal", "nonce", "identity", "welcome", "joined"])
def test_a_wrong_message_at_any_step_ends_the_pairing(vault, stage):
    """Every message but the expected one, and garbage, in each place the other side must speak
    (outside the confirmation, where anything else is a "no")."""
    expected = {"commit": Commit, "reveal": Reveal, "nonce": Nonce, "identity": Identity, "welcome": Welcome,
                "joined": Joined}[stage]
    for wrong in [m for m in messages(vault) if not isinstance(m, expected)] + [b"\xa0", b"", b"\xff" * 40]:
        pair = SessionPair(vault)
        if stage in ("reveal", "nonce"):
            pair.deliver(pair.inviter)
        if stage == "reveal":
            pair.deliver(pair.joiner)
        if stage in ("identity", "welcome", "joined"):
            pair.to_confirmed()
        if stage in ("welcome", "joined"):
            pair.deliver(pair.inviter)
        if stage == "joined":
            pair.deliver(pair.joiner)
        side = pair.joiner if stage in ("nonce", "welcome") else pair.inviter
        assert pair.inject(side, wrong) == [Failed("failed", UNEXPECTED)], (stage, wrong)
        assert side.phase is Phase.FAILED and side.deadline() is None and not side.expects_message


def test_a_hostile_joiner_out_of_order_gets_nothing(vault):
    pair = SessionPair(vault)
    pair.to[pair.inviter].clear()
    # a reveal, an identity or a joined before any commitment: no nonce, no enrollment
    for early in (Reveal(b"r" * 32), Identity(pair.joiner_keys.public.signing_public, "x", "y"), Joined((pair.own,))):
        pair = SessionPair(vault)
        assert pair.inject(pair.inviter, early) == [Failed("failed", UNEXPECTED)]
    # its yes, then its identity at once, before this person answered: counted as a no, nothing enrolled
    pair = SessionPair(vault)
    pair.to_code()
    pair.answer(pair.joiner, True)
    pair.deliver(pair.inviter)
    assert not pair.inviter.expects_message
    events = pair.inject(pair.inviter, Identity(pair.joiner_keys.public.signing_public, "phone", "Android"))
    assert events == [Send(encode_message(Confirm(False))), BY_PEER]


def test_a_welcome_or_joined_from_the_wrong_side_is_refused(vault):
    pair = SessionPair(vault)
    pair.to_confirmed()
    # the joiner sends a welcome of its own (trying to hand the inviter a vault), or skips to joined
    for wrong in (Welcome(pair.header, (pair.own,)), Joined((pair.own,))):
        again = SessionPair(vault)
        again.to_confirmed()
        assert again.inject(again.inviter, wrong) == [Failed("failed", UNEXPECTED)]
    # an inviter that answers the identity with a joined, or sends an identity of its own
    for wrong in (Joined((pair.own,)), Identity(pair.inviter_keys.public.signing_public, "x", "y")):
        again = SessionPair(vault)
        again.to_confirmed()
        again.to[again.inviter].clear()
        assert again.inject(again.joiner, wrong) == [Failed("failed", UNEXPECTED)]


def test_a_welcome_without_the_inviters_entry_is_refused(vault):
    inviter, joiner, header, _ = vault
    stranger = DeviceKeys.generate()
    pair = SessionPair(vault)
    pair.to_confirmed()
    someone_else = vouch(header.vault_id, stranger, stranger.public, "not the laptop", "Linux")
    assert pair.inject(pair.joiner, Welcome(header, (someone_else,))) == [
        Failed("failed", "pairing failed: the other device did not describe itself")]


def test_a_tampered_reveal_breaks_the_commitment(vault):
    pair = SessionPair(vault)
    pair.deliver(pair.inviter)
    pair.deliver(pair.joiner)
    pair.to[pair.inviter].clear()
    assert pair.inject(pair.inviter, Reveal(b"\x00" * 32)) == [
        Failed("failed", "pairing failed: the other device broke its commitment")]
    assert pair.inviter.code is None


def test_a_man_in_the_middle_shows_two_different_codes(vault):
    """Two handshakes (one with each side) have different hashes; a nonce swapped in flight
    changes the code too. The people see different codes and say no."""
    pair = SessionPair(vault, inviter_hash=HASH, joiner_hash=bytes(64))
    inviter_code, joiner_code = pair.to_code()
    assert inviter_code != joiner_code
    pair = SessionPair(vault)
    pair.deliver(pair.inviter)
    pair.to[pair.joiner] = [encode_message(Nonce(b"m" * 32))]  # the middle's own nonce
    pair.deliver(pair.joiner)
    pair.deliver(pair.inviter)
    assert pair.inviter.code != pair.joiner.code


def test_a_commitment_to_a_known_nonce_still_gives_no_control_of_the_code(vault):
    """The inviter picks its nonce before it sees the joiner's: a joiner that tries commitments
    until a code it likes gets a different code from each fresh inviter nonce."""
    codes = set()
    for seed in range(20):
        inviter = PairingSession(Role.INVITER, handshake_hash=HASH, remote_static=b"j" * 32, now=0,
                                 code_deadline=10, random_bytes=random.Random(seed).randbytes)
        inviter.receive(encode_message(Commit(commitment(b"x" * 32))), 0)
        inviter.receive(encode_message(Reveal(b"x" * 32)), 0)
        codes.add(inviter.code)
    assert len(codes) == 20


def test_the_vault_refusing_ends_the_pairing(vault):
    pair = SessionPair(vault)
    pair.to_confirmed()
    pair.deliver(pair.inviter)
    joiner = pair.joiner
    events = joiner.receive(pair.to[joiner].pop(0), 0.0)  # not acted on: the vault refuses
    assert isinstance(events[0], JoinVault) and joiner.phase is Phase.JOIN and not joiner.expects_message
    assert joiner.fail("refused", "this device holds another vault") == [
        Failed("refused", "this device holds another vault")]
    assert joiner.fail("failed", "again") == [] and joiner.tick(1e9) == []


def test_a_lost_connection_outside_the_confirmation_is_connection_lost(vault):
    pair = SessionPair(vault)
    assert pair.inviter.connection_lost(0.0) == [LOST]
    pair = SessionPair(vault)
    pair.to_confirmed()
    assert pair.inviter.connection_lost(0.0) == [LOST]


def test_the_shell_calling_out_of_turn_is_a_local_error(vault):
    pair = SessionPair(vault)
    with pytest.raises(LocalProtocolError):
        pair.inviter.answer(True, 0.0)  # no code yet
    with pytest.raises(LocalProtocolError):
        pair.inviter.admitted()
    pair.to_confirmed()
    events = pair.inviter.receive(pair.to[pair.inviter].pop(0), 0.0)
    assert isinstance(events[0], EnrollJoiner)
    with pytest.raises(LocalProtocolError):
        pair.inviter.receive(encode_message(Joined(())), 0.0)  # the vault has not answered
    with pytest.raises(LocalProtocolError):
        pair.inviter.joined([])
    with pytest.raises(LocalProtocolError):
        PairingSession(Role.INVITER, handshake_hash=HASH, remote_static=b"j" * 32, now=0, code_deadline=1,
                       identity=Identity(b"k" * 32, "a", "b"))


def test_no_secret_in_a_repr(vault):
    pair = SessionPair(vault)
    pair.to_code()
    nonce = decode_message(pair.events[pair.inviter][0].data).nonce
    for shown in (repr(pair.events[pair.inviter]), repr(pair.events[pair.joiner]), repr(pair.inviter)):
        assert nonce.hex() not in shown and repr(nonce) not in shown and pair.inviter.code not in shown


# --- random schedules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(200))
def test_any_schedule_ends_alike_on_both_sides(vault, seed):
    """Messages delivered, answers given and time passing in a random order: both sides end, and
    they pair exactly when both people said yes in time (h11's ConnectionPair, randomised)."""
    rng = random.Random(seed)
    pair = SessionPair(vault)
    sides = [pair.inviter, pair.joiner]
    answers = {side: rng.random() < 0.8 for side in sides}
    late = {side: rng.random() < 0.1 for side in sides}
    now = 0.0
    for _ in range(200):
        moves = [("deliver", s) for s in sides if pair.to[s] and s.expects_message]
        moves += [("answer", s) for s in sides if s.expects_answer and not late[s]]
        if not moves:
            break
        kind, side = rng.choice(moves)
        now += rng.random()
        if kind == "deliver":
            pair.deliver(side, now)
        else:
            pair.answer(side, answers[side], now)
    for side in sides:  # whatever still waits, waits in vain
        pair.act(side, side.tick(1e6))
        if pair.to[pair.other(side)] and pair.other(side).expects_message:
            pair.deliver(pair.other(side), 1e6)
    assert all(side.done for side in sides)
    both_yes = all(answers.values()) and not any(late.values())
    assert (outcome(pair.inviter) == Paired()) == (outcome(pair.joiner) == Paired()) == both_yes


# --- invitations and joining ------------------------------------------------------------------------


def test_an_invitation_takes_a_few_attempts_at_once_and_the_first_to_reach_the_code():
    invitation = Invitation(timeout=60, now=1000)
    assert invitation.deadline == 1060 and invitation.is_open
    assert [invitation.begin_attempt() for _ in range(MAX_CONCURRENT_ATTEMPTS + 1)] == \
        [None] * MAX_CONCURRENT_ATTEMPTS + ["too_many_connections"]
    assert invitation.attempt_deadline(1000) == 1000 + ATTEMPT_TIMEOUT
    assert invitation.attempt_deadline(1055) == 1060  # never past the invitation's own time
    assert invitation.reach_code() and invitation.claimed and not invitation.is_open
    assert not invitation.reach_code()  # the second came too late
    assert invitation.begin_attempt() == "no_invitation"
    assert invitation.attempt_failed(1001) == "the invitation was already taken or ended"
    invitation.expire()
    assert invitation.error is None  # a code is shown: only the pairing itself ends it now


def test_an_invitation_survives_a_few_failed_attempts_then_ends():
    invitation = Invitation(timeout=60, now=0)
    for n in range(MAX_FAILED_ATTEMPTS - 1):
        assert invitation.begin_attempt() is None
        assert invitation.attempt_failed(1.0) == "still waiting" and invitation.is_open
    invitation.begin_attempt()
    assert invitation.attempt_failed(2.0) == "the invitation ends"
    assert invitation.ended and invitation.error == (
        "the invitation ended after 5 failed attempts to join (`vaultpeer log` shows them); "
        "if they were not yours, someone on the network interfered")


def test_an_invitation_ends_when_its_time_is_up():
    invitation = Invitation(timeout=3, now=0)
    invitation.begin_attempt()
    assert invitation.attempt_failed(3.0) == "the invitation's time is up"
    assert invitation.error == "no device joined within 3 s; the invitation is withdrawn"
    unclaimed = Invitation(timeout=120, now=0)
    unclaimed.expire()
    assert unclaimed.error == "no device joined within 120 s; the invitation is withdrawn"
    unclaimed.succeed({"paired": True})
    assert unclaimed.result is None  # how it ended does not change


def test_joining_says_what_did_not_come_in_time():
    joining = Joining(timeout=3, now=10)
    assert joining.timed_out() == "no invitation to join was found within 3 s"
    joining.found = True
    assert joining.failure("timeout", "pairing timed out", 13.0) == (
        "timeout", "the inviting device did not answer within 3 s")
    assert joining.failure("connection_lost", "lost", 13.0) == ("timeout", "lost")  # past the deadline
    assert joining.failure("timeout", "pairing timed out", 12.0) == ("timeout", "pairing timed out")  # the handshake's
    joining.code = "123 456"
    assert joining.failure("connection_lost", "lost", 99.0) == ("connection_lost", "lost")
