"""The set-up that `make demo` and `make test` do: Debian packages, the PyTorch build, the shipped model.

The Makefile runs here for real, with fake `apt-get`, `sudo`, `id` and `pip` scripts first on PATH
(nothing is ever installed) and the firmware toolchain's paths pointed at empty folders. The
shipped model is found by a real non-editable install of the package, run from another folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT_PACKAGES = ["libegl1", "libgl1", "libxkbcommon-x11-0", "libdbus-1-3", "libfontconfig1"]
# libc6-dev is found by /usr/include/stdio.h, which no variable points elsewhere.
TOOLCHAIN = ["gcc-avr", "avr-libc", "arduino-core-avr", "libsimavr-dev", "gcc",
             *([] if Path("/usr/include/stdio.h").exists() else ["libc6-dev"])]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="the set-up is make's")


def script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


class Machine:
    """A bin folder of fake system tools, each logging its arguments, and make run with it first on PATH."""

    def __init__(self, tmp_path: Path, *, uid: int = 1000, sudo: str = "password", installed: bool = False):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()
        log = f'echo "$(basename "$0") $*" >> {self.log}'
        script(self.bin, "id", f'[ "$1" = -u ] && echo {uid}')
        script(self.bin, "apt-get", log)
        script(self.bin, "dpkg-query", "printf 'ii '" if installed else "exit 1")
        if sudo == "passwordless":
            script(self.bin, "sudo", f'{log}\n[ "$1" = -n ] && shift\nexec "$@"')
        elif sudo == "password":
            script(self.bin, "sudo", f'{log}\necho "sudo: a password is required" >&2\nexit 1')
        self.paths = self.toolchain_paths(tmp_path / "toolchain", installed)

    def toolchain_paths(self, root: Path, installed: bool) -> list[str]:
        """make variables that point the firmware's toolchain check at a tree that has it all, or nothing."""
        if installed:
            for file in ("arduino/cores/arduino/Arduino.h", "avr/include/util/crc16.h", "simavr/sim_avr.h"):
                (root / file).parent.mkdir(parents=True, exist_ok=True)
                (root / file).touch()
            script(self.bin, "fake-avr-gcc", "exit 0")
            script(self.bin, "fake-cc", "exit 0")
        return [f"ARDUINO_DIR={root / 'arduino'}", f"AVR_LIBC_DIR={root / 'avr'}",
                f"SIMAVR_INCLUDE={root / 'simavr'}", "CC=fake-avr-gcc", "HOSTCC=fake-cc"]

    def make(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(["make", "--no-print-directory", *args, *self.paths], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    def calls(self) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines()]


def installs(calls: list[list[str]]) -> list[list[str]]:
    """The package lists that apt-get was asked to install."""
    return [call[call.index("install") + 1:] for call in calls if call[0] == "apt-get" and "install" in call]


def packages(install: list[str]) -> list[str]:
    return [word for word in install if not word.startswith("-")]


def test_as_root_make_installs_the_missing_packages_with_apt_get(tmp_path):
    machine = Machine(tmp_path, uid=0, sudo="none")
    result = machine.make("system-packages")
    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert ["apt-get", "update", "-qq"] in calls
    [install] = installs(calls)
    assert "-y" in install and sorted(packages(install)) == sorted(TOOLCHAIN + QT_PACKAGES)


def test_with_passwordless_sudo_make_installs_them_through_sudo_n(tmp_path):
    machine = Machine(tmp_path, uid=1000, sudo="passwordless")
    result = machine.make("toolchain")  # the firmware's packages alone: no Qt
    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    sudo_installs = [call for call in calls if call[:2] == ["sudo", "-n"] and "install" in call]
    assert sudo_installs and "apt-get" in sudo_installs[0]
    [install] = installs(calls)
    assert sorted(packages(install)) == sorted(TOOLCHAIN)


@pytest.mark.parametrize("target", ["system-packages", "test", "firmware"])
def test_without_root_or_sudo_make_stops_with_the_one_command_to_run(tmp_path, target):
    machine = Machine(tmp_path, uid=1000, sudo="password")
    # STAMP= and PY=false: were the packages check passed by, `make test` would fail at once, not run the suite.
    result = machine.make(target, "STAMP=", "PY=false")
    assert result.returncode != 0
    line = result.stderr.splitlines()[0]  # make's own "Error 1" follows it
    expected = TOOLCHAIN + (QT_PACKAGES if target != "firmware" else [])
    assert f"sudo apt-get install {' '.join(expected)}" in line
    assert installs(machine.calls()) == []
    assert "LINK" not in result.stdout  # the firmware was not built


def test_nothing_is_installed_when_nothing_is_missing(tmp_path):
    machine = Machine(tmp_path, uid=0, sudo="none", installed=True)
    result = machine.make("system-packages")
    assert result.returncode == 0, result.stderr
    expected = [] if Path("/usr/include/stdio.h").exists() else [["libc6-dev"]]
    assert [packages(i) for i in installs(machine.calls())] == expected


def fake_pip(tmp_path: Path, *, cpu_index_reachable: bool) -> Path:
    log = tmp_path / "pip.log"
    fail = "" if cpu_index_reachable else 'case "$*" in *download.pytorch.org*) exit 1;; esac'
    script(tmp_path, "pip", f'echo "$*" >> {log}\n{fail}')
    return log


def test_the_cpu_build_comes_from_pytorchs_index_and_falls_back_quickly_when_it_is_unreachable(tmp_path):
    log = fake_pip(tmp_path, cpu_index_reachable=False)
    machine = Machine(tmp_path, sudo="none")
    result = machine.make("torch", "TORCH=cpu", f"PIP={tmp_path / 'pip'}")
    assert result.returncode == 0, result.stderr
    first, fallback = [line.split() for line in log.read_text().splitlines()]
    assert first[:3] == ["install", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert "--timeout" in first and first[first.index("--timeout") + 1] == "5"
    assert "--retries" in first and first[first.index("--retries") + 1] == "0"
    assert fallback == ["install", "torch==2.13.0"]  # the pin constraints.txt holds


@pytest.mark.parametrize("gpu", [True, False])
def test_the_cuda_build_is_chosen_where_nvidia_smi_finds_a_gpu(tmp_path, gpu):
    log = fake_pip(tmp_path, cpu_index_reachable=True)
    machine = Machine(tmp_path, sudo="none")
    script(machine.bin, "nvidia-smi", "echo 'GPU 0: NVIDIA H200'" if gpu else "exit 9")
    result = machine.make("torch", f"PIP={tmp_path / 'pip'}")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    if gpu or Path("/proc/driver/nvidia/version").exists():
        assert calls == ["install torch==2.13.0"] and "CUDA build" in result.stdout
    else:
        assert len(calls) == 1 and "download.pytorch.org/whl/cpu" in calls[0] and "CPU build" in result.stdout


def live_from(folder: Path, command: list[str], env: dict) -> str:
    """`harduino live "sim://" --no-gui --duration 3` run from `folder`; its output."""
    result = subprocess.run([*command, "live", "sim://", "--no-gui", "--duration", "3"], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" s  ") >= 1, result.stdout  # at least one prediction line
    return result.stdout


def test_an_installed_harduino_uses_the_shipped_model_from_any_folder(tmp_path):
    # Build from a copy, so the checkout gets no build/ or egg-info, then install the wheel as a user would.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "host", src / "host", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "models" / "default", src / "models" / "default")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=120)
    [wheel] = (tmp_path / "dist").glob("harduino-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = live_from(elsewhere, [str(site / "bin" / "harduino")], {**os.environ, "PYTHONPATH": str(site)})
    assert f"with model {site / 'harduino' / 'default_model'} (" in out


def test_the_checkout_uses_its_own_models_default_from_any_folder(tmp_path):
    out = live_from(tmp_path, [sys.executable, "-m", "harduino.cli"], dict(os.environ))
    assert f"with model {ROOT / 'models' / 'default'} (" in out
