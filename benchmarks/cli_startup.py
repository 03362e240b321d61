"""How long the light commands take to start: `posezoo list`, `posezoo --help`, `posezoo run --help`,
`posezoo info MODEL`, `posezoo plugins` (median wall time of several fresh subprocesses each), and with
``--importtime`` the modules `posezoo list` spends its import time on (``python -X importtime``).

    python benchmarks/cli_startup.py                 # median of 9 runs each
    python benchmarks/cli_startup.py --runs 15 --importtime
    python benchmarks/cli_startup.py --compare /tmp/old   # the same, alternating with an older tree

``--compare DIR`` runs each command alternately here and with ``PYTHONPATH=DIR`` (a tree holding an
older ``posezoo`` and ``posezoo_plugins``, e.g. ``git archive REV posezoo plugins``, plugins renamed),
so both see the same machine load. Wall time is the median of fresh subprocesses; CPU time (user +
system of the child) moves less with what else runs on the machine. It uses an empty cache in a
temporary folder and the interpreter running it, and prints the CPU model with the numbers. The
children may write __pycache__ (PYTHONDONTWRITEBYTECODE is dropped): an installed package has its
bytecode, and compiling every module on every start would swamp what is measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from machine import cpu_model  # benchmarks/machine.py

COMMANDS = [["list"], ["--help"], ["run", "--help"], ["info", "blazepose-full"], ["plugins"], ["--version"]]


def once(args: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh `posezoo ARGS`."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "posezoo", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"posezoo {' '.join(args)} failed: {err.decode()[-500:]}")
    return took, usage.ru_utime + usage.ru_stime


def line(label: str, samples: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    return (f"{label:<34} wall median {statistics.median(wall):6.3f} s (min {min(wall):6.3f})   "
            f"CPU median {statistics.median(cpu):6.3f} s")


def import_report(env: dict, top: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports of `posezoo list`."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "posezoo", "list"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, rest = line.partition(":")
        self_us, cumulative, name = (p.strip() for p in rest.split("|"))
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports of `posezoo list`")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--compare", metavar="DIR", help="also time PYTHONPATH=DIR, alternating with this tree")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # (bytecode written and used, as an installed wheel has it: without it every run compiles posezoo)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSEZOO_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(POSEZOO_HOME=os.path.join(tmp, "home"), POSEZOO_REGISTRY=os.pathsep, XDG_CONFIG_HOME=os.path.join(tmp, "cfg"))
        print(f"CPU: {cpu_model()} ({os.cpu_count()} logical); Python {platform.python_version()}; runs: {ns.runs}")
        old = {**env, "PYTHONPATH": ns.compare} if ns.compare else None
        for e in (env, old):
            if e is not None:
                once(["list"], e)  # warm the file system cache, write the bytecode
        for args in COMMANDS:
            now, before = [], []
            for _ in range(ns.runs):
                now.append(once(args, env))
                if old is not None:
                    before.append(once(args, old))
            name = "posezoo " + " ".join(args)
            if old is not None:
                print(line(f"{name} (before)", before))
            print(line(name, now))
        if ns.importtime:
            print("\nslowest imports of `posezoo list` (cumulative, top-level and their direct imports):")
            for us, name in import_report(env, ns.top):
                print(f"  {us / 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
