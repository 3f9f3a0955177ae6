"""`sim://?activity=walking&subject=3&seed=1&rate=50&baud=115200&script=still:5,walking:10&speed=max&drift=0`

A virtual board speaking protocol v1 (see `harduino.simboard.SimBoard`).
activity or script (a schedule that repeats), subject, seed; rate in Hz
(default 50); baud limits what fits on the wire; speed=1 paces frames by the
board clock (the default), speed=max hands them out as fast as they are read;
drift makes the board clock run fast (+ppm) or slow (-ppm) against the host's.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialException

from ..errors import UserError
from ..motion import check_activity, parse_script
from ..simboard import SimBoard, SimSettings
from . import URLError, VirtualPort, blocking_read, check_params, query_of

PARAMS = ("activity", "script", "subject", "seed", "rate", "baud", "speed", "drift")


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
        self.board = SimBoard(self.from_url(self.portstr))
        self.is_open = True

    def from_url(self, url: str) -> SimSettings:
        """What a sim:// URL asks for; URLError naming the parameter that is wrong."""
        query = query_of(urlsplit(url))
        check_params("sim", query, PARAMS)
        if "activity" in query and "script" in query:
            raise URLError("give sim:// either activity= or script=, not both.")
        try:
            if "script" in query:
                script = parse_script(query["script"])
            else:
                script = [(query.get("activity", "walking"), 3600.0)]
                check_activity(script[0][0])
        except UserError as err:
            raise URLError(str(err)) from None
        speed = query.get("speed", "1")
        if speed not in ("1", "max"):
            raise URLError(f"sim:// speed must be 1 (paced by the board clock) or max, not {speed!r}.")
        settings = SimSettings(
            script=script,
            subject=_int_param(query, "subject", 0, 0, 10**6),
            seed=_int_param(query, "seed", 0, 0, 2**32 - 1),
            rate_hz=_int_param(query, "rate", 50, 1, 1000),
            baud=_int_param(query, "baud", 115200, 300, 10_000_000),
            paced=speed == "1",
        )
        if "drift" in query:
            try:
                settings.drift_ppm = float(query["drift"])
            except ValueError:
                raise URLError(f"sim:// drift must be a number of ppm, not {query['drift']!r}.") from None
        return settings

    def close(self):
        if self.board is not None:
            self.board.close()
        self.is_open = False

    def _board(self) -> SimBoard:
        if not self.is_open:
            raise PortNotOpenError()
        return self.board

    @property
    def in_waiting(self):
        return self._board().in_waiting()

    def read(self, size=1):
        board = self._board()
        return blocking_read(self, size, board.take, board.changed)

    def write(self, data):
        return self._board().write(bytes(data))

    def reset_input_buffer(self):
        self._board().discard_input()

    def cancel_read(self):
        if self.board is not None:
            self.board.interrupt()


def _int_param(query: dict, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise URLError(f"sim:// {name} must be a whole number from {low} to {high}, not {text!r}.")
    return value
