"""Faults a user's set-up does to the system: the port vanishes, the board restarts, the disk fills up.

Each test drives real byte sources (a pseudo-terminal board, the real firmware in simavr, a
raw serial log) and checks what a user would notice afterwards: the recording loads, holds
the samples from before and after the fault with the values the board sent, and says what
happened in its link statistics.

Already proven elsewhere, so not repeated here (tests/test_recording.py):
- the recorder killed with SIGKILL keeps every sample it reported `saved N`
  (test_recorder_killed_with_sigkill_leaves_every_sample_it_reported);
- a file that grows past RLIMIT_FSIZE ends with one error line, exit 2, the saved part loadable
  (test_disk_full_keeps_what_was_saved); here a really full disk (ENOSPC) is tested instead;
- --out naming a file (test_record_bad_input_is_one_clear_sentence).
"""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SCALE, only, raw_counts, saved_counts
from harduino import firmware, motion, protocol, transport
from harduino.ptyserver import PtyBoard
from harduino.reader import LinkState, Reader
from harduino.recording import RecordingNote, load_recording

RECORD = [sys.executable, "-m", "harduino.cli", "record"]
HANG_GUARD_S = 20.0  # a fault that is not survived must fail the test, not hang it; no speed is asserted


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def relink(link: Path, target: str) -> None:
    """Point the stable name at a new terminal, as udev's by-id link follows a replugged board."""
    tmp = link.with_name(link.name + ".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def record_across(link: Path, out: Path, fault, saves_after: int, *extra: str) -> tuple[int, int, int, str]:
    """Record from the stable name through `fault()`; give (exit status, saved before, saved after, stderr)."""
    proc = subprocess.Popen(RECORD + [str(link), "--subject", "s2", "--label", "walking", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = saved_counts(proc, 2)[-1]
        fault()
        after = saved_counts(proc, saves_after)[-1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, before, after, err


# ---------------------------------------------------------------- 1. the port vanishes while recording

def test_recording_survives_the_port_vanishing_and_coming_back(tmp_path):
    rate = 100
    link = tmp_path / "board"  # a stable name, as /dev/serial/by-id gives a real board
    board = PtyBoard(transport.open_port(f"sim://?activity=walking&subject=2&seed=4&rate={rate}"))
    relink(link, board.plug())
    out = tmp_path / "rec"

    def pull_and_replug():
        board.unplug()  # the cable is pulled; the board runs on and its samples meanwhile are lost
        time.sleep(1.0)  # the recorder meets the dead port and waits for it
        relink(link, board.plug())

    try:
        returncode, before, after, err = record_across(link, out, pull_and_replug, 3)
    finally:
        board.close()
    assert returncode == 0, err
    assert after > before > 0

    csv = only(out, "s2_walking_*.csv")
    rec = load_recording(csv)  # loads cleanly: no half-written line, no note
    assert rec.notes == [] and len(rec) >= after
    gaps = np.flatnonzero(np.diff(rec.seq) != 1)
    assert gaps.size == 1, "expected exactly one gap, where the port was gone"
    cut = int(gaps[0]) + 1
    assert before <= cut < len(rec) - 50  # samples from before and well after the gap
    missing = int(rec.seq[cut] - rec.seq[cut - 1] - 1)
    assert missing >= rate // 2  # about a second of movement never reached the host

    # The sidecar says what happened: one reconnect, the missing samples counted as lost.
    link_stats = json.loads(only(out, "*.json").read_text())["link"]
    assert link_stats["reconnects"] == 1 and link_stats["lost"] == missing and link_stats["resets"] == 0

    # Every sample holds what the board sent at that sequence number, before and after the gap.
    for part in (slice(0, cut), slice(cut, len(rec))):
        seq = rec.seq[part]
        sent = motion.synth_activity("walking", len(seq), rate, subject=2, seed=4, t0=int(seq[0]) / rate)
        assert np.array_equal(raw_counts(rec.si[part]), sent)
    # Board time runs on through the gap: t is monotonic and the gap shows in it.
    assert np.all(np.diff(rec.t) > 0)
    assert np.allclose(rec.t, (rec.seq - rec.seq[0]) / rate)
    assert set(rec.labels) == {"walking"}

    # The raw log keeps both connections and replays to the same samples.
    chunk = protocol.Decoder().feed(only(out, "*.bin").read_bytes())
    assert len(chunk.infos) == 2 and chunk.infos[0][0] == 0 and chunk.infos[1][0] == cut
    assert np.array_equal(chunk.seq, rec.seq) and np.array_equal(chunk.raw, raw_counts(rec.si))


# ---------------------------------------------------------------- 2. the real firmware killed and restarted

def through_a_kill_and_restart(tmp_path, elf, rows, rate_hz=None):
    """A reader on a stable link to the firmware, which is killed, then booted again: (reader, stats, samples, before)."""
    link = tmp_path / "board"
    first = firmware.FirmwareBoard(rows, realtime=False, elf=elf)
    second = None
    relink(link, first.port)
    reader = Reader(str(link), rate_hz=rate_hz)
    reader.start()
    try:
        wait_for(lambda: reader.stats().connected or reader.error, "the reader to open the port")
        first.start()
        # More than a second of board time, so the restart cannot pass for a late duplicate frame.
        assert reader.buffer.wait(149, HANG_GUARD_S), reader.stats().line()
        first.stop()  # the simulator is killed: the terminal goes away under the reader
        wait_for(lambda: not reader.stats().connected, "the reader to notice the board is gone")
        before = reader.buffer.total
        assert reader.stats().state is LinkState.LOST and "port lost" in reader.stats().reason

        second = firmware.FirmwareBoard(rows, realtime=False, elf=elf)
        relink(link, second.port)
        wait_for(lambda: reader.stats().reconnects == 1, "the reader to reopen the link")
        second.start()  # the firmware boots again from scratch
        assert reader.buffer.wait(before + 149, HANG_GUARD_S), reader.stats().line()
        return reader, reader.stats(), reader.buffer.since(0), before
    finally:
        reader.stop()
        first.stop()
        if second is not None:
            second.stop()


def test_reader_follows_the_firmware_through_a_kill_and_restart(tmp_path, elf):
    rows = motion.synth_activity("running", 500, 50, subject=1, seed=6)
    reader, stats, block, before = through_a_kill_and_restart(tmp_path, elf, rows)

    assert reader.error is None and stats.connected
    assert stats.reconnects == 1 and stats.resets == 1  # the restart shows as a board reset
    assert stats.lost == 0 and stats.crc_errors == 0
    assert block.start == 0 and before >= 150
    # Both boots streamed the sensor from its first row: every value is the row the board read.
    k = np.concatenate([np.arange(before), np.arange(len(block) - before)])
    np.testing.assert_allclose(block.si, rows[k % len(rows)] * reader.info.si_scale)
    # The buffer's index and board time stay monotonic through the restart.
    assert np.all(np.diff(block.seq) == 1) and np.all(np.diff(block.t_us) > 0)


def test_the_rate_asked_for_is_asked_again_of_a_board_that_boots_again(tmp_path, elf):
    """--rate 100: the firmware powers up at 50 Hz after the restart, is asked again, and streams at 100 Hz."""
    rows = motion.synth_activity("running", 500, 100, subject=1, seed=6)
    reader, stats, block, before = through_a_kill_and_restart(tmp_path, elf, rows, rate_hz=100)
    assert reader.error is None and stats.connected and stats.reconnects == 1
    assert [info.rate_hz for _, info in reader.boards] == [100]  # one board at one rate: nothing at 50 Hz taken
    for part in (block.t_us[:before], block.t_us[before:]):  # 10 ms apart, within the firmware's µs jitter
        assert np.all(np.abs(np.diff(part) - 10_000) <= 100)
    # Each boot's samples are the rows its sensor served, one after another (those before the rate took, dropped).
    counts = np.rint(block.si / reader.info.si_scale).astype(np.int64)
    for part in (counts[:before], counts[before:]):
        first = np.flatnonzero((rows == part[0]).all(axis=1))[0]
        np.testing.assert_array_equal(part, rows[(first + np.arange(len(part))) % len(rows)])


# ---------------------------------------------------------------- 3. the board resets while recording

def test_recording_continues_through_a_board_reset(tmp_path):
    rate = 50
    info = protocol.BoardInfo()
    n1, n2 = 120, 90  # 2.4 s, then the board restarts and counts from 0 again
    raw1 = motion.synth_activity("waving", n1, rate, subject=5, seed=1)
    raw2 = motion.synth_activity("jumping", n2, rate, subject=5, seed=1)
    period = 1_000_000 // rate
    log = tmp_path / "reset.bin"
    log.write_bytes(
        protocol.encode_info(info)
        + protocol.encode_samples(np.arange(n1), 3_000_000 + np.arange(n1) * period, raw1)
        + protocol.encode_info(info)  # what a restarted board says first
        + protocol.encode_samples(np.arange(n2), 40_000 + np.arange(n2) * period, raw2))

    out = tmp_path / "rec"
    proc = subprocess.run(RECORD + [f"replay://{log}?speed=max", "--subject", "s5", "--label", "mixed",
                                    "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"saved {n1 + n2}"

    rec = load_recording(only(out, "*.csv"))
    assert len(rec) == n1 + n2 and rec.notes == []
    assert np.array_equal(raw_counts(rec.si), np.vstack([raw1, raw2]))  # both parts, in order
    assert np.all(np.diff(rec.t) > 0) and np.all(np.diff(rec.seq) > 0)  # time never runs backwards
    assert np.allclose(np.diff(rec.t[:n1]), 1 / rate) and np.allclose(np.diff(rec.t[n1:]), 1 / rate)
    meta = json.loads(only(out, "*.json").read_text())
    assert meta["samples"] == n1 + n2
    assert meta["link"]["resets"] == 1 and meta["link"]["lost"] == 0 and meta["link"]["crc_errors"] == 0


# ---------------------------------------------------------------- 5. the output cannot be written

def test_output_folder_under_a_file_is_one_clear_error_and_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    proc = subprocess.run(RECORD + ["sim://?activity=still&rate=100", "--subject", "s1", "--label", "still",
                                    "--out", str(tmp_path / "notes.txt" / "rec"), "--duration", "1"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("harduino: error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "notes.txt" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine\n"  # the file in the way is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_full_disk_reports_no_sample_that_is_not_on_disk(tmp_path):
    """A real full disk (ENOSPC from a 48 kB tmpfs of the recorder's own), not a size limit on one file."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small disk of its own")
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    kept.mkdir()
    # In a mount namespace of its own: mount the small disk, record onto it until it is full, keep what is there.
    script = ('mount -t tmpfs -o size=48k tmpfs "$1" || exit 99; "$2" -m harduino.cli record "$3" --subject s1 '
              '--label waving --no-calibration --out "$1"; code=$?; cp -a "$1"/. "$4"/; exit $code')
    url = "sim://?activity=waving&subject=1&seed=2&rate=1000"  # faster than the wire: the board skips slots
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(disk), sys.executable, url, str(kept)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode == 99 or proc.stderr.startswith("unshare:"):
        pytest.skip(f"cannot mount a small disk here: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("harduino: error: ") and len(err.splitlines()) == 1 and "the disk is full" in err
    saved = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("saved ")]
    stated = int(err.split("; the ")[1].split()[0])  # "...; the N samples saved before stay loadable."
    assert saved and stated == saved[-1]  # the error and the last `saved N` tell the same story

    with pytest.warns(RecordingNote):  # the disk filled in the middle of a line
        rec = load_recording(only(kept, "*.csv"))
    assert len(rec) >= saved[-1] > 0  # every sample reported saved is on disk
    k = rec.seq - rec.seq[0]
    sent = motion.synth_activity("waving", int(k[-1]) + 1, 1000, subject=1, seed=2, t0=rec.seq[0] / 1000)
    assert np.array_equal(raw_counts(rec.si), sent[k])
    assert sorted(p.suffix for p in kept.iterdir()) == [".bin", ".csv", ".json"]  # no half-written leftovers


# ---------------------------------------------------------------- 6. another board, another rate

def linked_parts(out: Path) -> tuple[list, list[dict]]:
    """The recordings of one session, in order, following the sidecars' links."""
    metas = {p.with_suffix(".csv").name: json.loads(p.read_text()) for p in out.glob("*.json")}
    first = [name for name, meta in metas.items() if "continues" not in meta]
    assert len(first) == 1, metas
    order = first
    while "continued_in" in metas[order[-1]]:
        order.append(metas[order[-1]]["continued_in"])
        assert metas[order[-1]]["continues"] == order[-2]
    assert sorted(order) == sorted(metas)  # every file is in the chain
    return [load_recording(out / name) for name in order], [metas[name] for name in order]


def test_a_board_swapped_for_one_at_another_rate_continues_in_a_new_linked_recording(tmp_path):
    link = tmp_path / "board"
    boards = [PtyBoard(transport.open_port("sim://?activity=walking&subject=2&seed=4&rate=50"))]
    relink(link, boards[0].plug())
    out = tmp_path / "rec"

    def swap_board():
        boards[0].close()  # the board is killed; another one, at 100 Hz, takes its place
        boards.append(PtyBoard(transport.open_port("sim://?activity=walking&subject=3&seed=5&rate=100")))
        relink(link, boards[1].plug())

    try:
        returncode, before, after, err = record_across(link, out, swap_board, 4, "--no-calibration")
    finally:
        for board in boards:
            board.close()
    assert returncode == 0, err
    assert "the board changed" in err and "100 Hz" in err  # said on the terminal
    (a, b), (meta_a, meta_b) = linked_parts(out)
    assert meta_a["rate_hz"] == 50 and meta_a["board"]["rate_hz"] == 50 and meta_a["samples"] == len(a)
    assert meta_b["rate_hz"] == 100 and meta_b["board"]["rate_hz"] == 100 and meta_b["samples"] == len(b)
    assert len(a) >= before and len(a) + len(b) >= after and len(b) > 50
    assert set(a.labels) == set(b.labels) == {"walking"} and a.subject == b.subject == "s2"
    # Each holds its own board's samples, at its own rate, from its own first sample, and has its own raw
    # log: from that board's info frame, decoding (afresh, so with the board's own numbers) to the same samples.
    for rec, rate, subject, seed in ((a, 50, 2, 4), (b, 100, 3, 5)):
        assert np.allclose(np.diff(rec.t), 1 / rate) and rec.t[0] == 0
        chunk = protocol.Decoder().feed(rec.path.with_suffix(".bin").read_bytes())
        assert chunk.infos[0][0] == 0 and {info.rate_hz for _, info in chunk.infos} == {rate}
        assert np.array_equal(chunk.raw, raw_counts(rec.si)) and np.all(np.diff(chunk.seq) == 1)
        sent = motion.synth_activity("walking", len(rec), rate, subject=subject, seed=seed, t0=chunk.seq[0] / rate)
        assert np.array_equal(raw_counts(rec.si), sent)


def test_a_reset_into_another_rate_is_never_windowed_at_the_old_one(tmp_path):
    fast, slow = protocol.BoardInfo(rate_hz=100), protocol.BoardInfo(rate_hz=50)
    raw1 = motion.synth_activity("waving", 150, 100, subject=5, seed=1)
    raw2 = motion.synth_activity("waving", 100, 50, subject=5, seed=1)
    log = tmp_path / "reset.bin"
    log.write_bytes(protocol.encode_info(fast) + protocol.encode_samples(np.arange(150), np.arange(150) * 10_000, raw1)
                    + protocol.encode_info(slow)  # the board came back at 50 Hz
                    + protocol.encode_samples(np.arange(100), np.arange(100) * 20_000, raw2))
    out = tmp_path / "rec"
    proc = subprocess.run(RECORD + [f"replay://{log}?speed=max", "--subject", "s5", "--label", "waving",
                                    "--out", str(out), "--no-calibration"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (a, b), (meta_a, meta_b) = linked_parts(out)
    assert (meta_a["rate_hz"], len(a), meta_b["rate_hz"], len(b)) == (100, 150, 50, 100)
    assert np.array_equal(raw_counts(a.si), raw1) and np.array_equal(raw_counts(b.si), raw2)
    assert np.allclose(np.diff(a.t), 0.01) and np.allclose(np.diff(b.t), 0.02)
    # The two raw logs are the session's log cut at the second info frame: together, byte for byte.
    assert a.path.with_suffix(".bin").read_bytes() + b.path.with_suffix(".bin").read_bytes() == log.read_bytes()


# ---------------------------------------------------------------- 7. a stable name for a simulated board

SIMULATE = [sys.executable, "-m", "harduino.cli", "simulate", "--activity", "still"]


def test_simulate_link_never_takes_a_name_in_use_and_removes_its_own_on_sigterm(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine\n")
    taken = tmp_path / "board"
    taken.symlink_to(mine)
    proc = subprocess.run(SIMULATE + ["--link", str(taken), "--duration", "5"], capture_output=True, text=True,
                          timeout=60)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and err.startswith("harduino: error: ") and len(err.splitlines()) == 1, err
    assert str(taken) in err and "already there" in err and "Traceback" not in err
    assert os.readlink(taken) == str(mine) and mine.read_text() == "mine\n"  # left as it was

    link = tmp_path / "sim"
    first = subprocess.Popen(SIMULATE + ["--link", str(link)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == str(link)
        served = os.readlink(link)
        second = subprocess.run(SIMULATE + ["--link", str(link), "--duration", "5"], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2 and "already there" in second.stderr, second.stderr
        assert os.readlink(link) == served  # the live link still leads to the first simulator
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=HANG_GUARD_S) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert not os.path.lexists(link)  # no dangling link left behind for a recorder to follow
