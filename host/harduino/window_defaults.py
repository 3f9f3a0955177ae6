"""The window grid's default size and step, in samples: plain numbers, so the CLI's help names them without
loading numpy. `windowing` (the window grid's home) and everything else take them from here."""

WINDOW = 32          # samples: 0.64 s at 50 Hz
STEP = WINDOW // 2   # a new window every half window


def default_step(window: int) -> int:
    """The step for a window size given without a step: half the window."""
    return max(1, window // 2)
