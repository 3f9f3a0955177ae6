"""Any port served on a pseudo-terminal, as a USB-serial chip serves a board: `harduino simulate`'s link.

Programs that know nothing of harduino's URLs (a serial monitor, plain pyserial)
open the terminal's path; the port behind it is usually `sim://` (simboard.py),
and `unplug` / `plug` stand in for pulling and replugging the cable.
"""

from __future__ import annotations

import os
import select
import threading
import tty


class PtyBoard:
    """Serves a port (usually sim://) on a pseudo-terminal, as a USB-serial chip would.

    Bytes nobody reads are dropped, not queued, and commands written to the
    terminal go to the board. `unplug()` closes the terminal while the board
    keeps running; `plug()` opens a new one (a new path).
    """

    def __init__(self, port) -> None:
        self.port = port
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._fd_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._to_terminal, daemon=True),
                         threading.Thread(target=self._from_terminal, daemon=True)]

    def plug(self) -> str:
        """Open a fresh pseudo-terminal; returns the path programs open."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        with self._fd_lock:
            # Keep our own slave end open so the master never reports hang-up between readers.
            self._master, self._slave = master, slave
        if not self._threads[0].is_alive():
            for thread in self._threads:
                thread.start()
        return os.ttyname(slave)

    def unplug(self) -> None:
        with self._fd_lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None

    def close(self) -> None:
        self._stop.set()
        self.unplug()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=2)
        self.port.close()

    def _to_terminal(self) -> None:
        while not self._stop.is_set():
            data = self.port.read(self.port.in_waiting or 1)
            with self._fd_lock:
                if data and self._master is not None:
                    try:
                        os.write(self._master, data)
                    except (BlockingIOError, OSError):
                        pass  # nobody reading: the bytes are lost, as on a real link

    def _from_terminal(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(0.1)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.2)
                data = os.read(master, 1024) if ready else b""
            except (OSError, ValueError):
                data = b""
                self._stop.wait(0.1)
            if data:
                self.port.write(data)
