"""Open any byte source the same way: a real port, `socket://`, `sim://` or `replay://`.

Everything goes through `serial.serial_for_url`, with our handlers registered
the pyserial way, and every failure a user can cause becomes one UserError.
Our package comes first in pyserial's search, so our `socket://` (which counts
the bytes waiting) is the one used; other schemes fall through to pyserial's.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import serial
from serial.tools import list_ports

from .errors import UserError
from .urlhandlers import URLError

HANDLER_PACKAGE = "harduino.urlhandlers"
BY_ID = Path("/dev/serial/by-id")  # udev's stable names: they survive a replug onto another ttyACMn

if HANDLER_PACKAGE not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.insert(0, HANDLER_PACKAGE)


def is_url(port: str) -> bool:
    return "://" in port


def open_port(url: str, timeout: float = 0.1) -> serial.SerialBase:
    """Open a port or URL for reading with the given read timeout (s)."""
    kwargs = {} if is_url(url) else {"exclusive": True, "baudrate": 115200}
    try:
        return serial.serial_for_url(url, timeout=timeout, **kwargs)
    except URLError as err:  # our handlers' own sentence
        raise UserError(str(err)) from None
    except ValueError as err:
        if "protocol" in str(err) and "not known" in str(err):
            scheme = url.split("://", 1)[0]
            raise UserError(f"unknown port URL scheme {scheme + '://'!r}; use a device path, "
                            "socket://, sim:// or replay://.") from None
        raise UserError(f"cannot open {url}: {err}.") from None
    except serial.SerialException as err:
        raise UserError(_explain(url, err)) from None


def _explain(url: str, err: serial.SerialException) -> str:
    code = getattr(err, "errno", None)
    if code == errno.ENOENT:
        return f"no serial port {url}; `harduino ports` lists the ports there are."
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in str(err):
        return f"serial port {url} is busy: another program has it open; close that program first."
    if code == errno.EACCES:
        return f"no permission to open {url}; add yourself to the group that owns it (often dialout)."
    if code == errno.EISDIR:
        return f"{url} is a folder, not a serial port; `harduino ports` lists the ports there are."
    if "Could not configure port" in str(err):  # opened, but termios refuses it: a plain file or device
        return f"{url} is not a serial port (it cannot be set to 115200 baud); `harduino ports` lists the ports."
    return f"cannot open {url}: {err}."


def stable_id(device: str) -> str | None:
    """The /dev/serial/by-id name of a device, if udev gave it one."""
    if not BY_ID.is_dir():
        return None
    real = os.path.realpath(device)
    for link in sorted(BY_ID.iterdir()):
        if os.path.realpath(link) == real:
            return str(link)
    return None


def reopen_path(port: str) -> str:
    """What to open again after the port disappears: its stable id where there is one."""
    if is_url(port) or port.startswith(str(BY_ID)):
        return port
    return stable_id(port) or port


def list_serial_ports() -> list[dict]:
    """Serial ports on this machine: device, description, hardware id and stable id."""
    return [
        {"device": p.device, "description": p.description, "hwid": p.hwid, "stable_id": stable_id(p.device)}
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]
