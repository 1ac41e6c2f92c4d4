"""Trio shells around the pure core: transport streams, discovery, the local API server, the daemon.

Everything that waits on the network or a clock lives here, and every wait is bounded.
"""
