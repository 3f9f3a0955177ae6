"""Test set-up and helpers shared by the test modules (which import helpers from here, never from each other)."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

# Qt draws real pixels without a screen; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from harduino import motion, protocol  # noqa: E402 - after the Qt setting, which any import may need

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "default"
SCALE = protocol.BoardInfo().si_scale
# A session the default model never saw: subject 6 (it was trained on s1-s5), seed 7.
SCRIPT = [("still", 4.0), ("walking", 5.0), ("running", 5.0), ("jumping", 4.0), ("waving", 5.0)]
RATE_HZ = 50
REPLAY_SPEED = 4  # 23 s of board time in under 6 s, with room for every window to be predicted on a busy machine


# ---------------------------------------------------------------- recordings

def raw_counts(si: np.ndarray) -> np.ndarray:
    """SI values back to the board's raw counts (the CSV's four decimals keep them exact)."""
    return np.rint(si / SCALE).astype(np.int64)


def only(folder: Path, pattern: str) -> Path:
    """The one file in folder matching pattern (the test fails naming what it found otherwise)."""
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def saved_counts(proc: subprocess.Popen, n: int) -> list[int]:
    """The first n `saved N` figures a recorder subprocess prints."""
    saved = []
    while len(saved) < n:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("saved "):
            saved.append(int(line.split()[1]))
    return saved


# ---------------------------------------------------------------- scripted sessions, replayed

def write_scripted_log(path: Path, script=SCRIPT, rate_hz: int = RATE_HZ, subject: int = 6, seed: int = 7):
    """A raw serial log of a scripted session, as the board sends it; returns its per-sample labels and SI."""
    raw, labels = motion.synth_script(script, rate_hz, subject=subject, seed=seed)
    n = len(raw)
    info = protocol.BoardInfo(rate_hz=rate_hz)
    t_us = 1_000_000 + np.round(np.arange(n) * 1e6 / rate_hz).astype(np.int64)
    path.write_bytes(protocol.encode_info(info) + protocol.encode_samples(np.arange(n), t_us, raw))
    return labels, raw.astype(np.float64) * info.si_scale


def replay_url(path: Path, speed=REPLAY_SPEED) -> str:
    return f"replay://{path}?speed={speed}"


def window_accuracy(predictions, labels, window: int = 32) -> dict[str, float]:
    """Per activity: the share of its pure windows (one label throughout) whose own prediction is right."""
    right, total = {}, {}
    for p in predictions:
        truth = labels[p.index - window:p.index]
        if truth[0] != truth[-1]:
            continue
        guess = p.classes[int(np.argmax(p.raw_proba))]
        total[truth[0]] = total.get(truth[0], 0) + 1
        right[truth[0]] = right.get(truth[0], 0) + (guess == truth[0])
    return {k: right[k] / total[k] for k in total}


# ---------------------------------------------------------------- model bundles

def bundle_checksum(info: dict, weights: bytes) -> str:
    """The version 2 checksum, computed as docs/model-bundle.md defines it (not with the library's code)."""
    canonical = json.dumps({k: v for k, v in info.items() if k != "sha256"}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode() + weights).hexdigest()


# ---------------------------------------------------------------- the command, in this process

def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """harduino's main on argv: exit code, stdout, stderr."""
    from harduino.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def elf() -> Path:
    """The firmware built for the simulator.

    `make test` installs the AVR toolchain first; a bare pytest run without it skips, except in CI, where
    it fails: a CI run never passes with the firmware untested.
    """
    from harduino import firmware

    missing = firmware.missing_packages()
    if missing:
        message = (f"the firmware tests need the Debian packages {' '.join(missing)}: "
                   f"`{firmware.install_command(missing)}`, or `make test`, installs them")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return firmware.build_firmware()
