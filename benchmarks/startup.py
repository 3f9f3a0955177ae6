"""How long `harduino` takes to start: `--help` and `ports`, beside a bare Python start.

Each command runs as a user runs it, a fresh process of the installed
`harduino` script; the figure is the median wall time of several runs. The
baseline is `python -c pass` in the same run, so the ratio holds across
machines. Goals: `--help` under 0.3 s, `ports` under 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOALS_S = {"--help": 0.3, "ports": 1.0}


def harduino_script() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("harduino")
    if script.exists():
        return [str(script)]
    found = shutil.which("harduino")
    return [found] if found else [sys.executable, "-m", "harduino.cli"]


def median_wall_s(cmd: list[str], runs: int) -> float:
    times = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 runs each instead of 15 (for tests)")
    args = ap.parse_args()
    runs = 3 if args.quick else 15
    base = median_wall_s([sys.executable, "-c", "pass"], runs)
    print(f"start-up, median wall time of {runs} fresh processes")
    print(f"  {'command':18s} {'s':>7s} {'x python -c pass':>17s} {'goal':>7s}")
    print(f"  {'python -c pass':18s} {base:7.3f} {1.0:17.1f}")
    summary = []
    for command, goal in GOALS_S.items():
        took = median_wall_s(harduino_script() + [command], runs)
        print(f"  {'harduino ' + command:18s} {took:7.3f} {took / base:17.1f} {goal:6.1f}s")
        summary.append(f"summary: harduino {command} start-up | {took:.3f} s ({took / base:.1f}x a bare python) "
                       f"| < {goal:g} s")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
