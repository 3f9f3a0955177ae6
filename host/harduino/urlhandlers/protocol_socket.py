"""`socket://HOST:PORT`: pyserial's TCP handler, with `in_waiting` counting the bytes that are there.

pyserial 3.5 reports readiness (0 or 1) as `in_waiting` (its issue #759), so a
reader taking `in_waiting` bytes a read gets one byte a wake-up. This asks the
socket how many bytes it holds (FIONREAD), as a serial port's driver says.
"""

from __future__ import annotations

import array

from serial.serialutil import PortNotOpenError
from serial.urlhandler import protocol_socket

try:
    import fcntl
    import termios
except ImportError:  # not a POSIX system: pyserial's own answer
    fcntl = None


class Serial(protocol_socket.Serial):
    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        if fcntl is None:
            return super().in_waiting
        count = array.array("i", [0])
        fcntl.ioctl(self._socket.fileno(), termios.FIONREAD, count, True)
        return count[0]
