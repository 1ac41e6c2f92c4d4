"""Shared by the bench/ scripts."""

import time


def timed(fn):
    """(seconds, result) of calling ``fn``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def save_json(path, results: dict) -> None:
    """Write a script's figures as JSON (creating bench/results/) and say where."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {path}")
