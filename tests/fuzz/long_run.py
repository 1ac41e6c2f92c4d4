"""The long fuzzing run (issue 8): every target of targets.py for a time budget, with figures.

    .venv/bin/python tests/fuzz/long_run.py [--minutes N] [--target NAME ...] [--engine hypothesis|atheris]

``hypothesis`` (the default) runs the same strategies as the normal suite (seeds, byte and
CBOR-tree mutations, random bytes) in batches until the target's share of the time is spent,
shrinking every failure to a small input. ``atheris`` (``pip install -e '.[fuzz]'``) runs
coverage-guided libFuzzer, one child process per target, started from the same seeds.

Prints a table (target, inputs tried, accepted, refused, failures) and writes it to
bench/results/fuzz.json. Inputs are counted by the target wrapper itself (``targets.COUNTS``),
every execution, shrinking included. Exits 1 if any target failed; each failure is printed with
its (shrunk) input in hex, ready to become a test in tests/fuzz/test_regressions.py.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests"), str(ROOT / "bench")]

RESULTS = ROOT / "bench" / "results" / "fuzz.json"
MAX_FAILURES_PER_TARGET = 5


def _signature(exc: BaseException) -> str:
    """What makes two failures the same bug: the exception type and where in vaultpeer it arose."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/vaultpeer/" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = str(exc) if type(exc).__name__ == "PropertyViolation" else ""
    return f"{type(exc).__name__} {where} {text}".strip()


def run_hypothesis(target, seconds: float, batch: int) -> list[dict]:
    from hypothesis import HealthCheck, Phase, given, settings

    from mutations import inputs
    from targets import run_checked

    strategy = inputs(target.seeds(), target.cbor_offset, max_size=max(target.max_size, 4096), json_seeds=target.json)
    failures: dict[str, dict] = {}
    last: list = [None]

    @settings(max_examples=batch, deadline=None, database=None, derandomize=False, report_multiple_bugs=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(data: bytes) -> None:
        try:
            run_checked(target, data)
        except BaseException as exc:
            last[0] = (data, exc)
            raise

    end = time.monotonic() + seconds
    while time.monotonic() < end and len(failures) < MAX_FAILURES_PER_TARGET:
        last[0] = None
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
            data, cause = last[0] if last[0] is not None else (b"", exc)
            key = _signature(cause)
            if key not in failures:
                failures[key] = {"signature": key, "error": f"{type(cause).__name__}: {cause}"[:300],
                                 "input_hex": data[:4096].hex(), "input_length": len(data)}
                print(f"  FAILURE in {target.name}: {failures[key]['error']}\n    input: {data[:256]!r}",
                      flush=True)
    return list(failures.values())


# --- atheris: one child process per target ------------------------------------------------------


def run_atheris_child(name: str, seconds: float, counts_path: Path, corpus: Path, artifacts: Path) -> None:
    """In the child: instrument vaultpeer, then let libFuzzer drive the target."""
    import atheris

    with atheris.instrument_imports(include=["vaultpeer"]):
        import targets
    target = targets.BY_NAME[name]
    target.seeds()
    last_write = [time.monotonic()]

    def write_counts() -> None:
        counts_path.write_text(json.dumps(dict(targets.COUNTS.get(name, {}))))

    def one_input(data: bytes) -> None:
        try:
            targets.run_checked(target, data)
        finally:
            if time.monotonic() - last_write[0] > 1:
                write_counts()
                last_write[0] = time.monotonic()

    import atexit

    atexit.register(write_counts)
    atheris.Setup([sys.argv[0], f"-max_total_time={max(1, int(seconds))}", "-rss_limit_mb=3072", "-timeout=20",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)], one_input)
    atheris.Fuzz()


