"""Recording from the dashboard: the recorder `harduino record` uses, run on a thread of its own.

The dashboard's reader is already streaming when the record button is
pressed, so the reader is asked for a raw copy from that moment on: the
board's own bytes from the next frame boundary, behind its info frame, cut
after the last recorded sample when recording stops. `replay://` plays the
recording back exactly, as it does one made by `harduino record`.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

from ..errors import UserError
from ..recording import SessionRecorder, claim_stem, prepare_folder, recording_stem, release


class BackgroundRecording(threading.Thread):
    """Records everything a reader receives from now on until `stop()`; `set_label` from any thread."""

    def __init__(self, reader, folder: str | Path, subject: str, labels: tuple[str, ...] = (), label: str = "") -> None:
        super().__init__(name="recorder", daemon=True)
        folder = prepare_folder(folder)
        stem = claim_stem(folder, recording_stem(subject, label or "session", datetime.datetime.now().astimezone()),
                          (".csv", ".json", ".bin"))
        claimed = [folder / f"{stem}{ext}" for ext in (".csv", ".json", ".bin")]
        self.raw_log = folder / f"{stem}.bin"
        self.reader = reader
        try:
            start = reader.start_raw_copy(self.raw_log)  # UserError before the board's info frame
        except BaseException:
            release(claimed)
            raise
        try:
            self.recorder = SessionRecorder(reader, folder, stem, subject, label, labels, raw_log=self.raw_log,
                                            start_index=start, claimed=True)
        except BaseException:
            reader.stop_raw_copy()
            release(claimed)
            raise
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
        return self.recorder.written

    def take_messages(self) -> list[str]:
        """What the user must be told since the last call (a new file after a board change)."""
        with self._lock:
            messages, self.recorder.messages = self.recorder.messages, []
        return messages

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
            # The copy stops after the last poll, so it holds every recorded sample; close() cuts the rest.
            copy_error = self.reader.stop_raw_copy()
            try:
                self.path = self.recorder.close(self.reader.stats().to_dict())
            except (UserError, OSError) as err:
                self.error = self.error or str(err)
            self.error = self.error or copy_error

    def stop(self) -> Path | None:
        """Finish the recording (saved, closed, raw log written); returns its CSV path."""
        self._stop_event.set()
        self.join()
        return self.path
