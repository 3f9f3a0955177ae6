"""The reader thread and its ring buffer, on real byte sources: sim://, replay:// and a pty."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harduino import motion, protocol, transport
from harduino.ptyserver import PtyBoard
from harduino.reader import LinkState, Reader, SampleBuffer

SCALE = protocol.BoardInfo().si_scale


def run_until(reader: Reader, samples: int, timeout: float = 10.0) -> None:
    reader.start()
    assert reader.buffer.wait(samples - 1, timeout), reader.stats().line()


# ---------------------------------------------------------------- SampleBuffer

def _fill(buf, start, n):
    idx = np.arange(start, start + n)
    buf.append(idx, idx * 10, idx * 0.5, np.repeat(idx[:, None], 6, axis=1).astype(float))


def test_buffer_keeps_the_newest_and_indexes_monotonically():
    buf = SampleBuffer(10)
    _fill(buf, 0, 7)
    _fill(buf, 7, 7)
    assert buf.total == 14
    block = buf.since(0)  # 0..3 were overwritten: the block says where it really starts
    assert block.start == 4 and block.seq.tolist() == list(range(4, 14)) and block.end == 14
    assert buf.since(12).seq.tolist() == [12, 13] and len(buf.since(14)) == 0
    latest = buf.latest(3)
    assert latest.start == 11 and latest.t_us.tolist() == [110, 120, 130]
    assert np.array_equal(latest.si[:, 0], [11, 12, 13]) and latest.host_t.tolist() == [5.5, 6.0, 6.5]
    latest.si[:] = -1  # a copy: the buffer is untouched
    assert buf.latest(1).si[0, 0] == 13
    _fill(buf, 14, 25)  # more than the capacity at once
    assert buf.total == 39 and buf.since(0).seq.tolist() == list(range(29, 39))


def test_buffer_wait_wakes_on_append():
    import threading
    buf = SampleBuffer(8)
    assert not buf.wait(0, timeout=0.01)
    threading.Timer(0.05, _fill, (buf, 0, 3)).start()
    assert buf.wait(0, timeout=5) and buf.total == 3


def test_buffer_waiters_each_wake_when_their_own_sample_comes():
    import threading
    buf = SampleBuffer(64)
    woke: dict[int, int] = {}

    def waiter(index):
        assert buf.wait(index, timeout=5)
        woke[index] = buf.total  # how much had come when this waiter saw its sample

    threads = [threading.Thread(target=waiter, args=(i,)) for i in (2, 9)]
    for t in threads:
        t.start()
    while buf.waiting < 2:  # both are waiting before anything comes
        threading.Event().wait(0.005)
    _fill(buf, 0, 4)  # passes index 2 only
    threads[0].join(5)
    assert woke == {2: 4} and threads[1].is_alive()
    _fill(buf, 4, 6)  # passes index 9
    threads[1].join(5)
    assert woke == {2: 4, 9: 10} and buf.waiting == 0


# ---------------------------------------------------------------- Reader on sim://

def test_sim_through_the_reader_is_evenly_spaced_continuous_and_in_si():
    reader = Reader("sim://?activity=waving&subject=3&seed=1&rate=50")
    try:
        run_until(reader, 40)
    finally:
        reader.stop()
    block = reader.buffer.since(0)
    assert np.all(np.diff(block.t_us) == 20_000)  # exactly 1/rate in board time
    assert np.all(np.diff(block.seq) == 1) and reader.stats().lost == 0
    assert reader.info.rate_hz == 50 and np.all(np.diff(block.host_t) >= 0)
    raw = motion.synth_activity("waving", len(block), 50, subject=3, seed=1)
    assert np.array_equal(block.si, raw * reader.info.si_scale)  # SI = raw × the info frame's scale
    stats = reader.stats()
    assert stats.state is LinkState.ENDED and stats.samples == len(block) and stats.crc_errors == 0


def test_raw_log_replays_to_exactly_the_same_samples(tmp_path):
    log = tmp_path / "session.bin"
    live = Reader("sim://?script=still:1,jumping:1&subject=4&seed=3&rate=100&speed=max", raw_log=log)
    try:
        run_until(live, 3000)
    finally:
        live.stop()
    assert protocol.Decoder().feed(log.read_bytes()[: protocol.INFO_FRAME_LEN]).infos  # starts with an info frame
    replay = Reader(f"replay://{log}?speed=max")
    replay.start()
    assert replay.finished.wait(10) and replay.error is None
    a, b = live.buffer.since(0), replay.buffer.since(0)
    assert len(a) >= 3000 and len(b) == len(a)
    assert np.array_equal(a.seq, b.seq) and np.array_equal(a.t_us, b.t_us) and np.array_equal(a.si, b.si)
    assert replay.stats().state is LinkState.ENDED and replay.stats().reason == "end of stream"


def test_replay_loop_repeats_the_log(tmp_path):
    log = tmp_path / "short.bin"
    live = Reader("sim://?rate=100&speed=max", raw_log=log)
    run_until(live, 20)
    live.stop()
    looped = Reader(f"replay://{log}?speed=max&loop=1")
    try:
        run_until(looped, 3 * live.buffer.total)
        assert not looped.finished.is_set()  # a looping replay never ends by itself
    finally:
        looped.stop()
    n = live.buffer.total
    first, again = live.buffer.since(0), looped.buffer.since(0)
    assert np.array_equal(again.si[:n], first.si) and np.array_equal(again.si[n : 2 * n], first.si)
    assert looped.stats().resets >= 2  # each pass starts the board's count again


def test_reader_reports_a_bad_url_instead_of_raising():
    reader = Reader("sim://?nonsense=1")
    reader.start()
    assert reader.finished.wait(5)
    assert "unknown sim:// parameter 'nonsense'" in reader.error
    assert reader.buffer.total == 0


def test_reader_rejects_a_file_that_is_not_a_raw_log(tmp_path):
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"ax,ay,az\n1,2,3\n" * 100)
    reader = Reader(f"replay://{notes}")
    reader.start()
    assert reader.finished.wait(5) and str(notes) in reader.error and "not a raw serial log" in reader.error


def test_drift_between_board_and_host_clock_is_estimated():
    # Arrival times are known to within the reads' phase against the sample period;
    # at 1 kHz that is a fraction of a millisecond, so three seconds pin the slope down.
    reader = Reader("sim://?rate=1000&baud=1000000&drift=4000")
    try:
        run_until(reader, 3000)
    finally:
        reader.stop()
    assert reader.stats().drift_ppm == pytest.approx(4000, abs=600)


# ---------------------------------------------------------------- a real pty that goes away

def test_pty_closed_and_reopened_is_survived_with_the_gap_counted(tmp_path):
    link = tmp_path / "board"  # a stable name, as /dev/serial/by-id gives a real board
    board = PtyBoard(transport.open_port("sim://?rate=100&activity=walking"))
    os.symlink(board.plug(), link)
    reader = Reader(str(link))
    try:
        run_until(reader, 30)
        board.unplug()
        before = reader.buffer.total
        # The board runs on while unplugged; wait until the reader has noticed.
        for _ in range(50):
            if not reader.stats().connected:
                break
            reader.finished.wait(0.05)
        assert reader.stats().state is LinkState.LOST and "port lost" in reader.stats().reason
        reader.finished.wait(0.3)
        os.unlink(link)
        os.symlink(board.plug(), link)
        assert reader.buffer.wait(before + 30, 10)
    finally:
        reader.stop()
        board.close()
    stats = reader.stats()
    block = reader.buffer.since(0)
    gaps = np.diff(block.seq)
    assert stats.reconnects == 1 and stats.lost > 0
    assert np.count_nonzero(gaps != 1) == 1 and gaps.max() - 1 == stats.lost  # one gap, exactly counted
    assert np.all(np.diff(block.t_us) > 0)
