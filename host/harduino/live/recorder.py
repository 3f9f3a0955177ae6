"""Recording from the dashboard: the recorder `harduino record` uses, run on a thread of its own.

The dashboard's reader is already streaming when the record button is
pressed, so there are no raw bytes of this session to keep; the raw log
(`<stem>.bin`) is written at the end from the recorded samples instead, as
the board's own sample frames (the same bytes it sent for them), starting
with its info frame, so `replay://` plays the recording back exactly.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import numpy as np

from .. import protocol
from ..errors import UserError
from ..recording import SessionRecorder, free_stem, load_recording, prepare_folder, recording_stem


def write_raw_log(csv_path: Path, info: protocol.BoardInfo, path: Path) -> None:
    """The recording's samples as protocol frames behind an info frame: a log replay:// plays."""
    rec = load_recording(csv_path)
    raw = np.clip(np.rint(rec.si / info.si_scale), -32768, 32767).astype(np.int16)
    path.write_bytes(protocol.encode_info(info) + protocol.encode_samples(rec.seq, rec.t_us, raw))


class BackgroundRecording(threading.Thread):
    """Records everything a reader receives from now on until `stop()`; `set_label` from any thread."""

    def __init__(self, reader, folder: str | Path, subject: str, labels: tuple[str, ...] = (), label: str = "") -> None:
        super().__init__(name="recorder", daemon=True)
        if reader.info is None:
            raise UserError("cannot record yet: the board has not said who it is (no info frame).")
        folder = prepare_folder(folder)
        stem = free_stem(folder, recording_stem(subject, label or "session", datetime.datetime.now().astimezone()))
        self.raw_log = folder / f"{stem}.bin"
        self.info = reader.info
        self.reader = reader
        self.recorder = SessionRecorder(reader, folder, stem, subject, label, labels, raw_log=self.raw_log,
                                        start_index=reader.buffer.total)
        self.error: str | None = None
        self.path: Path | None = None
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self.start()

    @property
    def label(self) -> str:
        return self.recorder.label

    @property
    def written(self) -> int:
        return self.recorder.writer.written

    def set_label(self, label: str) -> None:
        with self._lock:
            self.recorder.set_label(label)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self.reader.buffer.wait(self.recorder.index, 0.2)
                with self._lock:
                    self.recorder.poll()
            with self._lock:
                self.recorder.poll()
        except UserError as err:
            self.error = str(err)
        finally:
            try:
                self.path = self.recorder.close(self.reader.stats().to_dict())
                if self.recorder.writer.written:
                    write_raw_log(self.path, self.info, self.raw_log)
            except (UserError, OSError) as err:
                self.error = self.error or str(err)

    def stop(self) -> Path | None:
        """Finish the recording (saved, closed, raw log written); returns its CSV path."""
        self._stop_event.set()
        self.join()
        return self.path
