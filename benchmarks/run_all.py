"""Run every benchmark in this folder and write their figures to docs/benchmarks.md.

Each benchmark is a script that prints its own table; this collects them, with
the machine and the date, so the figures in the docs are always the latest run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    sections, summary = [], []
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {script.name}", flush=True)
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        text = result.stdout.strip() or "(no output)"
        if result.returncode != 0:
            text += f"\n[exit {result.returncode}] {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"
        print(text, flush=True)
        summary += [line.removeprefix("summary:").strip().split(" | ") for line in text.splitlines()
                    if line.startswith("summary:")]
        sections.append(f"## {script.stem}\n\n`python benchmarks/{script.name}`\n\n```\n{text}\n```\n")
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.date.today().isoformat()}.\n\n"
        f"Machine: {machine()}.\n\n"
        "| measure | figure | goal |\n|---|---|---|\n"
        + "".join(f"| {' | '.join(row)} |\n" for row in summary)
        + "\nThe full output of each benchmark follows.\n\n"
    )
    args.out.write_text(header + "\n".join(sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
