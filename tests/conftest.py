"""Test set-up shared by every test module."""

import os

# Qt draws real pixels without a screen; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
