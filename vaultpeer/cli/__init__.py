"""The command line: click commands that parse arguments, call the command layer
(``vaultpeer.service.commands``) or the running daemon's API, and present the result.

``app`` holds the group (``cli``), the shared helpers and most commands; every other module here
registers its commands on that group when imported, and only this package imports them all, so no
module imports one that imports it back.
"""

from vaultpeer.cli import audit_log, backup_restore, import_export  # noqa: F401 - they register commands
from vaultpeer.cli.app import cli, main

__all__ = ["cli", "main"]
