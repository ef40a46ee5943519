"""minidl: a small, readable deep-learning framework in NumPy with a Cython core.

    minidl.layers      Conv, MaxPool, FC, ReLU, SoftmaxCrossEntropy, L2Regularizer, ... (one module per family)
    minidl.ops         im2col / col2im / pooling kernels: compiled, with NumPy references
    minidl.net         Sequential
    minidl.optim       SGD and friends, learning-rate schedules
    minidl.trainer     Trainer (epochs, callbacks, checkpoints), evaluate
    minidl.gradcheck   numerical gradient checks for any layer
    minidl.data        MNIST / Fashion-MNIST / CIFAR-10 loaders
    minidl.metrics     confusion matrix, accuracy, precision, recall
    minidl.viz         filter grids, training plots, worst mistakes
    minidl.runs        what train_mnist.py and train_l2reg.py do
"""
import os

# numpy's OpenBLAS keeps its threads spinning for about 0.1 s after every matrix
# product; in a training step that is the time the compiled kernels (OpenMP) and
# the next small product need the same cores, and steps run 20% slower (35% for
# evaluation). 2**4 cycles of spinning, then sleep. Only effective when minidl is
# imported before numpy (the scripts do so); a value set by the user is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import layers, ops  # noqa: E402
from .net import Sequential  # noqa: E402

__version__ = "0.1.0"
__all__ = ["layers", "ops", "Sequential", "__version__"]
