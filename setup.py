"""What pyproject.toml cannot say: the shipped default model goes inside the package.

The package's source root is host/. models/default/ is installed as
harduino/default_model/, so `harduino live` finds the model wherever it runs
(harduino/shipped.py says where to look).
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "host", "harduino.default_model": "models/default"},
    packages=[*find_packages("host"), "harduino.default_model"],
    package_data={"harduino.default_model": ["**/*"]},
)
