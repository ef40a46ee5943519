"""minidl: a small, readable deep-learning framework in NumPy with a Cython core.

    minidl.layers      Conv, MaxPool, FC, ReLU, ..., Sequential, Residual (one module per family)
    minidl.ops         the kernels: loop versions (ops.naive), NumPy (ops.reference), compiled;
                       ops.fast, the float32 fast path
    minidl.optim       SGD and friends, learning-rate schedules
    minidl.trainer     Trainer (epochs, callbacks, checkpoints), evaluate
    minidl.gradcheck   numerical gradient checks for any layer
    minidl.data        MNIST / Fashion-MNIST / CIFAR-10 loaders
    minidl.metrics     confusion matrix, accuracy, precision, recall
    minidl.viz         filter grids, training plots, worst mistakes
    minidl.io          model files and checkpoints (one format); load_torch_state_dict
    minidl.functional  forward-only functions with torch.nn.functional's names
    minidl.transforms  batch transforms (crops, flips, shifts, normalise) with an explicit generator
    minidl.models      ready-made networks: lab_net, lenet5, cifar_net, alexnet, resnet18/50, ...
    minidl.runs        the plumbing of the training scripts (options, run directory, outputs)
    minidl.labkit      helpers for the labs in labs/ (photos, blobs, letters, plots)
"""
from . import _settings  # noqa: F401  first: environment defaults, before numpy and OpenMP load
from . import layers, ops
from .layers import Sequential

__version__ = "0.1.0"
__all__ = ["layers", "ops", "Sequential", "__version__"]
