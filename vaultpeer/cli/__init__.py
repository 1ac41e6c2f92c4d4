"""The command line: click commands that parse arguments, call the command layer
(``vaultpeer.service.commands``) or the running daemon's API, and present the result.

``app`` holds the group (``cli``), the shared helpers and most commands; every other module here
registers its commands on that group when the group first needs them (``app.CommandGroup.LAZY``
names them), so no module imports one that imports it back, and a command defined in ``app``
starts without loading what the others need.
"""

from vaultpeer.cli.app import cli, main

__all__ = ["cli", "main"]
