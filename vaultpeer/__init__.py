"""vaultpeer: a password vault kept in sync between your own machines, with no cloud."""

__version__ = "0.1.0"
