"""argparse `type=` checks for numeric options, so a bad number is refused while parsing, in one line, exit 2.

Each raises `argparse.ArgumentTypeError` with the rest of a sentence ("must be ...,
not VALUE"); the CLI's parser puts the option's name in front (`cli.Parser.error`).
`float()` takes "inf" and "nan", so every float here is checked to be finite too.
"""

from __future__ import annotations

import argparse
import math
import threading

MAX_SEED = 2**32 - 1             # numpy's and scikit-learn's random_state take 0 .. 2**32 - 1
MAX_SECONDS = threading.TIMEOUT_MAX  # longer than this is more than any wait (or timer) can take


def _refuse(rule: str, text: str):
    return argparse.ArgumentTypeError(f"must be {rule}, not {text.strip() or repr(text)}")


def _whole(text: str, lowest: int, rule: str, highest: float = math.inf) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _refuse("a whole number", text) from None
    if not lowest <= value <= highest:
        raise _refuse(rule, text)
    return value


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _refuse("a number", text) from None
    if math.isnan(value):
        raise _refuse("a number", text)
    if math.isinf(value):
        raise _refuse("a finite number", text)
    return value


def positive_int(text: str) -> int:
    """A count: samples, epochs, units, processes (1, 2, ...)."""
    return _whole(text, 1, "a positive number")


def positive_float(text: str) -> float:
    """A finite number above zero (a learning rate, a speed-up)."""
    value = _real(text)
    if value <= 0:
        raise _refuse("a positive number", text)
    return value


def seconds(text: str) -> float:
    """A finite time in seconds, above zero and short enough for a timer to wait it out."""
    value = positive_float(text)
    if value > MAX_SECONDS:
        raise _refuse(f"a positive number of seconds up to {MAX_SECONDS:.0f}", text)
    return value


def seconds_up_to(most: float):
    """A `seconds` check with a smaller upper bound (a span to show, say)."""
    def check(text: str) -> float:
        value = seconds(text)
        if value > most:
            raise _refuse(f"a positive number of seconds up to {most:g}", text)
        return value

    check.__name__ = "seconds"
    return check


def seed(text: str) -> int:
    """A random seed, as numpy and scikit-learn take it."""
    return _whole(text, 0, f"a whole number from 0 to {MAX_SEED}", MAX_SEED)


def probability(text: str) -> float:
    value = _real(text)
    if not 0.0 <= value <= 1.0:
        raise _refuse("a probability between 0 and 1", text)
    return value


def folds(text: str) -> int:
    """The K of K-fold cross-validation: two folds at least (the upper bound depends on the data)."""
    return _whole(text, 2, "at least 2 folds")
