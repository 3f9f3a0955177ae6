"""Test set-up shared by every test module."""

import os
from pathlib import Path

import pytest

# Qt draws real pixels without a screen; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def elf() -> Path:
    """The firmware built for the simulator.

    `make test` installs the AVR toolchain first; a bare pytest run without it skips, except in CI, where
    it fails: a CI run never passes with the firmware untested.
    """
    from harduino import firmware

    missing = firmware.missing_packages()
    if missing:
        message = (f"the firmware tests need the Debian packages {' '.join(missing)}: "
                   f"`{firmware.install_command(missing)}`, or `make test`, installs them")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return firmware.build_firmware()
