"""Fixtures shared by the end-to-end tests."""

import pytest

from daemons import Daemon, cleanup, private_loopback, short_tmp


@pytest.fixture
def world():
    """``world(name, *daemon_args, **options)`` makes a device (a home under a short /tmp
    directory, and its daemon when started); ``world.root`` is that directory. Every daemon is
    stopped and the directory removed when the test ends."""
    root = short_tmp()
    daemons: list[Daemon] = []

    def make(name: str, *extra: str, **options) -> Daemon:
        daemon = Daemon(root / name, *extra, **options)
        daemons.append(daemon)
        return daemon

    make.root = root
    yield make
    cleanup(root, daemons)


@pytest.fixture
def private_netns():
    """The command prefix of ``private_loopback`` (tests/daemons.py), for ``world(..., netns=...)``.
    Ask for it before ``world``: the daemons then stop before the namespace goes."""
    with private_loopback() as netns:
        yield netns
