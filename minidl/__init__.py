"""minidl: a small, readable deep-learning framework in NumPy with a Cython core.

    from minidl import layers, ops
    from minidl.net import Sequential
    from minidl.optim import SGD, EpochPolicy
    from minidl.trainer import Trainer, evaluate
    from minidl.gradcheck import check_layer
"""
from . import layers, ops
from .net import Sequential

__version__ = "0.1.0"
__all__ = ["layers", "ops", "Sequential", "__version__"]
