"""How long `mergeval demo` goes silent, on a terminal and in a log (issue 15: "no phase of `make demo` is
silent for more than 5 s").

    python bench/bench_demo_progress.py [--mode tty|pipe|both] [--quick] [--keep DIR]

Runs the whole demo from nothing (fresh cache, store and output folder: the parents are trained, merged and
evaluated) and timestamps everything it writes.

* tty: under a pseudo-terminal (what `make demo` in a shell gets). Silent = no byte written: rich's live
  display (bars, spinners) redraws several times a second, so a gap means nothing on screen moves.
* pipe: stdout and stderr into a pipe (CI logs, `| tee`). Silent = no new line.

The anchor is the same command without the progress work of issue 15 (recorded in BENCHMARKS.md: 131 s of
silence in the training phase). Prints the longest gaps with the line before each, then one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _command(work: Path, quick: bool) -> tuple[list[str], dict[str, str]]:
    mergeval = Path(sys.executable).with_name("mergeval")
    cmd = [str(mergeval), "demo", "--out", str(work / "demo"), "--store", str(work / "demo.db")]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "MERGEVAL_CACHE": str(work / "cache"), "COLUMNS": "120"}
    return cmd, env


def _run_tty(cmd: list[str], env: dict[str, str]) -> tuple[list[tuple[float, str]], int]:
    leader, follower = pty.openpty()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks: list[tuple[float, str]] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic() - start, data.decode("utf-8", "replace")))
        elif proc.poll() is not None:
            break
    os.close(leader)
    return chunks, proc.wait()


def _run_pipe(cmd: list[str], env: dict[str, str]) -> tuple[list[tuple[float, str]], int]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, bufsize=1)
    assert proc.stdout is not None
    lines = [(time.monotonic() - start, line) for line in proc.stdout]
    return lines, proc.wait()


def _gaps(chunks: list[tuple[float, str]], total: float, top: int = 5) -> list[dict]:
    events = [(0.0, "(start)")] + chunks + [(total, "(exit)")]
    gaps = []
    last_text = "(start)"
    for (t0, text0), (t1, _) in itertools.pairwise(events):
        visible = [line.strip() for line in ANSI.sub("\n", text0).splitlines() if line.strip()]
        if visible:
            last_text = visible[-1]
        gaps.append({"seconds": round(t1 - t0, 1), "at": round(t0, 1), "after": last_text[:100]})
    return sorted(gaps, key=lambda g: -g["seconds"])[:top]


def measure(mode: str, quick: bool, keep: Path | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"mv-demo-{mode}-"))
    try:
        cmd, env = _command(work, quick)
        start = time.monotonic()
        chunks, code = (_run_tty if mode == "tty" else _run_pipe)(cmd, env)
        total = time.monotonic() - start
        gaps = _gaps(chunks, total)
        print(f"\n== {mode}: exit {code}, {total:.0f} s, {len(chunks)} writes; longest silences:")
        for g in gaps:
            print(f"   {g['seconds']:6.1f} s at {g['at']:6.1f} s, after: {g['after']}")
        if code != 0:
            print("".join(ANSI.sub("", t) for _, t in chunks[-40:]))
        if keep is not None:
            shutil.copytree(work / "demo", keep / mode, dirs_exist_ok=True)
            shutil.copy2(work / "demo.db", keep / f"{mode}.db")
        return {"mode": mode, "exit": code, "seconds": round(total, 1), "writes": len(chunks),
                "longest_silence_s": gaps[0]["seconds"] if gaps else None, "gaps": gaps}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["tty", "pipe", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="the demo's shorter training")
    parser.add_argument("--keep", type=Path, help="copy each run's demo folder and store here")
    args = parser.parse_args()
    modes = ["tty", "pipe"] if args.mode == "both" else [args.mode]
    results = [measure(mode, args.quick, args.keep) for mode in modes]
    print(json.dumps({"bench": "demo_progress", "quick": args.quick, "runs": results}))


if __name__ == "__main__":
    main()
