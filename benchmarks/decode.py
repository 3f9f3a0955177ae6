"""Decoder throughput: our vectorised decoder against two peer-style parsers.

Peers, written here the way most Arduino hosts do it:
  * text lines: the board prints "seq,t,ax,ay,az,gx,gy,gz" and the host does split + float per line;
  * struct loop: binary frames parsed one at a time with bytes.find + struct.unpack, CRC in Python.
All three parse the same samples from bytes held in memory, fed in 4 KiB and 64 KiB reads.
Prints samples/s for each, the ratios, and the 115200-baud wire limit.
"""

from __future__ import annotations

import argparse
import binascii
import struct
import time

import numpy as np

from harduino import protocol

WIRE_FRAMES_PER_S = 115200 / 10 / protocol.SAMPLE_FRAME_LEN  # 10 bits per byte on the UART


def make_stream(n: int) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(0)
    raw = rng.integers(-20000, 20000, size=(n, 6)).astype(np.int16)
    seq, t_us = np.arange(n), np.arange(n) * 10_000
    binary = protocol.encode_samples(seq, t_us, raw)
    lines = np.column_stack([seq, t_us, raw])
    text = ("\n".join(",".join(map(str, row)) for row in lines.tolist()) + "\n").encode()
    return binary, text


def chunks(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(parts) -> int:
    decoder = protocol.Decoder()
    return sum(len(decoder.feed(p)) for p in parts)


def text_lines(parts) -> int:
    count, pending = 0, b""
    for p in parts:
        *lines, pending = (pending + p).split(b"\n")
        for line in lines:
            fields = [float(x) for x in line.split(b",")]
            count += len(fields) == 8
    return count


_FRAME = struct.Struct("<HBHIhhhhhhH")


def struct_frames(buf: bytes) -> tuple[list[tuple], bytes]:
    """The plain way: find each sync, struct.unpack the frame, check its CRC. (frames, bytes left over)."""
    frames, i = [], 0
    while True:
        i = buf.find(protocol.SYNC, i)
        if i < 0 or i + _FRAME.size > len(buf):
            break
        frame = _FRAME.unpack_from(buf, i)
        if binascii.crc_hqx(buf[i + 2 : i + _FRAME.size - 2], 0) == frame[-1]:
            frames.append(frame)
            i += _FRAME.size
        else:
            i += 1
    return frames, (buf[i:] if i >= 0 else buf[-1:])


def struct_loop(parts) -> int:
    count, buf = 0, b""
    for p in parts:
        frames, buf = struct_frames(buf + p)
        count += len(frames)
    return count


def rate(parse, parts, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = parse(parts)
        best = min(best, time.perf_counter() - t0)
        assert got == n, f"{parse.__name__} decoded {got} of {n} samples"
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small stream, one repeat (for tests)")
    args = ap.parse_args()
    n, repeats = (20_000, 1) if args.quick else (300_000, 5)
    binary, text = make_stream(n)
    print(f"decode throughput, {n} samples, one core (best of {repeats})")
    print(f"  {'parser':34s} {'4 KiB reads':>14s} {'64 KiB reads':>14s}")
    parsers = {
        "harduino Decoder (numpy blocks)": (ours, binary),
        "struct.unpack per frame + CRC": (struct_loop, binary),
        "text line split + float": (text_lines, text),
    }
    results = {}
    for name, (parse, data) in parsers.items():
        results[name] = [rate(parse, chunks(data, size), n, repeats) for size in (4096, 65536)]
        print(f"  {name:34s} " + " ".join(f"{r / 1e6:9.2f} M/s " for r in results[name]))
    ours_rates = results["harduino Decoder (numpy blocks)"]
    for peer in ("struct.unpack per frame + CRC", "text line split + float"):
        ratios = " ".join(f"{o / p:11.1f} x  " for o, p in zip(ours_rates, results[peer]))
        print(f"  {'speed-up vs ' + peer.split(' per')[0].split(' split')[0]:34s} {ratios}")
    for size, ours_rate, struct_rate in zip(("4 KiB", "64 KiB"), ours_rates, results["struct.unpack per frame + CRC"]):
        print(f"summary: decode, {size} reads | {ours_rate / 1e6:.2f} M samples/s, {ours_rate / struct_rate:.1f}x the "
              f"struct loop | >= 3x the struct loop, >> {WIRE_FRAMES_PER_S:.0f}/s wire")
    print(f"  115200-baud wire limit: {WIRE_FRAMES_PER_S:.0f} samples/s "
          f"({min(ours_rates) / WIRE_FRAMES_PER_S:,.0f} x headroom at worst)")


if __name__ == "__main__":
    main()
