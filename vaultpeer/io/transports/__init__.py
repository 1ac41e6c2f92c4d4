"""Transports: how bytes reach another device. The daemon sees only this interface.

A transport listens (``serve``: each incoming connection handed to the daemon as a trio stream
with the address it came from) and dials (``dial(address)`` -> a trio stream). Noise runs on top
of whatever it returns, as ``trio.SSLStream`` runs over any stream. An ``Address`` is opaque to the
daemon: it stores, compares, logs and shows it, and hands it back to the transport named in it,
which alone knows what its text means. TCP (``tcp.py``) is the first transport; a new one (a
Bluetooth RFCOMM channel, say) is one more module here, and discovery that finds such addresses.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from vaultpeer.core.errors import VaultpeerError


@dataclass(frozen=True)
class Address:
    """Where a device may be reached, or where a connection came from.

    ``transport``: the name of the transport that dials it. ``text``: what a person reads in
    ``status``, ``peers``, the log and the audit log (``host:port`` for TCP). ``remote``: who is
    at the other end, the unit in which failures are counted and refused (``core.offenders``) and
    rejections audited: the host for TCP, whose ports change with every connection."""

    transport: str
    text: str
    remote: str

    def __str__(self) -> str:
        return self.text


class CannotListen(VaultpeerError):
    """A transport cannot listen where it was told to (a port in use, an address not on this
    machine): the daemon stops, and the person reads this one line."""


#: What a transport calls for each incoming connection. It must not raise (one connection's
#: trouble must never stop the listener).
Handler = Callable[[trio.abc.Stream, Address], Awaitable[None]]


class Transport(Protocol):
    #: The ``Address.transport`` of the addresses it makes and dials.
    name: str

    async def serve(self, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen, report the address others reach this device at through ``task_status.started``
        (None, returning at once, when this transport is not to listen), then hand every incoming
        connection to ``handler`` in a task of its own, until cancelled. ``CannotListen`` when
        it cannot listen there."""
        ...

    async def dial(self, address: Address) -> trio.abc.Stream:
        """A connection to ``address``; OSError when nothing answers there. The caller bounds
        the wait."""
        ...