def run_atheris(target, seconds: float) -> tuple[dict, list[dict]]:
    """libFuzzer stops at the first failure; the target is then restarted for the time left (a
    known failure would stop it again at once, so fix it, or leave that target out)."""
    failures: dict[str, dict] = {}
    totals: dict[str, int] = {}
    end = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="vp-fuzz-") as directory:
        corpus, artifacts = Path(directory, "corpus"), Path(directory, "artifacts")
        corpus.mkdir()
        artifacts.mkdir()
        for n, seed in enumerate(target.seeds()):
            corpus.joinpath(f"seed-{n}").write_bytes(seed)
        while (left := end - time.monotonic()) >= 1 and len(failures) < MAX_FAILURES_PER_TARGET:
            counts_path = Path(directory, "counts.json")
            counts_path.unlink(missing_ok=True)
            child = subprocess.run(
                [sys.executable, __file__, "--atheris-child", target.name, "--seconds", str(left),
                 "--counts", str(counts_path), "--corpus", str(corpus), "--artifacts", str(artifacts)],
                capture_output=True, text=True, timeout=left + 120)
            counts = json.loads(counts_path.read_text()) if counts_path.exists() else {}
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            crashes = sorted(artifacts.iterdir())
            if child.returncode == 0 and not crashes:
                continue
            error = _uncaught(child.stderr)
            data = crashes[0].read_bytes() if crashes else b""
            if error not in failures:
                failures[error] = {"signature": error.splitlines()[0] if error else "exit", "error": error[-1500:],
                                   "input_hex": data[:4096].hex(), "input_length": len(data)}
                print(f"  FAILURE in {target.name}:\n{error[-800:]}\n    input: {data[:256]!r}", flush=True)
            for crash in crashes:
                crash.unlink()
            if not crashes:
                break  # an exit without a reproducer (out of memory, a timeout in libFuzzer itself)
    return totals, list(failures.values())


def _uncaught(stderr: str) -> str:
    """The Python exception and traceback atheris printed, without the libFuzzer noise."""
    marker = "=== Uncaught Python exception: ==="
    if marker not in stderr:
        return stderr[-1500:]
    lines = stderr.split(marker, 1)[1].strip().splitlines()
    return "\n".join(line for line in lines[:40] if not line.startswith(("==", "MS:", "artifact_prefix", "Base64")))


# --- main ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total time budget, shared by the targets")
    parser.add_argument("--target", action="append", help="run only this target (repeatable); see --list")
    parser.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    parser.add_argument("--batch", type=int, default=300, help="hypothesis examples per batch")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/fuzz.json")
    parser.add_argument("--atheris-child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--counts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.atheris_child:
        run_atheris_child(args.atheris_child, args.seconds, args.counts, args.corpus, args.artifacts)
        return 0

    from targets import BY_NAME, COUNTS, TARGETS, world

    if args.list:
        print("\n".join(t.name for t in TARGETS))
        return 0
    chosen = [BY_NAME[name] for name in args.target] if args.target else TARGETS
    share = args.minutes * 60 / len(chosen)
    world()
    rows = {}
    started = time.monotonic()
    for target in chosen:
        print(f"{target.name}: {share:.0f} s", flush=True)
        t0 = time.monotonic()
        if args.engine == "atheris":
            counts, failures = run_atheris(target, share)
        else:
            failures = run_hypothesis(target, share, args.batch)
            counts = dict(COUNTS.get(target.name, {}))
        seconds = time.monotonic() - t0
        rows[target.name] = {"inputs": counts.get("inputs", 0), "accepted": counts.get("accepted", 0),
                             "refused": counts.get("rejected", 0), "failures": failures,
                             "seconds": round(seconds, 1),
                             "inputs_per_second": round(counts.get("inputs", 0) / seconds, 1) if seconds else 0}
    total = sum(row["inputs"] for row in rows.values())
    failed = sum(len(row["failures"]) for row in rows.values())

    print(f"\n{'target':34} {'inputs':>10} {'accepted':>10} {'refused':>10} {'per s':>8} {'failures':>8}")
    for name, row in rows.items():
        print(f"{name:34} {row['inputs']:>10,} {row['accepted']:>10,} {row['refused']:>10,} "
              f"{row['inputs_per_second']:>8,.0f} {len(row['failures']):>8}")
    print(f"{'total':34} {total:>10,} {'':>10} {'':>10} {'':>8} {failed:>8}")
    print(f"\n{args.engine}, {(time.monotonic() - started) / 60:.1f} minutes, {len(rows)} targets")

    if not args.no_save:
        from benchlib import save_json

        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        previous[args.engine] = {"minutes": round((time.monotonic() - started) / 60, 1), "total_inputs": total,
                                 "failures": failed, "python": sys.version.split()[0],
                                 "cpu_count": os.cpu_count(), "targets": rows}
        save_json(RESULTS, previous)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
