"""Reader thread cost and latency: CPU use streaming 100 Hz from sim://, bytes-to-buffer latency over a pty.

CPU, two ways, each the process's CPU time over wall time while a Reader streams
100 Hz (goal < 2 % of one core):
  * the board (`harduino simulate`, i.e. sim:// on a pseudo-terminal) in another
    process, so only the reader's work is counted, as with a real board;
  * sim:// opened in the reader's own process, the virtual board's signal
    synthesis and pacing counted too.
Latency: a writer thread sends frames into a pseudo-terminal at 100 Hz, the
Reader reads the other end, and a consumer blocked on the buffer notes when each
sample becomes visible; p50/p99 of (arrival - written) and (visible - written).
Replay memory: the peak of Python's allocations (tracemalloc, numpy's included)
while a replay:// port of a small and a ten times larger log opens and plays for
a second, paced (so its decoder runs); the goal is a peak that does not grow with
the log (the whole file and an index of it once took 9x its size).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from harduino import motion, protocol, transport
from harduino.reader import READ_INTERVAL_S, Reader

RATE_HZ = 100


def cpu_use(url: str, seconds: float) -> tuple[float, int, int]:
    reader = Reader(url)
    reader.start()
    if not reader.buffer.wait(0, 10):
        raise SystemExit(f"no samples from {url}: {reader.error or reader.stats().line()}")
    time.sleep(0.5)  # past start-up
    t0, c0, n0 = time.monotonic(), time.process_time(), reader.buffer.total
    time.sleep(seconds)
    wall, cpu, n = time.monotonic() - t0, time.process_time() - c0, reader.buffer.total - n0
    lost = reader.stats().lost
    reader.stop()
    return 100 * cpu / wall, n, lost


def cpu_use_separate_board(seconds: float) -> tuple[float, int, int]:
    board = subprocess.Popen([sys.executable, "-m", "harduino.cli", "simulate", "--rate", str(RATE_HZ)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        return cpu_use(board.stdout.readline().strip(), seconds)
    finally:
        board.terminate()
        board.wait(10)


def latency(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from os.write of each frame to its arrival (read returned) and to its being in the buffer."""
    master, slave = os.openpty()
    raw = motion.synth_activity("walking", samples, RATE_HZ)
    written = np.full(samples, np.nan)
    visible = np.full(samples, np.nan)
    reader = Reader(os.ttyname(slave))
    reader.start()
    time.sleep(0.2)  # the reader has opened the port and asked for info
    os.write(master, protocol.encode_info(protocol.BoardInfo(rate_hz=RATE_HZ)))

    def consume():
        index = 0
        while index < samples and reader.buffer.wait(index, 2.0):
            now = time.monotonic()
            block = reader.buffer.since(index)
            visible[block.seq[block.seq < samples]] = now
            index = block.end

    consumer = threading.Thread(target=consume)
    consumer.start()
    start = time.monotonic() + 0.1
    for k in range(samples):  # a board: one frame per period, on schedule
        time.sleep(max(0.0, start + k / RATE_HZ - time.monotonic()))
        written[k] = time.monotonic()
        os.write(master, protocol.encode_samples([k], [int(k * 1e6 / RATE_HZ)], raw[k : k + 1]))
    consumer.join(5)
    block = reader.buffer.since(0)
    reader.stop()
    os.close(master)
    os.close(slave)
    return block.host_t - written[block.seq], visible - written


def replay_peak_mb(megabytes: int, folder: Path) -> tuple[float, float]:
    """(peak MB allocated, s to open) for a replay of a log of about this size, played for a second."""
    path = folder / f"log-{megabytes}.bin"
    per_block = 1 << 20  # samples a write
    raw = motion.synth_activity("walking", per_block, 50)
    with open(path, "wb") as f:
        f.write(protocol.encode_info(protocol.BoardInfo()))
        k = 0
        while f.tell() < megabytes * 1e6:
            n = min(per_block, int((megabytes * 1e6 - f.tell()) // protocol.SAMPLE_FRAME_LEN) + 1)
            seq = k + np.arange(n)
            f.write(protocol.encode_samples(seq, seq * 20_000, raw[:n]))
            k += n
    tracemalloc.start()
    t0 = time.monotonic()
    port = transport.open_port(f"replay://{path}?speed=1000")
    opened = time.monotonic() - t0
    try:
        while time.monotonic() - t0 < 1.0:
            port.read(port.in_waiting or 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        port.close()
        tracemalloc.stop()
        path.unlink()
    return peak / 1e6, opened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (for tests)")
    args = ap.parse_args()
    seconds, samples = (1.0, 100) if args.quick else (20.0, 2000)
    sizes = (2, 20) if args.quick else (40, 400)

    percent, n, lost = cpu_use_separate_board(seconds)
    print(f"reader CPU, {RATE_HZ} Hz from sim:// served on a pty by another process, {seconds:.0f} s: "
          f"{percent:.2f} % of one core (goal < 2 %; {n} samples, {lost} lost)")
    print(f"summary: reader CPU, 100 Hz, board in another process | {percent:.2f} % of one core | < 2 %")
    percent, n, lost = cpu_use(f"sim://?activity=walking&rate={RATE_HZ}", seconds)
    print(f"reader CPU, {RATE_HZ} Hz from sim:// in the same process (board synthesis included), "
          f"{seconds:.0f} s: {percent:.2f} % of one core ({n} samples, {lost} lost)")
    print(f"summary: reader CPU, 100 Hz, sim:// in the same process | {percent:.2f} % of one core | < 2 %")
    arrival, visible = latency(samples)
    (a50, a99), (v50, v99) = (np.nanpercentile(x, [50, 99]) * 1e3 for x in (arrival, visible))
    print(f"pty write -> read returned, {samples} frames at {RATE_HZ} Hz: latency p50 {a50:.2f} ms, p99 {a99:.2f} ms")
    print(f"pty write -> sample in the buffer, seen by a waiting consumer: latency p50 {v50:.2f} ms, "
          f"p99 {v99:.2f} ms (reads are at most every {READ_INTERVAL_S * 1e3:.0f} ms)")
    print(f"summary: bytes to ring buffer latency | p50 {v50:.1f} ms, p99 {v99:.1f} ms | -")
    with tempfile.TemporaryDirectory() as folder:
        (small, t_small), (large, t_large) = (replay_peak_mb(mb, Path(folder)) for mb in sizes)
    for mb, peak, opened in ((sizes[0], small, t_small), (sizes[1], large, t_large)):
        print(f"replay:// of a {mb} MB log, opened in {opened * 1e3:.0f} ms and played 1 s: "
              f"peak {peak:.1f} MB allocated")
    print(f"summary: replay memory, {sizes[1]} MB log against {sizes[0]} MB | peak {large:.1f} MB, "
          f"{large / small:.2f}x | does not grow with the log")


if __name__ == "__main__":
    main()
