"""What the CLI's item commands talk to.

When a daemon runs for this home, its local API (it holds the unlocked vault, and pushes every
change to the other devices at once). Otherwise the home itself, unlocked for the one command with
the master password. Both return the same documented JSON shapes (``vaultpeer.views``).
"""

from vaultpeer.client import Client
from vaultpeer.core.generate import generate_password
from vaultpeer.vault import Vault
from vaultpeer.views import conflict_json, history_json, item_json, listing_json


class DaemonBackend:
    via_daemon = True

    def __init__(self, client: Client):
        self.client = client

    def add(self, title: str, fields: dict, generate: list[str], length: int) -> dict:
        return self.client.call("item.add", title=title, fields=fields, generate=generate, length=length)

    def get(self, item: str) -> dict:
        return self.client.call("item.get", item=item)

    def list_items(self, deleted: bool) -> list:
        return self.client.call("item.list", deleted=deleted)

    def edit(self, item: str, fields: dict, remove: list[str], title: str | None, generate: list[str],
             length: int) -> dict:
        params = {"item": item, "fields": fields, "remove": remove, "generate": generate, "length": length}
        if title is not None:
            params["title"] = title
        return self.client.call("item.edit", **params)

    def delete(self, item: str) -> dict:
        return self.client.call("item.delete", item=item)

    def history(self, item: str) -> list:
        return self.client.call("item.history", item=item)

    def restore(self, item: str, revision: str | None) -> dict:
        params = {"item": item} if revision is None else {"item": item, "revision": revision}
        return self.client.call("item.restore", **params)

    def conflicts(self) -> list:
        return self.client.call("conflict.list")

    def resolve(self, item: str, take: str | None, fields: dict, title: str | None) -> dict:
        params: dict = {"item": item, "fields": fields}
        if take is not None:
            params["take"] = take
        if title is not None:
            params["title"] = title
        return self.client.call("conflict.resolve", **params)


class DirectBackend:
    via_daemon = False

    def __init__(self, vault: Vault):
        self.vault = vault

    def add(self, title: str, fields: dict, generate: list[str], length: int) -> dict:
        view = self.vault.add(title, {**fields, **{name: generate_password(length) for name in generate}})
        return {"id": str(view.id), "title": view.title, "revision": str(view.revision)}

    def get(self, item: str) -> dict:
        return item_json(self.vault.get(item))

    def list_items(self, deleted: bool) -> list:
        return [listing_json(v) for v in self.vault.list_items(deleted=deleted)]

    def edit(self, item: str, fields: dict, remove: list[str], title: str | None, generate: list[str],
             length: int) -> dict:
        fields = {**fields, **{name: generate_password(length) for name in generate}}
        return item_json(self.vault.edit(item, fields, remove, title))

    def delete(self, item: str) -> dict:
        return item_json(self.vault.delete(item))

    def history(self, item: str) -> list:
        return [history_json(e) for e in self.vault.history(item)]

    def restore(self, item: str, revision: str | None) -> dict:
        return item_json(self.vault.restore(item, revision))

    def conflicts(self) -> list:
        return [conflict_json(v) for v in self.vault.conflicts()]

    def resolve(self, item: str, take: str | None, fields: dict, title: str | None) -> dict:
        return item_json(self.vault.resolve_conflict(item, take=take, set_fields=fields, title=title))
