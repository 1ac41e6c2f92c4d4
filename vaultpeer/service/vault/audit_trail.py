"""The vault's audit log (``vaultpeer.core.audit``; `vaultpeer log`): signed, chained entries of
fixed kinds, written locked or unlocked, with no vault at all; and the limiters that keep a flood of
rejections to one entry a minute per source."""

import time
from collections.abc import Callable
from contextvars import ContextVar

from vaultpeer.core.audit import EVENTS, AuditEntry, AuditKey, RejectionLimiter, StoredRow, address_detail, printable_name
from vaultpeer.core.identity import DeviceId
from vaultpeer.service.store import Store

#: Audit events that a flood could repeat: written through a RejectionLimiter (``AuditTrail._limited``).
FLOODABLE_EVENTS = ("peer.rejected", "unlock.failed", "password.change_failed", "app.used", "app.refused")

#: The app on whose token the current local API request was made (issue 18), set by the daemon's
#: dispatch for the request's task: an entry the request causes names it (``app`` detail) where the
#: event records one. A context variable: requests of several connections interleave.
acting_app: ContextVar[str | None] = ContextVar("acting_app", default=None)


class AuditTrail:
    def __init__(self, store: Store, key: AuditKey, signing_public: bytes, *, clock: Callable[[], float]):
        self._store = store
        #: Signs the log, locked or not.
        self._key = key
        #: This device's identity signing key, which signed the entries written before the audit key existed.
        self._signing_public = signing_public
        #: Monotonic seconds, for the per-minute counts (the daemon passes trio's clock).
        self._clock = clock
        #: Recorded as the ``via`` of unlocks, password changes and imports ("daemon" in the daemon).
        self.via = "cli"
        #: Events that a flood could repeat, each written at most once a minute per source, with a count.
        self._limiters = {event: RejectionLimiter() for event in FLOODABLE_EVENTS}
        # one source per app and method: more of them, with the rest counted under the app "*"
        self._limiters["app.used"] = RejectionLimiter(max_sources=64, overflow=lambda reason: {"app": "*"})

    @property
    def public_keys(self) -> tuple[bytes, bytes]:
        """The keys ``verify_chain`` accepts for this log: the identity signing key and the audit key."""
        return self._signing_public, self._key.public

    def record(self, event: str, **details: str | int) -> AuditEntry:
        """Append a signed entry to this device's audit log (works locked, and with no vault).

        Details are checked against the event's allowed keys and kinds (never a secret); a
        ``device_name`` or ``peer``, which may come from a peer, is first made acceptable."""
        if "device_name" in details:
            details["device_name"] = printable_name(str(details["device_name"]))
        if "peer" in details:
            details["peer"] = address_detail(str(details["peer"]))
        app = acting_app.get()
        if app is not None and "app" not in details and "app" in EVENTS.get(event, ()):
            details["app"] = app
        now = int(time.time())
        return self._store.append_audit(lambda seq, previous: AuditEntry.create(
            self._key, seq=seq, time=now, previous=previous, event=event, details=details))

    def rejection(self, reason: str, *, peer: str | None = None, device_id: DeviceId | None = None) -> None:
        """Record input refused from the network, at most one entry per source and minute (with a
        count), so that a flood cannot fill the disk (``RejectionLimiter``)."""
        details: dict[str, str] = {"reason": reason}
        if peer is not None:
            details["peer"] = peer
        if device_id is not None:
            details["device_id"] = str(device_id)
        source = peer or (str(device_id) if device_id is not None else "unknown")
        self._limited("peer.rejected", source, details)

    def refused_attempt(self, event: str, method: str) -> None:
        """A master-password attempt (``unlock.failed`` or ``password.change_failed``) refused
        unheard because the backoff says wait: recorded as ``rate_limited``, counted per minute."""
        self._limited(event, "local", {"via": self.via, "method": method, "reason": "rate_limited"})

    def app_used(self, app: str, request: str) -> None:
        """A request made with an app's token: one entry per app, method and minute, with a count."""
        self._limited("app.used", f"{app}/{request}", {"app": app, "request": request})

    def app_refused(self) -> None:
        """A token that is not one was presented: one entry a minute, with a count."""
        self._limited("app.refused", "local", {})

    def _limited(self, event: str, source: str, details: dict[str, str]) -> None:
        for summary, count in self._limiters[event].note(source, details, self._clock()):
            self.record(event, **summary, count=count)

    def flush(self, *, everything: bool = False) -> None:
        """Write the counts of rejections whose minute has passed (all of them, on close)."""
        now = self._clock()
        for event, limiter in self._limiters.items():
            for summary, count in limiter.due(now, everything=everything):
                self.record(event, **summary, count=count)

    def rows(self, newest: int | None = None) -> list[StoredRow]:
        """The log as stored, oldest first (the ``newest`` entries only, if given)."""
        return self._store.audit_rows(newest=newest)
