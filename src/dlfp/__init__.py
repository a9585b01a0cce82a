"""dlfp: the NumPy library of *Deep Learning, From First Principles*.

``import dlfp`` needs only NumPy. Plotting helpers (:mod:`dlfp.plotting`) need
matplotlib, and the framework code lives in its own modules, imported only where used.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dlfp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
