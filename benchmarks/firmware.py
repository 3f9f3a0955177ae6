"""Firmware figures: flash and RAM use, the highest rate it sustains at 115200 baud, simulation speed.

The real firmware runs in simavr with a simulated MPU-6050 (harduino.firmware).
Rate sweep: `rate R` is sent for rising R, and the sequence gaps over a stretch
of board time after each info frame are counted; rates and gaps are in
simulated time, so the figure does not depend on how busy this machine is.
Speed: simulated seconds per wall second free-running (as the tests run it) and
in real-time mode (as `harduino simulate --firmware` runs it), with the
harness's CPU use in real-time mode.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from harduino import firmware, motion, protocol
from harduino.transport import open_port

FRAME_BYTES = protocol.SAMPLE_FRAME_LEN
ROWS = motion.synth_activity("running", 2000, 100, subject=2, seed=5)


class Stream:
    """Decodes a port into growing arrays of seq and t_us, and the info frames' positions."""

    def __init__(self, port) -> None:
        self.port, self.decoder = port, protocol.Decoder()
        self.seq: list[np.ndarray] = []
        self.t_us: list[np.ndarray] = []
        self.infos: list[tuple[int, protocol.BoardInfo]] = []
        self.n = 0

    def read(self) -> None:
        chunk = self.decoder.feed(self.port.read(4096))
        self.infos += [(self.n + i, info) for i, info in chunk.infos]
        self.seq.append(chunk.seq)
        self.t_us.append(chunk.t_us)
        self.n += len(chunk)

    def arrays(self, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        self.seq, self.t_us = [np.concatenate(self.seq)], [np.concatenate(self.t_us)]
        return self.seq[0][start:], self.t_us[0][start:]

    def board_seconds_since(self, start: int) -> float:
        if self.n - start < 2:
            return 0.0
        _, t = self.arrays(start)
        return (t[-1] - t[0]) / 1e6


def sweep(rates: list[int], board_seconds: float) -> list[tuple[int, int, int, float]]:
    """(requested Hz, samples, lost, achieved Hz) per rate, each over board_seconds of board time."""
    results = []
    with firmware.FirmwareBoard(ROWS, realtime=False) as board, open_port(board.port) as port:
        board.start()
        stream = Stream(port)
        while not stream.infos:
            stream.read()
        for rate in rates:
            answered = len(stream.infos)
            port.write(protocol.command("rate", rate))
            while len(stream.infos) == answered:  # the info frame that answers `rate`
                stream.read()
            start = stream.infos[-1][0] + 1  # the first interval straddles the change
            while stream.board_seconds_since(start) < board_seconds:
                stream.read()
            seq, t_us = stream.arrays(start)
            lost = int(seq[-1] - seq[0] + 1 - len(seq))
            results.append((rate, len(seq), lost, (len(seq) - 1) / ((t_us[-1] - t_us[0]) / 1e6)))
    return results


def speed(realtime: bool, wall_seconds: float) -> tuple[float, float]:
    """(simulated s per wall s, harness CPU % of one core) streaming 50 Hz for wall_seconds."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with firmware.FirmwareBoard(ROWS, realtime=realtime) as board, open_port(board.port) as port:
        board.start()
        stream = Stream(port)
        while stream.n < 2:
            stream.read()
        first, t0 = stream.n - 1, time.monotonic()
        while time.monotonic() - t0 < wall_seconds:
            stream.read()
        wall = time.monotonic() - t0
        simulated = stream.board_seconds_since(first)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return simulated / wall, 100 * cpu / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (for tests)")
    args = ap.parse_args()
    elf = firmware.build_firmware()

    flash, ram = firmware.firmware_size(elf)
    print(f"firmware size (ATmega328P): flash {flash} bytes of 32256 ({100 * flash / 32256:.1f} %), "
          f"RAM {ram} bytes of 2048 ({100 * ram / 2048:.1f} %) before the stack")

    if args.quick:
        rates, board_seconds, wall_seconds = [200, 400, 460, 480], 0.5, 1.0
    else:
        rates, board_seconds, wall_seconds = [50, 100, 200, 300, 400, *range(420, 521, 10), 600, 1000], 3.0, 5.0
    results = sweep(rates, board_seconds)
    print(f"rate sweep, {board_seconds:g} s of board time each (requested Hz: samples, lost, achieved Hz):")
    for rate, n, lost, achieved in results:
        print(f"  {rate:5d} Hz: {n:5d} samples, {lost:4d} lost, {achieved:7.1f} Hz achieved")
    clean = [rate for rate, _, lost, _ in results if lost == 0]
    first_gap = min((rate for rate, _, lost, _ in results if lost > 0), default=None)
    highest = max((rate for rate in clean if first_gap is None or rate < first_gap), default=0)
    print(f"highest rate without gaps at 115200 baud: {highest} Hz (simulated time)")
    saturated = max(achieved for _, _, _, achieved in results)
    print(f"UART throughput when saturated: {saturated * FRAME_BYTES:.0f} bytes/s of sample frames "
          f"(simavr's UART; a real 8N1 link at 115200 carries 11520 bytes/s)")

    ratio, _ = speed(realtime=False, wall_seconds=wall_seconds)
    print(f"simulated seconds per wall second, free-running: {ratio:.2f}")
    ratio, cpu = speed(realtime=True, wall_seconds=wall_seconds)
    print(f"simulated seconds per wall second, real-time mode: {ratio:.2f} (harness CPU {cpu:.0f} % of one core)")
    print(f"summary: firmware flash / RAM (ATmega328P) | {flash} B / {ram} B | fits 32 KiB / 2 KiB")
    print(f"summary: firmware max rate without gaps, 115200 baud (simavr) | {highest} Hz | >= 200 Hz")


if __name__ == "__main__":
    main()
