"""The board's own predictions beside a recording: `<stem>.pred.csv`, appended and synced like its CSV.

Made only when the board sends prediction frames (a firmware with a model built
in). One row per prediction frame, in the order the board sent them; the
sidecar names the file and the model frame (whose classes the scores follow).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .writer import PREDICTIONS_SUFFIX, SyncedFile, disk_error


def predictions_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(PREDICTIONS_SUFFIX)


def prediction_columns(classes: int) -> list[str]:
    """seq and t_us of the window's last sample (t_us -1 if not recorded), the class, a score per class, cycles."""
    return ["seq", "t_us", "class_index", "class", *(f"score_{i}" for i in range(classes)), "cycles"]


class PredictionWriter(SyncedFile):
    """Appends blocks of the board's predictions (ringbuffer.PredictionBlock) to `<stem>.pred.csv`.

    The file is created, exclusively, with the first block; `sync` flushes and fsyncs and
    returns the rows durably saved. A write error is one UserError that says what was kept.
    """

    def __init__(self, csv_path: Path, model) -> None:
        self.path = predictions_path(csv_path)
        self.model = model  # protocol.BoardModelInfo, None if the board sent predictions but no model frame yet
        self.classes = len(model.classes) if model is not None else None

    def meta(self) -> dict:
        model = self.model
        return {"file": self.path.name, "rows": self.written,
                "model": None if model is None else {"id": model.model_id, "classes": list(model.classes),
                                                     "window": model.window, "step": model.step,
                                                     "feature_set": model.feature_set, "rate_hz": model.rate_hz}}

    def append(self, block, keep: np.ndarray) -> None:
        """The predictions of `block` where `keep` is true."""
        n = int(np.count_nonzero(keep))
        if n == 0 or self.failed:
            return
        scores = block.scores[keep]
        if self.classes is None:  # no model frame: as many scores as the board can send
            self.classes = scores.shape[1]
        names = np.asarray([*(self.model.classes if self.model is not None else ()), ""])  # "": not a class
        index = block.class_index[keep]
        named = names[np.where((index >= 0) & (index < len(names) - 1), index, len(names) - 1)]
        columns = [np.char.mod("%d", block.seq[keep]), np.char.mod("%d", block.t_us[keep]),
                   np.char.mod("%d", index), named,
                   *(np.char.mod("%d", scores[:, i]) for i in range(self.classes)),
                   np.char.mod("%d", block.cycles[keep])]
        text = "".join(",".join(row) + "\n" for row in zip(*columns))  # a few rows a second
        self._guard(self._write, text)
        self.written += n

    def _write(self, text: str) -> None:
        if self._file is None:
            self._file = open(self.path, "x", encoding="utf-8", newline="")  # the recording's name, claimed
            self._file.write(",".join(prediction_columns(self.classes)) + "\n")
        self._file.write(text)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as err:
            self.failed, self.written = True, self.saved
            raise UserError(f"cannot write the board's predictions {self.path}: {disk_error(err)}; the "
                            f"{self.saved} rows saved before stay loadable.") from None
