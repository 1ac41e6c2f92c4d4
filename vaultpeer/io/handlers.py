"""The local API's methods: JSON-RPC params in, the documented JSON shapes out (docs/api.md).

Every write is followed by ``daemon.changed()``, which pushes it to connected members at once.
Passwords arrive in params and go straight into the KDF; they are never logged or echoed.
"""

from collections.abc import AsyncIterator
from functools import partial

import trio

from vaultpeer.api import ApiError
from vaultpeer.core.errors import InvalidInput, NotFound, WrongRecoveryKey
from vaultpeer.core.generate import DEFAULT_LENGTH, MAX_LENGTH, MIN_LENGTH, generate_password
from vaultpeer.generator import generate_json
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.device import load_profile
from vaultpeer.io.daemon import Daemon
from vaultpeer.vault import prepare_password
from vaultpeer.views import conflict_json, history_json, item_json, listing_json

INVALID_PARAMS = -32602


def _param(params: dict, name: str, kind: type | tuple, *, required: bool = True, default: object = None):
    if name not in params:
        if required:
            raise ApiError(INVALID_PARAMS, f"missing parameter: {name}")
        return default
    value = params[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(INVALID_PARAMS, f"parameter {name} has the wrong type")
    return value


def _text_map(params: dict, name: str) -> dict[str, str]:
    value = _param(params, name, dict, required=False, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(INVALID_PARAMS, f"parameter {name} maps field names to text values")
    return value


def _text_list(params: dict, name: str) -> list[str]:
    value = _param(params, name, list, required=False, default=[])
    if not all(isinstance(v, str) for v in value):
        raise ApiError(INVALID_PARAMS, f"parameter {name} is a list of field names")
    return value


class ApiHandlers:
    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.vault = daemon.vault

    async def dispatch(self, method: str, params: dict, connection: object) -> object:
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            raise ApiError(-32601, "method not found")
        self.daemon.touch()
        return await handler(params or {})

    # --- daemon and vault state ---

    async def m_status(self, params: dict) -> dict:
        daemon, vault = self.daemon, self.vault
        profile = load_profile(daemon.home)
        initialized = vault.initialized
        listen = f"{daemon.listen_address[0]}:{daemon.listen_address[1]}" if daemon.listen_address else None
        return {
            "device_id": str(daemon.device_id),
            "name": profile.name,
            "os": profile.os_description,
            "vault_id": vault.vault_id.hex() if initialized else None,
            "locked": vault.locked,
            "listen": listen,
            "socket": str(daemon.socket_path),
            "peers": sorted(str(d) for d in daemon.links),
            "conflicts": len(vault.conflicts()) if not vault.locked else vault.store.conflicted_item_count(),
            "items": vault.store.counts()["items"],
            "revisions": vault.store.counts()["revisions"],
            "home": str(daemon.home.path),
        }

    async def m_unlock(self, params: dict) -> dict:
        password = _param(params, "password", str)
        kek = await trio.to_thread.run_sync(self.vault.derive_kek, password)
        self.vault.unlock_with_kek(kek)
        self.daemon.publish({"type": "unlocked"})
        # merges wait for the vault key: do them now
        merged = self.vault.merge_pending()
        if merged:
            self.daemon.changed([str(v.id) for v in merged])
        return {"locked": False}

    async def m_passwd(self, params: dict) -> dict:
        """Change the master password, proven by the current one or by the recovery key."""
        new_password = _param(params, "new_password", str)
        header = self.vault.header
        if "recovery_key" in params:
            try:
                recovery_key = RecoveryKey.parse(_param(params, "recovery_key", str))
            except ValueError:
                raise WrongRecoveryKey("that is not a recovery key") from None
            keyring = header.open_with_recovery_key(recovery_key)
        else:
            kek = await trio.to_thread.run_sync(header.password_kek, _param(params, "password", str))
            keyring = header.open_with_kek(kek)
        kdf, new_kek = await trio.to_thread.run_sync(
            partial(prepare_password, header, new_password, allow_insecure_test_kdf=self.vault.allows_insecure_test_kdf))
        self.vault.set_password(kdf, new_kek, keyring=keyring)
        self.daemon.changed()  # the other members get the new header at once
        return {"changed": True}

    async def m_lock(self, params: dict) -> dict:
        self.vault.lock()
        self.daemon.publish({"type": "locked"})
        return {"locked": True}

    # --- items ---

    async def m_item_list(self, params: dict) -> list:
        deleted = _param(params, "deleted", bool, required=False, default=False)
        return [listing_json(v) for v in self.vault.list_items(deleted=deleted)]

    async def m_item_get(self, params: dict) -> dict:
        return item_json(self.vault.get(_param(params, "item", str)))

    async def m_item_add(self, params: dict) -> dict:
        fields = _text_map(params, "fields")
        length = _param(params, "length", int, required=False, default=DEFAULT_LENGTH)
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            raise InvalidInput(f"length must be {MIN_LENGTH}-{MAX_LENGTH}")
        for name in _text_list(params, "generate"):
            fields[name] = generate_password(length)
        view = self.vault.add(_param(params, "title", str), fields)
        self.daemon.changed([str(view.id)])
        return {"id": str(view.id), "title": view.title, "revision": str(view.revision)}

    async def m_item_edit(self, params: dict) -> dict:
        fields = _text_map(params, "fields")
        length = _param(params, "length", int, required=False, default=DEFAULT_LENGTH)
        for name in _text_list(params, "generate"):
            fields[name] = generate_password(length)
        view = self.vault.edit(_param(params, "item", str), fields, _text_list(params, "remove"),
                               _param(params, "title", str, required=False))
        self.daemon.changed([str(view.id)])
        return item_json(view)

    async def m_item_delete(self, params: dict) -> dict:
        view = self.vault.delete(_param(params, "item", str))
        self.daemon.changed([str(view.id)])
        return item_json(view)

    async def m_item_history(self, params: dict) -> list:
        return [history_json(e) for e in self.vault.history(_param(params, "item", str))]

    async def m_item_restore(self, params: dict) -> dict:
        view = self.vault.restore(_param(params, "item", str), _param(params, "revision", str, required=False))
        self.daemon.changed([str(view.id)])
        return item_json(view)

    async def m_conflict_list(self, params: dict) -> list:
        return [conflict_json(v) for v in self.vault.conflicts()]

    async def m_conflict_resolve(self, params: dict) -> dict:
        view = self.vault.resolve_conflict(
            _param(params, "item", str), take=_param(params, "take", str, required=False),
            set_fields=_text_map(params, "fields"), title=_param(params, "title", str, required=False),
        )
        self.daemon.changed([str(view.id)])
        return item_json(view)

    async def m_generate(self, params: dict) -> dict:
        return generate_json(_param(params, "length", int, required=False),
                             _param(params, "words", int, required=False),
                             _param(params, "separator", str, required=False))

    # --- peers, pairing, sync ---

    async def m_peer_list(self, params: dict) -> list:
        if not self.vault.initialized:
            return []
        roster = self.vault.roster
        peers = []
        for member in sorted(roster.members.values(), key=lambda m: m.name.casefold()):
            if member.device_id == self.daemon.device_id:
                continue
            state = self.daemon.peers.get(member.device_id)
            peers.append({
                "device_id": str(member.device_id),
                "name": member.name,
                "os": member.os_description,
                "connected": member.device_id in self.daemon.links,
                "last_seen": state.last_seen if state else None,
                "address": state.address if state else None,
                "added_by": str(member.added_by),
            })
        return peers

    async def m_peer_remove(self, params: dict) -> dict:
        text = _param(params, "device", str)
        device_id = self._device(text)
        await self.daemon.remove_peer(device_id)
        return {"revoked": str(device_id)}

    def _device(self, text: str) -> DeviceId:
        members = self.vault.roster.members if self.vault.initialized else {}
        try:
            return DeviceId.parse(text)
        except ValueError:
            matches = [d for d, m in members.items()
                       if str(d).replace("-", "").startswith(text.replace("-", "").upper()) or m.name == text]
            if len(matches) == 1:
                return matches[0]
            raise NotFound("no single member matches that device id or name") from None

    async def m_pair_invite(self, params: dict) -> dict:
        pairing = await self.daemon.invite()
        await pairing.code_ready.wait()
        if pairing.code is None:
            raise ApiError(1011, pairing.error or "pairing failed", {"name": "pairing"})
        return {"code": pairing.code}

    async def m_pair_join(self, params: dict) -> dict:
        address = _param(params, "address", str, required=False)
        host = port = None
        if address:
            host, _, port_text = address.rpartition(":")
            if not host or not port_text.isdigit():
                raise InvalidInput("address must be HOST:PORT")
            port = int(port_text)
        pairing = await self.daemon.join(host, port)
        await pairing.code_ready.wait()
        if pairing.code is None:
            raise ApiError(1011, pairing.error or "pairing failed", {"name": "pairing"})
        return {"code": pairing.code}

    async def m_pair_confirm(self, params: dict) -> dict:
        accept = _param(params, "accept", bool)
        pairing = self.daemon.pairing
        if pairing is None or pairing.code is None or pairing.answered.is_set():
            raise ApiError(1011, "no pairing is waiting for a confirmation", {"name": "pairing"})
        pairing.answer = accept
        pairing.answered.set()
        await pairing.done.wait()
        if pairing.result is None:
            raise ApiError(1011, pairing.error or "pairing failed", {"name": "pairing"})
        return pairing.result

    async def m_sync_now(self, params: dict) -> dict:
        self.daemon.sync_now()
        return {"peers": len(self.daemon.links)}

    async def m_events_subscribe(self, params: dict) -> AsyncIterator[dict]:
        return _events(self.daemon.subscribe())


async def _events(channel: trio.MemoryReceiveChannel) -> AsyncIterator[dict]:
    async with channel:
        async for event in channel:
            yield event
