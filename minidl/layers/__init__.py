"""Layers, one module per family. The contract is documented on ``Layer``."""
from .activations import ReLU
from .base import Layer
from .conv import Conv
from .linear import FC, Flatten
from .losses import Loss, SoftmaxCrossEntropy, log_softmax, softmax
from .pool import MaxPool
from .regularizers import L2Regularizer, RegularizedLoss

__all__ = ["Layer", "Conv", "MaxPool", "FC", "Flatten", "ReLU", "Loss",
           "SoftmaxCrossEntropy", "log_softmax", "softmax", "L2Regularizer", "RegularizedLoss"]
