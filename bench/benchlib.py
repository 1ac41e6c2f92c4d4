"""Shared by the bench/ scripts."""

import time


def timed(fn):
    """(seconds, result) of calling ``fn``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result
