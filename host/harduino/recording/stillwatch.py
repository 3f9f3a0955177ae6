"""The calibration of a recording taken while it is recorded (a session's parts each get their own)."""

from __future__ import annotations

import numpy as np

from .. import calibration


class StillWatch:
    """The calibration of a recording's samples as they come: `calibration.estimate` on them all, in bounded memory.

    Samples are kept until the first still stretch has ended; while none has
    begun, only the last few seconds (whole 0.5 s blocks, so the blocks line up
    with the file's) are kept. They are looked at once a second of samples.
    """

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self.per = calibration.still_blocks(np.zeros((0, 6)), rate_hz)[1]
        self.keep = (int(np.ceil(calibration.STILL_S * rate_hz / self.per)) + 1) * self.per
        self._t, self._si, self._new = [], [], 0
        self.found: calibration.Calibration | None = None
        self.done = False

    def add(self, t: np.ndarray, si: np.ndarray) -> None:
        if self.done:
            return
        self._t.append(t)
        self._si.append(si)
        self._new += len(t)
        if self._new < 2 * self.per:
            return
        self._new = 0
        t, si = self._joined()
        whole = len(si) // self.per * self.per
        still = calibration.find_still(si[:whole], self.rate_hz)
        if still is not None and still[1] < whole:  # a stretch that has ended: its estimate cannot change
            self.finish()
        elif still is None and whole > self.keep:
            self._t, self._si = [t[whole - self.keep:]], [si[whole - self.keep:]]

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        t, si = np.concatenate(self._t), np.concatenate(self._si)
        self._t, self._si = [t], [si]
        return t, si

    def finish(self) -> calibration.Calibration | None:
        if not self.done:
            t, si = self._joined() if self._t else (np.zeros(0), np.zeros((0, 6)))
            self.found = calibration.estimate(t, si, self.rate_hz) if len(t) else None
            self.done, self._t, self._si = True, [], []
        return self.found
