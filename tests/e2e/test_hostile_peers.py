"""Hostile peers against a real daemon: a member that sends garbage after the handshake, frames
and messages over the limits, repeated pairing attempts. The daemon stays up, keeps serving its
paired peers and its local API, its memory stays bounded, and an address that keeps failing is
refused for a while and logged once, without secrets."""

import os
import socket
import time

import trio

from daemons import Interactive, enroll, pair, paired_pair, ready_to_pair, wait_until
from helpers import PASSWORD, cli_env, error_lines, run_cli
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.pairing import Commit, Confirm, Nonce, Reveal, commitment, decode_message, encode_message
from vaultpeer.core.roster import RosterEntry, vouch
from vaultpeer.core.text import is_refused_char
from vaultpeer.core.transport import MAX_CHUNK, MAX_MESSAGE, TransportError, frame
from vaultpeer.service.device import load_or_create_keys
from vaultpeer.service.home import Home
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.service.vault import Vault

CANARY = "canary-hostile-7b1e"


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def has_item(daemon, title: str) -> bool:
    return daemon.has_item(title)


def with_a_hostile_member(world):
    """A laptop and a desktop, running and unlocked, and a phone enrolled beside them whose daemon
    never runs: its keys serve a hostile program. Returns (laptop, desktop, the phone's keys)."""
    laptop, desktop, phone = world("laptop"), world("desktop"), world("phone")
    laptop.init()
    enroll(laptop, desktop)
    enroll(laptop, phone)
    for daemon in (laptop, desktop):
        daemon.launch()
    for daemon in (laptop, desktop):
        daemon.wait_ready()
        daemon.unlock()
    return laptop, desktop, load_or_create_keys(Home(phone.home))


