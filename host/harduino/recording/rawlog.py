"""A session's raw log cut into one log per recording, so each replays to its own recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..protocol import Decoder


def split_raw_log(path: str | Path, parts: list[tuple[Path | None, int | None, int | None]]) -> None:
    """Cut a session's raw log into one log per recording, so each replays to its recording.

    `parts` are (log path, first and last recorded sample), samples counted
    from the log's first: the first path is `path` itself. The log holds the
    board's bytes from an info frame on, for every connection, so its samples
    are the reader's, one for one (samples a board sends before its info frame
    are neither logged nor kept). The reader logs a little past the moment
    recording stopped. Part k > 0 starts at the board's info frame before its
    first sample; each ends after its last sample, or where the next begins.
    The decoder says where each frame lies; the log is read a block at a time.
    """
    path = Path(path)
    wanted = np.array([i if i is not None else -1 for _, first, last in parts for i in (first, last)], np.int64)
    ends = np.full(len(wanted), -1, dtype=np.int64)
    info_starts, decoder, count = [], Decoder(), 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            chunk = decoder.feed(block) if block else decoder.finish()
            info_starts += [start for start, _ in chunk.info_spans]
            here = (wanted >= count) & (wanted < count + len(chunk))
            if here.any():
                ends[here] = chunk.sample_ends[wanted[here] - count]
            count += len(chunk)
            if not block:
                break
    size, info_starts = decoder.stats.bytes_in, np.array(info_starts, dtype=np.int64)
    spans = []
    for k in range(len(parts)):
        first_end, last_end = int(ends[2 * k]), int(ends[2 * k + 1])
        start = 0
        if k:
            before = info_starts[info_starts < first_end] if first_end >= 0 else info_starts[:0]
            start = int(before[-1]) if before.size else spans[-1][1]
        spans.append([start, last_end if last_end >= 0 else None])
    for k in range(len(parts)):  # a part whose last sample was not found ends where the next begins
        if spans[k][1] is None:
            spans[k][1] = spans[k + 1][0] if k + 1 < len(parts) else size
    with open(path, "rb") as src:
        for (log, _, _), (start, end) in list(zip(parts, spans))[1:]:
            if log is None:
                continue
            src.seek(start)
            with open(log, "wb") as dst:  # claimed by the session: empty and its own
                left = max(0, end - start)
                while left:
                    data = src.read(min(left, 1 << 20))
                    if not data:
                        break
                    dst.write(data)
                    left -= len(data)
    if spans and spans[0][1] < size:
        with open(path, "r+b") as f:
            f.truncate(spans[0][1])
