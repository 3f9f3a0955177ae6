"""Harduino: real-time human activity recognition from an Arduino IMU."""

__version__ = "0.1.0"
