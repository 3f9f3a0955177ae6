"""pyserial URL handlers: `sim://` (a virtual board), `replay://` (a recorded raw serial log) and `socket://`.

pyserial imports `<package>.protocol_<scheme>` for a URL once this package is in
`serial.protocol_handler_packages`; `harduino.transport` puts it there. Each
handler parses its own URL (`from_url`, as pyserial's do) and raises
`URLError`, a SerialException, for one it cannot open.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable
from urllib.parse import parse_qs

from serial.serialutil import PortNotOpenError, SerialBase, SerialException


class URLError(SerialException):
    """A URL a handler here cannot open, in one sentence a user can act on."""


def query_of(parts) -> dict[str, str]:
    """A URL's query (urlsplit's parts) as {name: last value}."""
    return {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}


def check_params(scheme: str, query: dict, known: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise URLError(f"unknown {scheme}:// parameter {unknown[0]!r}; known: {', '.join(known)}.")


def blocking_read(port: SerialBase, size: int, take: Callable[[int], tuple[bytes, float]],
                  wake: threading.Event) -> bytes:
    """read() as a serial port does it: up to size bytes, returning early only at the port's timeout.

    take(n) hands out up to n bytes there now and the host time when more come by
    themselves (inf: never); wake is set when that may change sooner (a command
    written, the port cancelled or closed).
    """
    if not port.is_open:
        raise PortNotOpenError()
    deadline = None if port.timeout is None else time.monotonic() + port.timeout
    out = bytearray()
    while True:
        wake.clear()
        data, ready_at = take(size - len(out))
        out += data
        now = time.monotonic()
        if len(out) >= size or not port.is_open or (deadline is not None and now >= deadline):
            return bytes(out)
        wait = (ready_at if deadline is None else min(ready_at, deadline)) - now
        wake.wait(None if math.isinf(wait) else max(wait, 0.0))


class VirtualPort(SerialBase):
    """A port with no wires: the modem lines read as connected and setting them does nothing.

    Its bytes wait until they are read (`waits_for_reader`): a reader that must
    miss nothing may read it only as fast as its consumer keeps up.
    """

    waits_for_reader = True

    def _update_rts_state(self):
        pass

    def _update_dtr_state(self):
        pass

    def _update_break_state(self):
        pass

    def _reconfigure_port(self):
        pass

    def reset_output_buffer(self):
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
