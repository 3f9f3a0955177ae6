"""Run every benchmark in this folder and write their figures to docs/benchmarks.md.

Each benchmark is a script that prints its own table; this collects them, each
with the day and the machine it ran on, so the figures in the docs are always a
benchmark's latest run. `--only` runs some of them again and keeps the others.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
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


SECTION = re.compile(r"^## (\S+)\n", re.M)


def read_sections(page: Path) -> dict[str, str]:
    """The sections of a page this script wrote, by benchmark name (empty when there is none)."""
    text = page.read_text() if page.is_file() else ""
    heads = list(SECTION.finditer(text))
    return {h.group(1): text[h.start():heads[i + 1].start() if i + 1 < len(heads) else len(text)].strip() + "\n"
            for i, h in enumerate(heads)}


def run(script: Path, quick: bool) -> str:
    """A benchmark's section: its command, the day, and what it printed."""
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
    print(f"== {script.name}", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    text = result.stdout.strip() or "(no output)"
    if result.returncode != 0:
        text += f"\n[exit {result.returncode}] {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"
    print(text, flush=True)
    return (f"## {script.stem}\n\n`python benchmarks/{script.name}`, run on {datetime.date.today().isoformat()}"
            f" ({machine()})\n\n```\n{text}\n```\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", metavar="NAMES",
                    help="run only these benchmarks (comma-separated, e.g. live,reader) and keep the page's other "
                         "sections as they are")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    scripts = {p.stem: p for p in sorted(HERE.glob("*.py")) if p.name != Path(__file__).name}
    chosen = args.only.split(",") if args.only else list(scripts)
    unknown = [name for name in chosen if name not in scripts]
    if unknown:
        raise SystemExit(f"run_all.py: no benchmark {', '.join(unknown)}; there are {', '.join(scripts)}.")
    sections = read_sections(args.out) if args.only else {}
    for name in chosen:
        sections[name] = run(scripts[name], args.quick)
    sections = {name: sections[name] for name in scripts if name in sections}  # in the folder's order
    # The table gathers every section's `summary:` lines, so a partial run keeps the others' rows.
    summary = [line.removeprefix("summary:").strip().split(" | ") for text in sections.values()
               for line in text.splitlines() if line.startswith("summary:")]
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` (`python benchmarks/run_all.py`; `--only NAMES` runs some again); last run on "
        f"{datetime.date.today().isoformat()}. Each section says the day and the machine it was run on: compare "
        "figures of one run, and ratios measured in the same run, rather than figures of different runs.\n\n"
        "| measure | figure | goal |\n|---|---|---|\n"
        + "".join(f"| {' | '.join(row)} |\n" for row in summary)
        + "\nThe full output of each benchmark follows.\n\n"
    )
    args.out.write_text(header + "\n".join(sections.values()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
