"""Canary checks shared by the tests that look for plaintext where none may be: the forms a
leaked value could take, and a loopback packet capture (dumpcap/tshark) of chosen ports."""

import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from daemons import wait_until


def forms(value: str) -> set[str]:
    """The texts a leak of ``value`` could take: as is, without dashes (the recovery key is
    accepted that way), lower case, and the random part alone."""
    found = {value, value.replace("-", ""), value.lower()}
    if value.startswith("canary-"):
        found.add(value.rsplit("-", 1)[1])
    return {text for text in found if len(text) >= 12}


def byte_forms(value: str) -> set[bytes]:
    found: set[bytes] = set()
    for text in forms(value):
        found |= {text.encode(), text.encode("utf-16-le"), text.encode().hex().encode(),
                  text.encode().hex().upper().encode()}
    return found


def leaks_in(data: bytes, canaries: dict[str, str], allowed: frozenset[str] = frozenset()) -> list[str]:
    return sorted(name for name, value in canaries.items()
                  if name not in allowed and any(form in data for form in byte_forms(value)))


class Capture:
    """dumpcap on the loopback interface, limited to the daemons' ports and mDNS."""

    def __init__(self, process: subprocess.Popen, pcap: Path, errors: Path):
        self.process, self.pcap, self.errors = process, pcap, errors
        self.packets: int | None = None
        self.probe = f"probe-{secrets.token_hex(8)}"

    @classmethod
    def start(cls, directory: Path, ports: tuple[int, ...]) -> "Capture | str":
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None or shutil.which("tshark") is None:
            return "tshark/dumpcap is not installed (.ci/run installs the tshark package where apt works)"
        directory.mkdir(parents=True, exist_ok=True)
        pcap, errors = directory / "loopback.pcapng", directory / "dumpcap.err"
        capture_filter = " or ".join(f"port {port}" for port in ports) + " or udp port 5353"
        with open(errors, "wb") as err:
            process = subprocess.Popen([dumpcap, "-q", "-i", "lo", "-f", capture_filter, "-w", str(pcap)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        capturing = wait_until(lambda: process.poll() is not None or b"File:" in errors.read_bytes(), 15)
        if process.poll() is not None or not capturing:
            if process.poll() is None:
                process.kill()
                process.wait(5)
            return f"dumpcap cannot capture on lo here (not root, no capabilities?): {errors.read_text()[-300:]}"
        time.sleep(0.3)
        return cls(process, pcap, errors)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for line in self.errors.read_text().splitlines():
            if line.startswith("Packets captured:"):
                self.packets = int(line.split(":")[1])

    def read(self, display_filter: str, *fields: str) -> list[list[str]]:
        """One row of the named fields for each packet matching the display filter."""
        args = ["tshark", "-r", str(self.pcap), "-Y", display_filter, "-T", "fields"]
        for name in fields:
            args += ["-e", name]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [line.split("\t") for line in result.stdout.splitlines()]


def send_probe(port: int, text: str) -> None:
    """A plaintext UDP datagram to a captured port: the capture must hold it (a positive control)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(text.encode(), ("127.0.0.1", port))
