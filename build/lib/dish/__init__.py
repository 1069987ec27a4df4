"""dish: cheap neural architecture search with the Synthetic Petri Dish surrogate."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dish")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
