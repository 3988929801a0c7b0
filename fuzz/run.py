"""Run every coverage-guided fuzz target (fuzz/targets/<name>_fuzzer.py) for a while each.

    python fuzz/run.py --seconds 60            every target, 60 s each (what `make fuzz` runs)
    python fuzz/run.py --seconds 300 snappy    one target
    python fuzz/targets/snappy_fuzzer.py fuzz/crashes/snappy/crash-...   replay one input

Each target starts from its seed corpus, fuzz/corpus/<name>/, which it only reads; the inputs
libFuzzer finds interesting go to fuzz/work/<name>/ and reproducers of crashes (and timeouts,
and inputs that use too much memory) to fuzz/crashes/<name>/, both gitignored. Exits 1 when a
target crashed, after printing each reproducer and the command that replays it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = HERE / "targets"
CORPUS = HERE / "corpus"
WORK = HERE / "work"
CRASHES = HERE / "crashes"
SUFFIX = "_fuzzer.py"
ARTIFACTS = ("crash-", "timeout-", "oom-", "leak-")


def targets() -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in TARGETS.glob(f"*{SUFFIX}"))


def run_target(name: str, seconds: int, python: str) -> list[Path]:
    """Fuzz one target for `seconds`; the reproducers it wrote this time."""
    work, crashes, seeds = WORK / name, CRASHES / name, CORPUS / name
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [
        python,
        str(TARGETS / f"{name}{SUFFIX}"),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=10",  # seconds for one input: slower is a hang
        "-rss_limit_mb=2048",
        "-max_len=65536",
        "-print_final_stats=1",
        str(work),  # the first corpus folder is where libFuzzer adds inputs
        str(seeds),
    ]
    started = time.monotonic()
    print(f"== {name}: {seconds} s from {seeds.relative_to(HERE.parent)}", flush=True)
    done = subprocess.run(command, cwd=HERE.parent, check=False)
    found = sorted(p for p in set(crashes.iterdir()) - before if p.name.startswith(ARTIFACTS))
    took = time.monotonic() - started
    print(f"== {name}: exit {done.returncode} after {took:.0f} s", flush=True)
    if done.returncode != 0 and not found:
        # A crash libFuzzer wrote no file for (an import error, a bad flag): still a failure.
        found = [TARGETS / f"{name}{SUFFIX}"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    parser.add_argument("names", nargs="*", help=f"targets to run (default all: {targets()})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(targets()))
    if unknown:
        parser.error(f"unknown targets {unknown}; there are {targets()}")
    failed: dict[str, list[Path]] = {}
    for name in args.names or targets():
        found = run_target(name, args.seconds, sys.executable)
        if found:
            failed[name] = found
    if not failed:
        print(f"fuzz: no crash in {len(args.names or targets())} targets")
        return 0
    for name, found in failed.items():
        for path in found:
            print(f"fuzz: {name} CRASHED; reproducer {path}")
            print(f"      replay: {sys.executable} fuzz/targets/{name}{SUFFIX} {path}")
    print("fuzz: turn each reproducer into a regression test (docs/fuzzing.md)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
