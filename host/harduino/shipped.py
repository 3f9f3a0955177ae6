"""The model bundle that ships with Harduino, so live predictions need no training.

An install carries a copy of models/default/ inside the package (as
harduino/default_model/, see setup.py); a checkout and an editable install use
models/default/ itself, so a model retrained there (`make models`) is the one used.
Standard library only: the CLI reads this for its defaults before anything heavy loads.
"""

from __future__ import annotations

from pathlib import Path

_INSTALLED = Path(__file__).resolve().with_name("default_model")
_CHECKOUT = Path(__file__).resolve().parents[2] / "models" / "default"


def default_model() -> Path:
    """The folder of the shipped default model bundle."""
    return _INSTALLED if _INSTALLED.is_dir() else _CHECKOUT
