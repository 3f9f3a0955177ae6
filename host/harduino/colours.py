"""The colour of each activity and of each IMU axis, as plain RGB: the dashboard and the PNG figures share them,
so an activity looks the same in both whichever model is loaded."""

from __future__ import annotations

import colorsys

from .live.predictor import UNCERTAIN

CURVE_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f0f0f0")  # x, y, z, then the magnitude
UNCERTAIN_COLOUR = (90, 90, 90)
ACTIVITY_COLOURS = {"still": (78, 121, 167), "walking": (89, 161, 79), "running": (225, 87, 89),
                    "jumping": (242, 142, 43), "waving": (176, 122, 161)}


def class_colour(name: str, classes) -> tuple[int, int, int]:
    """A colour per class: the activities above their own, any other an even share of the hue circle."""
    if name == UNCERTAIN:
        return UNCERTAIN_COLOUR
    if name in ACTIVITY_COLOURS:
        return ACTIVITY_COLOURS[name]
    others = [c for c in classes if c not in ACTIVITY_COLOURS]
    hues = max(len(others), 3)
    hue = (others.index(name) if name in others else 0) % hues * 360 // hues  # whole degrees, as Qt's HSV
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue / 360, 160 / 255, 1.0))
