"""`python -m harduino.sampledata data/sim`: the simulated recordings the project ships (`make data`).

Every session goes through the real recorder (`harduino record`) reading the
virtual board (`sim://`, unpaced), so the CSVs, sidecars and raw serial logs
are what a user recording a board gets. Subjects, activities, seeds and
durations are fixed here, so the samples come out the same every time; only
the start times in the file names and sidecars change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cli
from .motion import ACTIVITIES

SUBJECTS = (1, 2, 3, 4, 5)
SECONDS = 11.0   # per session: 550 samples, 33 windows of 32 at step 16 (data/ stays under 2 MB)
RATE_HZ = 50
SEED = 1


def sim_url(activity: str, subject: int) -> str:
    return f"sim://?activity={activity}&subject={subject}&seed={SEED}&rate={RATE_HZ}&speed=max"


def generate(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.csv"), *out.glob("*.json"), *out.glob("*.bin")]:
        old.unlink()  # the folder is generated: start clean so names never pile up as -2, -3
    for subject in SUBJECTS:
        for activity in ACTIVITIES:
            code = cli.main(["record", sim_url(activity, subject), "--subject", f"s{subject}", "--label", activity,
                             "--out", str(out), "--duration", str(SECONDS)])
            if code:
                return code
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harduino.sampledata", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", default=Path("data/sim"), help="folder (default %(default)s)")
    args = ap.parse_args(argv)
    return generate(args.out)


if __name__ == "__main__":
    sys.exit(main())
