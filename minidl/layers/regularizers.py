"""Weight penalties and the loss that adds them to a data loss."""
import numbers

import numpy as np

from .base import FLOAT_DTYPES


class L2Regularizer:
    """L2 penalty on one parameter array.

        R(w) = (lambda / 2) * sum(w**2)          dR/dw = lambda * w

    ``weights`` is the live parameter array of a layer (e.g. ``conv.weights``);
    ``backward_params()`` returns ``[(weights, lambda * weights)]`` so the
    optimiser adds the penalty's gradient to that parameter's data gradient.
    """

    def __init__(self, weights, weight_decay, name=None):
        self.name = name or "L2Regularizer"
        if not isinstance(weights, np.ndarray):
            raise TypeError(f"L2Regularizer '{self.name}': weights must be a parameter array, "
                            f"got {type(weights).__name__}")
        if weights.dtype not in FLOAT_DTYPES:
            raise ValueError(f"L2Regularizer '{self.name}': weights must be a float32 or float64 parameter "
                             f"array, got dtype {weights.dtype.name}")
        if (isinstance(weight_decay, (bool, np.bool_)) or not isinstance(weight_decay, numbers.Real)
                or not np.isfinite(weight_decay) or weight_decay < 0):
            raise ValueError(f"L2Regularizer '{self.name}': weight_decay must be a finite number >= 0, "
                             f"got {weight_decay!r}")
        self.weights = weights
        self.weight_decay = float(weight_decay)

    def forward(self):
        """The penalty (float)."""
        return 0.5 * self.weight_decay * float(np.sum(self.weights.astype(np.float64) ** 2))

    def backward_params(self):
        """[(weights, lambda * weights)]."""
        return [(self.weights, self.weight_decay * self.weights)]


class RegularizedLoss:
    """A data loss plus a sum of regularizers.

        L_total = L_data(logits, targets) + sum_r R_r(w_r)

    ``backward_inputs`` is that of the data loss (the penalties do not depend on
    the logits); ``backward_params`` collects the regularizers' pairs.
    """

    def __init__(self, data_loss, regularizers):
        self.name = "RegularizedLoss"
        if not (hasattr(data_loss, "forward") and hasattr(data_loss, "backward_inputs")):
            raise TypeError(f"RegularizedLoss: the data loss {type(data_loss).__name__} has no forward(logits, targets) "
                            f"and backward_inputs(logits, targets)")
        self.data_loss = data_loss
        self.regularizers = list(regularizers)
        for reg in self.regularizers:
            if not (hasattr(reg, "forward") and hasattr(reg, "backward_params")):
                raise TypeError(f"RegularizedLoss: the regularizer {type(reg).__name__} has no forward() "
                                f"and backward_params() (use L2Regularizer(layer.weights, weight_decay))")

    def forward(self, logits, targets):
        return self.data_loss.forward(logits, targets) + sum(r.forward() for r in self.regularizers)

    def backward_inputs(self, logits, targets):
        return self.data_loss.backward_inputs(logits, targets)

    def backward_params(self, logits=None, targets=None):
        return [pair for r in self.regularizers for pair in r.backward_params()]
