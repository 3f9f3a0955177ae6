"""`sim://?activity=walking&subject=3&seed=1&rate=50&baud=115200&script=still:5,walking:10&speed=max&drift=0`

A virtual board speaking protocol v1 (see `harduino.simboard.SimBoard`).
activity or script (a schedule that repeats), subject, seed; rate in Hz
(default 50); baud limits what fits on the wire; speed=1 paces frames by the
board clock (the default), speed=max hands them out as fast as they are read;
drift makes the board clock run fast (+ppm) or slow (-ppm) against the host's.
"""

from __future__ import annotations

from serial.serialutil import PortNotOpenError, SerialException

from ..simboard import SimBoard, SimSettings
from . import VirtualPort


class Serial(VirtualPort):
    """A serial port whose far end is a SimBoard, booted when the port opens."""

    def __init__(self, *args, **kwargs):
        self.board: SimBoard | None = None
        super().__init__(*args, **kwargs)

    def open(self):
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        self.board = SimBoard(SimSettings.from_url(self._port))
        self.is_open = True

    def close(self):
        if self.board is not None:
            self.board.close()
        self.is_open = False

    def _reconfigure_port(self):
        pass  # the baud rate that matters is the board's, from the URL

    def _board(self) -> SimBoard:
        if not self.is_open:
            raise PortNotOpenError()
        return self.board

    @property
    def in_waiting(self):
        return self._board().in_waiting()

    def read(self, size=1):
        return self._board().read(size, self._timeout)

    def write(self, data):
        return self._board().write(bytes(data))

    def reset_input_buffer(self):
        self._board().discard_input()

    def reset_output_buffer(self):
        pass

    def cancel_read(self):
        if self.board is not None:
            self.board._wake.set()
