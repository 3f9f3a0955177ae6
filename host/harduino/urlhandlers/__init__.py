"""pyserial URL handlers: `sim://` (a virtual board) and `replay://` (a recorded raw serial log).

pyserial imports `<package>.protocol_<scheme>` for a URL once this package is in
`serial.protocol_handler_packages`; `harduino.transport.open_port` does that.
"""

from serial.serialutil import SerialBase


class VirtualPort(SerialBase):
    """A port with no wires: the modem lines read as connected and setting them does nothing."""

    def _update_rts_state(self):
        pass

    def _update_dtr_state(self):
        pass

    def _update_break_state(self):
        pass

    @property
    def cts(self):
        return True

    @property
    def dsr(self):
        return True

    @property
    def ri(self):
        return False

    @property
    def cd(self):
        return True
