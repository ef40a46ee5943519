"""Layers, one module per family. The contract is documented on ``Layer``."""
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv
from .dropout import Dropout
from .linear import FC, Flatten
from .losses import Loss, MeanSquaredError, MulticlassHingeLoss, SoftmaxCrossEntropy, log_softmax, softmax
from .norm import BatchNorm, LocalResponseNorm
from .pool import AdaptiveAvgPool, AvgPool, GlobalAvgPool, MaxPool
from .regularizers import L2Regularizer, RegularizedLoss
from .containers import Residual, Sequential, projection_shortcut, resnet_block

__all__ = ["Layer", "Sequential", "Conv", "MaxPool", "FC", "Flatten", "ReLU", "Loss",
           "SoftmaxCrossEntropy", "log_softmax", "softmax", "L2Regularizer", "RegularizedLoss",
           "AvgPool", "AdaptiveAvgPool", "GlobalAvgPool", "Tanh", "Sigmoid", "LeakyReLU", "BatchNorm",
           "LocalResponseNorm", "Dropout", "Residual", "projection_shortcut", "resnet_block",
           "MulticlassHingeLoss", "MeanSquaredError"]
