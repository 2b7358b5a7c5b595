"""Profile a run with py-spy, and read its collapsed stacks back as top functions.

py-spy samples another process from outside (ptrace), so the profiled process runs
unmodified code; it is attached only for the measured window, not for start-up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import functools
import linecache
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
from typing import Final

from .ha_config import REPO

RATE: Final = 200
LOOP_THREAD: Final = "MainThread"
# "thread (1234): MainThread;frame;frame 42" with --threads; a frame is
# "function (file:line)", the file relative to where its package lives.
_SAMPLE = re.compile(
    r"^thread \(\d+\): (?P<thread>[^;]*);(?P<stack>.*) (?P<count>\d+)$"
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
_LINE_NUMBER = re.compile(r":\d+\)$")
# Python 3.14's frame for calling a class, between the caller and the class's __init__.
_CLASS_CALL_SHIM: Final = "__init__ (__init__)"
# Where the interpreter stops a Python function on entry: to collect garbage, or to
# hand the GIL to another thread. Neither has a frame of its own.
FUNCTION_ENTRY: Final = "(on function entry: garbage collector or GIL hand-over)"
_SOURCE_ROOTS: Final = (
    *(Path(entry) for entry in sys.path if entry),
    REPO / "custom_components",
    REPO / "scripts",
)


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling process `pid` into `output` (collapsed stacks, per thread)."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        msg = "py-spy is not installed (requirements_test.txt)"
        raise RuntimeError(msg)
    log = output.with_suffix(".log").open("wb")
    with log:
        return subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--threads",
                # Do not pause the process per sample: less distortion.
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=log,
            stderr=log,
        )


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    """Stop sampling; py-spy writes its output on SIGINT."""
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """Where one thread spent its samples."""

    thread: str
    samples: int
    samples_by_thread: dict[str, int]
    # (function, share of the thread's samples) by time inside the function itself,
    # and by time in it and everything it called.
    self_time: list[tuple[str, float]]
    cumulative: list[tuple[str, float]]


def _function(frame: str) -> str:
    """Drop a frame's line number: samples of one function add up."""
    return _LINE_NUMBER.sub(")", frame)


@functools.cache
def _is_function_entry(frame: str) -> bool:
    """Tell whether a frame stands on its function's `def` (or decorator) line.

    A sampled frame is there when the interpreter stopped the function as it was
    entered, before its first statement.
    """
    if (match := _FRAME.match(frame)) is None:
        return False
    for root in _SOURCE_ROOTS:
        if (path := root / match["file"]).is_file():
            source = linecache.getline(str(path), int(match["line"])).strip()
            return source.startswith(("def ", "async def ", "@"))
    return False


def summarize_profile(
    raw: Path, thread: str = LOOP_THREAD, top: int = 25
) -> ProfileSummary:
    """Top functions of `thread` in py-spy's raw output."""
    by_thread: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        if (match := _SAMPLE.match(line)) is None:
            continue
        count = int(match["count"])
        by_thread[match["thread"]] += count
        if match["thread"] != thread:
            continue
        frames = [f for f in match["stack"].split(";") if f != _CLASS_CALL_SHIM]
        functions = [_function(frame) for frame in frames]
        leaf = FUNCTION_ENTRY if _is_function_entry(frames[-1]) else functions[-1]
        self_time[leaf] += count
        # Recursion must not count a sample twice.
        for function in set(functions):
            cumulative[function] += count
    samples = by_thread[thread]

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / samples) for name, n in counter.most_common(top)]

    return ProfileSummary(
        thread=thread,
        samples=samples,
        samples_by_thread=dict(by_thread.most_common()),
        self_time=shares(self_time) if samples else [],
        cumulative=shares(cumulative) if samples else [],
    )


def format_summary(title: str, summary: ProfileSummary) -> str:
    """Render a ProfileSummary as plain text."""
    lines = [
        f"## {title}",
        "",
        f"{summary.samples} samples in {summary.thread} (at {RATE}/s, idle excluded);"
        " all threads: "
        + ", ".join(f"{name} {n}" for name, n in summary.samples_by_thread.items()),
        "",
        "By cumulative time (the function and what it calls):",
    ]
    lines += [f"  {share:6.1%}  {name}" for name, share in summary.cumulative]
    lines += ["", "By self time (the function's own code):"]
    lines += [f"  {share:6.1%}  {name}" for name, share in summary.self_time]
    lines += [
        "",
        f"{FUNCTION_ENTRY}: samples that stood on a function's `def` line. Python"
        " collects garbage, and hands the GIL to another thread, as a function is"
        " entered; neither has a frame of its own.",
    ]
    return "\n".join(lines) + "\n"