async def _attempt(address: tuple[str, int], keys, attack: str, responder_static: bytes) -> str:
    """One connection by a hostile peer (to the member whose Noise key is ``responder_static``);
    returns how it ended for the attacker."""
    with trio.fail_after(20):
        tcp = await trio.open_tcp_stream(*address)
        try:
            try:
                if attack == "pair":
                    stream = await NoiseStream.dial(tcp, keys, purpose="pair")
                else:
                    stream = await NoiseStream.dial(tcp, keys, purpose="sync", responder_static=responder_static,
                                                    stamp=time.time_ns())
            except (TransportError, ConnectionClosed):
                return "refused before the handshake ended"
            if attack == "garbage":  # well encrypted, but not a sync message
                await stream.send(os.urandom(300))
            elif attack == "raw":  # bytes that do not decrypt
                await tcp.send_all(frame(os.urandom(200)))
            elif attack == "oversized":  # one message bigger than the limit, chunk by chunk
                noise = stream._channel._noise
                for _ in range(MAX_MESSAGE // MAX_CHUNK + 2):
                    await tcp.send_all(frame(bytes(noise.encrypt(b"\x01" + bytes(MAX_CHUNK)))))
            try:
                while True:
                    await stream.receive()
            except (TransportError, ConnectionClosed, trio.BrokenResourceError):
                return "cut off"
        except (trio.BrokenResourceError, OSError):
            return "cut off"
        finally:
            await tcp.aclose()


def attack(daemon, keys, kind: str, times: int) -> list[str]:
    host, port = daemon.address.rsplit(":", 1)
    target = load_or_create_keys(Home(daemon.home)).public.noise_public  # a member knows it from the roster

    async def main():
        return [await _attempt((host, int(port)), keys, kind, target) for _ in range(times)]

    return trio.run(main)


def test_a_member_sending_garbage_is_cut_off_then_refused_and_the_others_are_still_served(world):
    laptop, desktop, hostile = with_a_hostile_member(world)
    laptop.add("Mail", password=CANARY)
    assert wait_until(lambda: has_item(desktop, "Mail"), 10)
    before = rss_mib(laptop.process.pid)

    outcomes = attack(laptop, hostile, "garbage", 12) + attack(laptop, hostile, "raw", 12)
    assert outcomes[:5] == ["cut off"] * 5
    assert outcomes[-1] == "refused before the handshake ended"  # 20 failures: the address is refused

    assert laptop.process.poll() is None and laptop.status()["peers"] == [desktop.status()["device_id"]]
    desktop.add("Still served", password="x")  # over the link that was already up
    assert wait_until(lambda: has_item(laptop, "Still served"), 10)
    assert rss_mib(laptop.process.pid) - before < 30
    log = laptop.log.read_text()
    assert log.count("refusing connections from 127.0.0.1") == 1
    assert "broke the protocol" in log or "failed to decrypt" in log
    for secret in (CANARY, PASSWORD):
        assert secret not in log and secret not in desktop.log.read_text()


def test_oversized_messages_and_repeated_pairing_attempts_are_refused_with_memory_bounded(world):
    laptop, desktop, hostile = with_a_hostile_member(world)
    stranger = load_or_create_keys(Home(world.root / "stranger"))
    before = rss_mib(laptop.process.pid)

    assert attack(laptop, hostile, "oversized", 3) == ["cut off"] * 3
    outcomes = attack(laptop, stranger, "pair", 25)  # no invitation is open
    assert "refused before the handshake ended" in outcomes
    # a flood of plain connections on top: closed at once while the address is refused
    host, port = laptop.address.rsplit(":", 1)
    for _ in range(200):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(os.urandom(64))

    assert laptop.process.poll() is None and laptop.status()["listen"] == f"{host}:{port}"
    assert rss_mib(laptop.process.pid) - before < 30
    desktop.add("Still served", password="x")
    assert wait_until(lambda: has_item(laptop, "Still served"), 10)
    assert laptop.log.read_text().count("refusing connections from 127.0.0.1") == 1


# --- strangers against an open invitation -----------------------------------------------------------


async def _try_to_join(address: tuple[str, int], keys, attack: str) -> str:
    """One stranger's attempt to join an invitation that breaks the exchange before any code is
    shown; "no invitation" if none was open yet (the handshake was not even answered)."""
    with trio.fail_after(20):
        tcp = await trio.open_tcp_stream(*address)
        try:
            try:
                stream = await NoiseStream.dial(tcp, keys, purpose="pair")
            except (ConnectionClosed, TransportError):
                return "no invitation"  # an XX first message is answered only while one is open
            nonce = os.urandom(32)
            if attack == "wrong_message":  # a confirmation where the commitment belongs
                await stream.send(encode_message(Confirm(True)))
            else:
                await stream.send(encode_message(Commit(commitment(nonce))))
                try:
                    reply = decode_message(await stream.receive())
                except (ConnectionClosed, TransportError):
                    return "no invitation"
                assert isinstance(reply, Nonce)
                if attack == "dropped":
                    return "dropped"
                await stream.send(encode_message(Reveal(os.urandom(32))))  # not what it committed to
            try:
                await stream.receive()
            except (ConnectionClosed, TransportError, trio.BrokenResourceError):
                return "cut off"
            raise AssertionError("the inviter answered a broken attempt")
        finally:
            await tcp.aclose()


def strangers_try_to_join(daemon, keys, attacks: list[str]) -> list[str]:
    host, port = daemon.address.rsplit(":", 1)

    async def main():
        outcomes = []
        for attack in attacks:
            for _ in range(50):  # until the invitation is open
                outcome = await _try_to_join((host, int(port)), keys, attack)
                if outcome != "no invitation":
                    break
                await trio.sleep(0.1)
            outcomes.append(outcome)
        return outcomes

    return trio.run(main)


def test_a_strangers_failed_attempts_leave_the_invitation_open_for_the_real_device(world):
    laptop, desktop = ready_to_pair(world)
    stranger = load_or_create_keys(Home(world.root / "stranger"))

    def strangers_first():
        outcomes = strangers_try_to_join(laptop, stranger, ["bad_reveal", "dropped", "bad_reveal"])
        assert outcomes == ["cut off", "dropped", "cut off"]

    invite_status, join_status, code_a, code_b = pair(laptop, desktop, before_join=strangers_first)
    assert (invite_status, join_status) == (0, 0) and code_a == code_b
    failed = [e["details"] for e in laptop.json("log") if e["event"] == "pairing.failed"]
    assert [(d["role"], d["reason"]) for d in failed] == [("inviter", "failed"), ("inviter", "connection_lost"),
                                                          ("inviter", "failed")]
    paired = [e["details"] for e in laptop.json("log") if e["event"] == "pairing.paired"]
    assert paired[0]["device_id"] == desktop.status()["device_id"]
    assert laptop.log.read_text().count("failed before any code was shown") == 3


def test_five_failed_attempts_end_the_invitation_in_one_line_and_the_next_opens_at_once(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start()
    laptop.unlock()  # inviting signs the joiner's roster entry
    stranger = load_or_create_keys(Home(world.root / "stranger"))
    invite = Interactive(laptop.home, "pair", "--timeout", "60")
    outcomes = strangers_try_to_join(laptop, stranger, ["bad_reveal", "wrong_message", "dropped", "bad_reveal",
                                                        "bad_reveal"])
    assert outcomes == ["cut off", "cut off", "dropped", "cut off", "cut off"]
    assert invite.finish(20) == 11
    assert error_lines(invite.stderr()) == [
        "error: the invitation ended after 5 failed attempts to join (`vaultpeer log` shows them); "
        "if they were not yours, someone on the network interfered"]
    start = time.monotonic()
    again = laptop.cli("pair", "--timeout", "1", timeout=20)  # not "a pairing is already in progress"
    assert (again.returncode, error_lines(again.stderr)) == (
        11, ["error: no device joined within 1 s; the invitation is withdrawn"])
    assert time.monotonic() - start < 8


# --- names a hostile member chose ------------------------------------------------------------------

EVIL = "evil\x1b[2J\rPaired with realdev\n\x07\u202e"


def test_names_with_control_characters_never_reach_the_terminal_raw_and_sync_goes_on(world):
    laptop, desktop = paired_pair(world)
    desktop.stop()  # its signing key is sealed: unlock a copy of the vault in-process to use it
    with Vault.open(Home(desktop.home), allow_insecure_test_kdf=True) as desktop_vault:
        desktop_vault.unlock(PASSWORD)
        desktop_keys = desktop_vault.device
    desktop.start()
    desktop.unlock()
    laptop.stop()
    # what a device could have stored before names were checked: signed by members, with escapes
    vault = Vault.open(Home(laptop.home), allow_insecure_test_kdf=True)
    vault.unlock(PASSWORD)
    try:
        def crafted(member, name, os_description="Linux"):  # built directly: RosterEntry does not check text
            return RosterEntry(member, name, os_description, False, 0, 9, desktop_keys.device_id).signed_by(
                vault.vault_id, desktop_keys)

        ghost = DeviceKeys.generate().public
        odd = DeviceKeys.generate().public  # plain text, but with characters a terminal shows as blanks
        vault._store.put_roster_entries([crafted(desktop_keys.public, EVIL), crafted(ghost, EVIL, "os\x1b[31m"),
                                        vouch(vault.vault_id, vault.device, odd, "odd\u3000name\xa0", "Linux")])
        vault.audit("device.admitted", device_id=str(odd.device_id), device_name=EVIL)
    finally:
        vault.close()
    laptop.start()
    laptop.unlock()

    outputs = {}
    for command in (["peers"], ["peers", "--json"], ["status"], ["status", "--json"], ["log"], ["log", "--json"]):
        result = run_cli(laptop.home, *command, env=cli_env(COLUMNS="200"))  # wide enough for whole names
        assert result.returncode == 0, (command, result.stderr)
        outputs[" ".join(command)] = result.stdout + result.stderr
        raw = {c for c in result.stdout + result.stderr if c != "\n" and (is_refused_char(c) or not c.isprintable())}
        assert not raw, (command, raw)
    peers = {p["device_id"]: p for p in laptop.json("peers")}
    desktop_id = desktop.status()["device_id"]
    assert peers[desktop_id]["name"] != EVIL and str(ghost.device_id) not in peers  # those entries never count
    assert peers[str(odd.device_id)]["name"] == "odd\u3000name\xa0"  # JSON escapes give back the name
    assert "odd\\u3000name\\xa0" in outputs["peers"]  # the table shows the escapes
    assert "evil\\x1b[2J\\rPaired with realdev\\n\\x07\\u202e" in outputs["log"]
    desktop.add("After the crafted names", password="x")  # the two still sync
    assert wait_until(lambda: has_item(laptop, "After the crafted names"), 15)
