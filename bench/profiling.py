"""Where a daemon's CPU goes during a benchmark: py-spy (a sampling profiler that attaches to a
running process) records each daemon while a scenario runs, and this module sums the samples per
function. Used by ``bench/sync.py --profile DIR``; py-spy comes with ``pip install -e '.[bench]'``
(bench/setup installs it).

For each daemon it writes, in DIR:

- ``LABEL-NAME.raw``: py-spy's collapsed stacks (``frame;frame;... count``), for flamegraph tools;
- ``LABEL-NAME.txt``: the functions with the most samples on top of the stack ("self") and
  anywhere on it ("total"), as seconds of CPU at the sampling rate.

Attaching needs ptrace rights over the daemon: the daemon makes itself non-dumpable (docs/
threat-model.md), so only root (or CAP_SYS_PTRACE) can profile it. Without them the profile is
reported missing, and the benchmark's figures are still measured.
"""

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

#: Samples per second. py-spy's default is 100; more resolves a few-millisecond edit better.
RATE = 500
#: How many functions each summary lists.
TOP = 25

_LINE = re.compile(r":\d+\)$")
#: A frame of vaultpeer's own code, below the CLI (whose frames are on every stack).
_OURS = re.compile(r"\(vaultpeer/(?!cli/|__main__)")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def profiled(directory: Path | None, label: str, daemons: dict[str, int]):
    """Record ``daemons`` (name -> pid) while the block runs; summaries printed and written in
    ``directory`` when it ends. With no directory, does nothing."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    tool = py_spy()
    if tool is None:
        print("    (no profile: py-spy is not installed; pip install -e '.[bench]')")
        yield
        return
    recorders = {}
    for name, pid in daemons.items():
        raw = directory / f"{label}-{name}.raw"
        recorders[name] = (raw, subprocess.Popen(
            [tool, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw", "--output", str(raw),
             "--threads", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        yield
    finally:
        for name, (raw, recorder) in recorders.items():
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                _, err = recorder.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                _, err = recorder.communicate()
            if not raw.exists():
                print(f"    (no profile of {name}: {err.strip().splitlines()[-1] if err.strip() else 'py-spy wrote nothing'})")
                continue
            summary = summarize(raw.read_text())
            (directory / f"{label}-{name}.txt").write_text(summary)
            print(f"    profile of {name} ({raw.with_suffix('.txt')}):")
            print("\n".join("      " + line for line in summary.splitlines()[:12]))


def summarize(collapsed: str) -> str:
    """The functions with the most samples, on top of the stack and anywhere on it, from py-spy's
    raw output; the first line gives the total."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames and frames[0].startswith("thread ("):
            threads[frames[0]] += samples
            frames = frames[1:]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            anywhere[frame] += samples
    seconds = total / RATE
    lines = [f"{total} samples at {RATE}/s: {seconds:.2f} s with a thread at work (py-spy leaves idle threads out), over {len(threads)} thread(s)",
             "", "self s    self %   function (where the CPU was)"]
    lines += [f"{n / RATE:7.2f}  {100 * n / max(total, 1):6.1f}   {frame}" for frame, n in own.most_common(TOP)]
    lines += ["", "total s   total %  vaultpeer function (the CPU under it; the CLI's frames left out)"]
    ours = Counter({frame: n for frame, n in anywhere.items() if _OURS.search(frame)})
    lines += [f"{n / RATE:7.2f}  {100 * n / max(total, 1):6.1f}   {frame}" for frame, n in ours.most_common(TOP)]
    return "\n".join(lines) + "\n"
