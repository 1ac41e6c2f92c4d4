"""Well-known numbers of the wire, in a module that imports nothing, so that the command line can
show them in its help without loading the transport (and the crypto stack behind it)."""

#: The TCP port a daemon listens on unless told otherwise (`vaultpeer daemon --listen`).
DEFAULT_PORT = 22047
