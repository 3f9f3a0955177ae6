"""Recording from the dashboard: the recording session `harduino record` uses, polled on a thread of its own.

The dashboard's reader is already streaming when the record button is
pressed, so the session's raw log is the reader's copy of the board's own
bytes from that moment on, behind its info frame, cut after the last recorded
sample when recording stops: `replay://` plays it back exactly, as it does one
made by `harduino record`. Writes and fsyncs happen on the recording's thread;
the GUI thread only hands over label changes and takes messages.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import UserError
from ..recording import RecordingSession


class BackgroundRecording(threading.Thread):
    """Records everything a reader receives from now on until `stop()`; `set_label` from any thread."""

    def __init__(self, reader, folder: str | Path, subject: str, labels: tuple[str, ...] = (), label: str = "") -> None:
        super().__init__(name="recorder", daemon=True)
        if reader.info is None:  # the GUI thread does not wait for it
            raise UserError("cannot record yet: the board has not said who it is (no info frame).")
        self.session = RecordingSession(folder, subject, label, labels)
        self.session.start(reader)
        self.reader = reader
        self.path: Path | None = None
        self._stop_event = threading.Event()
        self.start()

    @property
    def label(self) -> str:
        return self.session.label

    @property
    def written(self) -> int:
        return self.session.written

    @property
    def error(self) -> str | None:
        return self.session.error

    def set_label(self, label: str) -> None:
        self.session.set_label(label)

    def take_messages(self) -> list[str]:
        """What the user must be told since the last call (a new file after a board change)."""
        return self.session.take_messages()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self.reader.buffer.wait(self.session.recorder.index, 0.2)
                self.session.poll()
        except UserError:
            pass  # in session.error; finish() says what was kept
        finally:
            self.path = self.session.finish()

    def stop(self) -> Path | None:
        """Finish the recording (saved, closed, raw log written); returns its CSV path."""
        self._stop_event.set()
        self.join()
        return self.path
