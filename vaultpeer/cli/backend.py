"""What the CLI's item commands talk to.

When a daemon runs for this home, its local API (it holds the unlocked vault, and pushes every
change to the other devices at once): ``DaemonBackend``, which has the methods and JSON shapes of
``vaultpeer.service.commands.VaultCommands``, the command layer the CLI uses on the home itself (unlocked
for the one command with the master password) and the daemon's handlers use on its vault.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vaultpeer.client import Client

if TYPE_CHECKING:  # loaded where used: an item command through the daemon needs none of them
    from vaultpeer.core.generate import GenerateOptions
    from vaultpeer.core.interchange import ImportEntry
    from vaultpeer.service.commands import VaultCommands


class DaemonBackend:
    via_daemon = True

    def __init__(self, client: Client):
        self.client = client

    def add(self, title: str, fields: dict, generate: list[str], options: GenerateOptions) -> dict:
        return self.client.call("item.add", title=title, fields=fields, generate=generate, **options.to_params())

    def get(self, item: str) -> dict:
        return self.client.call("item.get", item=item)

    def list_items(self, deleted: bool) -> list:
        return self.client.call("item.list", deleted=deleted)

    def search(self, text: str, deleted: bool = False) -> list:
        return self.client.call("item.search", text=text, **({"deleted": True} if deleted else {}))

    def search_url(self, url: str, deleted: bool = False) -> list:
        return self.client.call("item.search", url=url, **({"deleted": True} if deleted else {}))

    def otp(self, item: str) -> dict:
        return self.client.call("item.otp", item=item)

    def edit(self, item: str, fields: dict, remove: list[str], title: str | None, generate: list[str],
             options: GenerateOptions) -> dict:
        params = {"item": item, "fields": fields, "remove": remove, "generate": generate, **options.to_params()}
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

    def import_entries(self, entries: list[ImportEntry], progress: Callable[[int], None] | None = None,
                       file_format: str | None = None) -> dict:
        """``item.import`` in parts that fit a request line, committed by the daemon as one batch."""
        from vaultpeer.service.transfer import chunk_entries

        chunks, too_large = chunk_entries(entries)
        batch, sent = None, 0
        for chunk in chunks[:-1]:
            params = {"entries": chunk, "more": True, **({"batch": batch} if batch else {})}
            batch = self.client.call("item.import", **params)["batch"]
            sent += len(chunk)
            if progress is not None:
                progress(sent)
        report = self.client.call("item.import", entries=chunks[-1] if chunks else [],
                                  **({"batch": batch} if batch else {}),
                                  **({"format": file_format} if file_format else {}))
        report["skipped"] += too_large
        return report

    def export_items(self) -> list:
        return self.client.call("item.export")


class DaemonFilesBackend:
    """Sync through files via the running daemon (it reads bundle files itself, by absolute path)."""

    via_daemon = True

    def __init__(self, client: Client):
        self.client = client

    def admit(self, request: bytes) -> dict:
        return self.client.call("device.admit", request=base64.b64encode(request).decode())

    def export_bundle(self, target: str | None) -> tuple[bytes, dict]:
        result = self.client.call("bundle.export", **({"for": target} if target else {}))
        return base64.b64decode(result.pop("bundle")), result

    def inspect_bundle(self, path: Path) -> dict:
        return self.client.call("bundle.inspect", path=str(path.resolve()))

    def import_bundle(self, path: Path, exporter: str) -> dict:
        return self.client.call("bundle.import", path=str(path.resolve()), exporter=exporter)


class DirectFilesBackend:
    """Sync through files on the home itself. Importing needs no password; admitting and exporting
    sign with this device's key, so ``unlock`` is called first when it is sealed."""

    via_daemon = False

    def __init__(self, commands: VaultCommands, unlock: Callable[[], None] | None = None):
        self.commands = commands
        self._unlock = unlock

    def _signing(self) -> None:
        if not self.commands.vault.device.can_sign and self._unlock is not None:
            self._unlock()

    def admit(self, request: bytes) -> dict:
        self._signing()
        return self.commands.admit(request)

    def export_bundle(self, target: str | None) -> tuple[bytes, dict]:
        self._signing()
        return self.commands.export_bundle(target)

    def inspect_bundle(self, path: Path) -> dict:
        from vaultpeer.service.bundle_files import read_bundle_file

        return self.commands.inspect_bundle(read_bundle_file(path))

    def import_bundle(self, path: Path, exporter: str) -> dict:
        from vaultpeer.core.identity import DeviceId
        from vaultpeer.service.bundle_files import read_bundle_file

        return self.commands.import_bundle(read_bundle_file(path), DeviceId.parse(exporter))
