"""The `harduino` command starts in a blink and stops quietly: what each command loads, Ctrl-C at start-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "scipy", "sklearn", "torch", "serial", "PyQt5", "pyqtgraph", "matplotlib")


def modules_loaded_by(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported after running `code`."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.splitlines()[-1].split() if out.stdout.strip() else []


def test_help_loads_no_heavy_package():
    assert modules_loaded_by("from harduino.cli import build_parser\nbuild_parser().format_help()") == []


def test_ports_loads_pyserial_alone():
    loaded = modules_loaded_by("from harduino.cli import main\nmain(['ports'])")
    assert loaded == ["serial"]


# The delay counts from the moment the command's own code runs: a signal inside the interpreter's own
# start-up (site.py, before any program code), which a loaded machine can stretch past 50 ms, is Python's.
ENTERED = "import sys; from harduino.cli import main; print('entered', file=sys.stderr, flush=True); " \
          "sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.3, 0.8])
def test_ctrl_c_during_start_up_ends_without_a_traceback(delay_s, tmp_path):
    # `train` imports numpy, scikit-learn and torch before it works: Ctrl-C lands somewhere in that.
    proc = subprocess.Popen([sys.executable, "-c", ENTERED, "train", str(ROOT / "data" / "sim"),
                             "--arch", "cnn", "-o", str(tmp_path / "m"), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline() == "entered\n"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode in (130, -signal.SIGINT)
    assert not (tmp_path / "m").exists()


def test_startup_benchmark_prints_both_figures_beside_their_goals():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    summary = [line for line in out.splitlines() if line.startswith("summary:")]
    assert any("--help" in line and "< 0.3 s" in line for line in summary)
    assert any("ports" in line and "< 1 s" in line for line in summary)
