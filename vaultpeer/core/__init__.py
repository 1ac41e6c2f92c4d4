"""The pure core of vaultpeer.

Nothing in this package performs I/O: no files, sockets, SQLite, threads or event loops. It takes
bytes, values, randomness and clocks from its caller and returns values and decisions, so it can be
tested exhaustively and deterministically. ``tests/core/test_purity.py`` enforces the rule.
"""
