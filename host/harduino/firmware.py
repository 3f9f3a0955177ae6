"""The real firmware, built with the Debian AVR toolchain and run in the simavr simulator.

`build_firmware()` runs `make` in firmware/ and returns the ELF. `FirmwareBoard`
runs that ELF in the simulator harness (firmware/sim/) as an Uno with a
simulated MPU-6050, behind a pseudo-terminal: the host opens `board.port` like
any serial port, then `board.start()` boots the firmware, so not a byte is lost.

The simulated sensor serves the rows the host gives it: the k-th burst read of
its registers returns row k, and the rows wrap around at the end, so the host
knows exactly what the firmware must send. `simulate_firmware()` is what
`harduino simulate --firmware` runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tty
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import motion, protocol
from .errors import UserError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
BUILD_DIR = FIRMWARE_DIR / "build"
ELF = BUILD_DIR / "uno" / "harduino.elf"
MODEL_ELF = BUILD_DIR / "uno-model" / "harduino.elf"  # `make MODEL=...`: the firmware with a model built in
HARNESS = BUILD_DIR / "harduino_sim"
DEFAULT_RATE_HZ = 50         # what the firmware samples at after power-up
SIMULATE_ROWS_SECONDS = 300  # `simulate --firmware` serves this much movement, then repeats it


def missing_packages(*, ide: bool = False) -> list[str]:
    """The Debian packages this machine lacks to build and simulate the firmware ([] if none).

    ide=True: also those the Arduino IDE's own builder needs (`ide_build`).
    """
    if shutil.which("make") is None:
        return ["make"]
    target = "missing-packages" if ide else "missing-build-packages"
    result = subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), target], capture_output=True, text=True)
    return result.stdout.split()


def install_command(packages: list[str]) -> str:
    """The command that installs these Debian packages, as whoever runs this would type it."""
    return f"{'' if os.geteuid() == 0 else 'sudo '}apt-get install {' '.join(packages)}"


def build_firmware(model: Path | None = None) -> Path:
    """Build the firmware and the simulator harness (quick when nothing changed); returns the ELF.

    model: a bundle folder to build in (`make MODEL=...`, which runs `harduino export`), into a
    build folder of its own; without it, the firmware streams only.
    """
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise UserError("the firmware sources are not here; run this from a Harduino checkout.")
    missing = missing_packages()
    if missing:
        raise UserError(f"building the firmware needs the Debian packages {' '.join(missing)}: "
                        f"`{install_command(missing)}` installs them (or `make toolchain` in the checkout).")
    command, env = ["make", "-C", str(FIRMWARE_DIR), "all"], None
    if model is not None:
        # The export runs in this interpreter, on this package, whatever is installed elsewhere.
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        command += [f"MODEL={Path(model).resolve()}", f"HARDUINO={sys.executable} -m harduino.cli"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"building the firmware failed ({last.removeprefix('harduino: error: ')}); "
                        f"`make -C firmware{' MODEL=' + str(model) if model else ''}` shows the whole story.")
    return MODEL_ELF if model is not None else ELF


class HarnessReport(NamedTuple):
    """What the simulator harness says when the run ends: the model's cost and the stack's peak."""

    model_cycles: int     # cycles while the firmware held D8 high (working on its model)
    model_stretches: int  # how many times it did
    longest_stretch: int  # cycles of the longest one
    stack_bytes: int      # the deepest the stack reached, from the top of RAM


def harness_report(log: str) -> HarnessReport:
    found = re.search(r"model (\d+) cycles in (\d+) stretches, longest (\d+); stack (\d+) bytes", log)
    if not found:
        raise ValueError(f"the simulator harness gave no report: {log.strip()[-200:]!r}")
    return HarnessReport(*(int(x) for x in found.groups()))


class IdeBuild(NamedTuple):
    """What the Arduino IDE's builder reports: bytes of flash and RAM used, and the board's maximum."""

    flash: int
    flash_max: int
    ram: int
    ram_max: int


def ide_build(fqbn: str = "arduino:avr:uno") -> IdeBuild:
    """Build the sketch with the Arduino IDE's own builder (Debian's arduino-builder) for a board."""
    missing = missing_packages(ide=True)
    if missing:
        raise UserError(f"the Arduino IDE's builder needs the Debian packages {' '.join(missing)}: "
                        f"`{install_command(missing)}` installs them.")
    result = subprocess.run(["make", "-s", "-C", str(FIRMWARE_DIR), "ide", f"FQBN={fqbn}"],
                            capture_output=True, text=True)
    flash = re.search(r"Sketch uses (\d+) bytes.*Maximum is (\d+) bytes", result.stdout)
    ram = re.search(r"Global variables use (\d+) bytes.*Maximum is (\d+) bytes", result.stdout)
    if result.returncode != 0 or not flash or not ram:
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip() and
                not line.startswith("make")]  # the builder's own last word, not make's
        last = said[-1].strip() if said else "no output"
        raise UserError(f"the Arduino IDE's builder failed for {fqbn} ({last}); "
                        f"`make -C firmware ide FQBN={fqbn}` shows the whole story.")
    return IdeBuild(int(flash[1]), int(flash[2]), int(ram[1]), int(ram[2]))


def firmware_size(elf: Path = ELF) -> tuple[int, int]:
    """(flash bytes, RAM bytes) of a built firmware: code + initialised data, and data + bss."""
    result = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sections = {m[1]: int(m[2]) for m in re.finditer(r"^(\.\w+)\s+(\d+)", result.stdout, re.M)}
    flash = sections.get(".text", 0) + sections.get(".data", 0)
    ram = sections.get(".data", 0) + sections.get(".bss", 0) + sections.get(".noinit", 0)
    return flash, ram


class FirmwareBoard:
    """The built firmware running in simavr with a simulated MPU-6050, on a pseudo-terminal.

    sensor_rows: (n, 6) int16 raw counts (accel x, y, z, gyro x, y, z) that the
    simulated sensor serves, one row per burst read, wrapping around at the end.
    realtime=True paces the simulation to the wall clock and drops bytes nobody
    reads, like a USB-serial chip; realtime=False runs as fast as the host
    reads (several times real time). who_am_i: what the sensor's WHO_AM_I
    register says (0x68 for a genuine MPU-6050), or None for no sensor on the bus.

    Open `port` first, then `start()`; `stop()` (or leaving the `with` block)
    ends the simulation, after which `log` holds the harness's report.
    """

    def __init__(self, sensor_rows: np.ndarray, *, realtime: bool = True, who_am_i: int | None = 0x68,
                 elf: Path | None = None) -> None:
        rows = np.asarray(sensor_rows)
        if rows.ndim != 2 or rows.shape[1] != 6 or rows.shape[0] == 0:
            raise ValueError(f"sensor rows must be a non-empty (n, 6) array, not shape {rows.shape}")
        if rows.dtype != np.int16:
            if not np.issubdtype(rows.dtype, np.integer) or rows.min() < -32768 or rows.max() > 32767:
                raise ValueError("sensor rows must be int16 raw counts")
        self.elf = Path(elf) if elf is not None else build_firmware()
        self.realtime = realtime
        self.who_am_i = who_am_i
        self.log = ""
        self._dir = tempfile.TemporaryDirectory(prefix="harduino-firmware-")
        self._rows_path = Path(self._dir.name) / "sensor_rows.bin"
        self._log_path = Path(self._dir.name) / "harness.log"
        rows.astype("<i2").tofile(self._rows_path)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._process: subprocess.Popen | None = None

    def start(self) -> "FirmwareBoard":
        """Power the board up: the firmware boots and sends its info frame."""
        if self._process is not None or self._master is None:
            raise RuntimeError("the simulated board was already started")
        sensor = ["--no-sensor"] if self.who_am_i is None else ["--who-am-i", str(self.who_am_i)]
        command = [str(HARNESS), str(self.elf), "--fd", str(self._master), "--rows", str(self._rows_path),
                   *(["--realtime"] if self.realtime else []), *sensor]
        with open(self._log_path, "wb") as log:
            # A session of its own: Ctrl-C in a terminal reaches the host, which then stops the board.
            self._process = subprocess.Popen(command, pass_fds=(self._master,), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, start_new_session=True)
        # Only the harness holds the master now: when it ends, readers see the port vanish, as on an unplug.
        os.close(self._master)
        self._master = None
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def send(self, data: bytes) -> None:
        """Type into the board's serial port, as the host would (used before anyone opened it)."""
        os.write(self._slave, data)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the simulation to end by itself; True if it did."""
        try:
            return self._process is not None and self._process.wait(timeout) is not None
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> str:
        """End the simulation and clean up; returns the harness's report (also in `log`)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self.log = self._log_path.read_text(errors="replace")
            self._process = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self._rows_path.exists():
            self._dir.cleanup()
        return self.log

    def __enter__(self) -> "FirmwareBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def simulate_firmware(*, activity: str = "walking", script: str | None = None, subject: int = 0, seed: int = 0,
                      rate_hz: int = DEFAULT_RATE_HZ, duration: float | None = None, link: Path | None = None,
                      realtime: bool = True) -> int:
    """`harduino simulate --firmware`: the real firmware in simavr on a pseudo-terminal.

    Prints the terminal's path (or `link`, a symlink to it) on stdout, then
    serves until Ctrl-C, `duration` seconds, or the simulation ends. The
    simulated sensor serves synthetic movement (an activity or a script) at
    rate_hz; a rate other than the firmware's default is set with `rate`.
    """
    if not 1 <= rate_hz <= 1000:
        raise UserError(f"rate {rate_hz} Hz is out of range; the firmware samples at 1 to 1000 Hz.")
    n = int(SIMULATE_ROWS_SECONDS * rate_hz)
    if script:
        rows, _ = motion.synth_script(motion.parse_script(script), rate_hz, subject, seed)
    else:
        rows = motion.synth_activity(activity, n, rate_hz, subject, seed)
    with FirmwareBoard(rows, realtime=realtime) as board:
        if link is not None:
            if link.is_symlink():
                link.unlink()
            try:
                os.symlink(board.port, link)
            except OSError as err:
                raise UserError(f"cannot make the link {link}: {err.strerror}.") from None
        try:
            print(link or board.port, flush=True)
            print(f"harduino: the firmware runs in simavr on {board.port}; Ctrl-C stops",
                  file=sys.stderr, flush=True)
            board.start()
            if rate_hz != DEFAULT_RATE_HZ:
                board.send(protocol.command("rate", rate_hz))  # waits in the terminal until the UART listens
            ended = board.wait(duration)
        except KeyboardInterrupt:
            ended = False
        finally:
            if link is not None and link.is_symlink():
                link.unlink()
    if ended:
        report = board.log.strip().splitlines()
        print(f"harduino: the simulation ended by itself: {report[-1] if report else 'no report'}", file=sys.stderr)
        return 1
    return 0
