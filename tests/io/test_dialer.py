"""The dialer without a network: which members it tries at an address, and how it waits between
tries (on trio's clock, jumped by ``autojump_clock``: no test sleeps for a backoff)."""

from types import SimpleNamespace

import trio

from vaultpeer.core.discovery import PeerSeen
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.roster import Member
from vaultpeer.io.dialer import BACKOFF_MAX, BACKOFF_START, Dialer, dial_candidates
from vaultpeer.io.transports import Address

ME, LAPTOP, DESKTOP, PHONE = (DeviceKeys.generate().public for _ in range(4))
MEMBERS = {keys.device_id: Member(keys, name, "test", ME.device_id)
           for keys, name in ((ME, "me"), (LAPTOP, "laptop"), (DESKTOP, "desktop"), (PHONE, "phone"))}
OTHERS = [m for m in MEMBERS.values() if m.device_id != ME.device_id]
HERE = Address("test", "somewhere", "somewhere")


def seen(noise_public: bytes | None = None, key: str = "k") -> PeerSeen:
    return PeerSeen(key, HERE, False, "mdns" if noise_public else "static", noise_public)


def names(members) -> list[str]:
    return [m.name for m in members]


def test_a_name_that_says_whose_it_is_is_dialled_as_that_member_only_even_if_connected():
    choice = dial_candidates(OTHERS, seen(DESKTOP.noise_public), connected={DESKTOP.device_id}, last_here=None)
    assert names(choice) == ["desktop"]
    assert dial_candidates(OTHERS, seen(b"\x07" * 32), connected=set(), last_here=None) == []  # no longer a member


def test_a_static_address_tries_every_member_not_connected_the_one_found_there_last_first():
    assert names(dial_candidates(OTHERS, seen(), connected=set(), last_here=None)) == ["laptop", "desktop", "phone"]
    assert names(dial_candidates(OTHERS, seen(), connected={LAPTOP.device_id}, last_here=PHONE.device_id)) == \
        ["phone", "desktop"]


def test_the_dialer_leaves_this_device_out_and_remembers_who_answered_where():
    vault = SimpleNamespace(initialized=True, removal=None, device=SimpleNamespace(device_id=ME.device_id),
                            roster=SimpleNamespace(members=MEMBERS))
    dialer = Dialer(vault, seen={}, links={}, dial=None, run_link=None)
    dialer.device_at["k"] = DESKTOP.device_id
    assert names(dialer.candidates(seen(key="k"))) == ["desktop", "laptop", "phone"]
    assert names(dialer.candidates(seen(key="elsewhere"))) == ["laptop", "desktop", "phone"]


async def test_an_address_where_nothing_answers_is_tried_with_doubling_waits_until_asked_to_redial(autojump_clock):
    vault = SimpleNamespace(initialized=True, removal=None, device=SimpleNamespace(device_id=ME.device_id),
                            roster=SimpleNamespace(members=MEMBERS))
    tries: list[float] = []

    async def dial(address: Address):
        assert address is HERE  # handed over as it came, whatever it means
        tries.append(trio.current_time())
        raise OSError("nothing answers")

    where = {"k": seen()}
    dialer = Dialer(vault, seen=where, links={}, dial=dial, run_link=None, jitter=lambda low, high: 1.0)
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            await nursery.start(dialer.run)
            start = trio.current_time()
            dialer.follow("k")
            dialer.follow("k")  # one loop per address
            await trio.sleep(BACKOFF_START * (2 ** 8))
            waits = [round(b - a, 6) for a, b in zip(tries, tries[1:])]
            assert tries[0] == start
            assert waits[:7] == [0.5, 1, 2, 4, 8, 16, 30] and set(waits[7:]) == {BACKOFF_MAX}
            count = len(tries)
            dialer.redial()  # the members changed: at once, and from the shortest wait again
            await trio.sleep(0.01)
            assert len(tries) == count + 1
            await trio.sleep(BACKOFF_START + 0.01)
            assert len(tries) == count + 2
            del where["k"]  # gone from discovery: its loop ends after the wait it is in
            await trio.sleep(BACKOFF_MAX * 2)
            assert len(tries) == count + 2
            nursery.cancel_scope.cancel()
