"""Optimisers and learning-rate schedules.

An optimiser's ``step(pairs)`` takes the ``(param, grad)`` pairs of a backward
pass and updates each ``param`` in place. A parameter may appear in several
pairs (its data gradient and a regularizer's): their gradients are summed first.
"""
import numpy as np


def merge_pairs(pairs):
    """[(param, grad), ...] -> [(param, summed grad), ...], one entry per distinct array."""
    merged = {}
    order = []
    for param, grad in pairs:
        key = id(param)
        if key in merged:
            merged[key] = (param, merged[key][1] + grad)
        else:
            merged[key] = (param, grad)
            order.append(key)
    return [merged[k] for k in order]


class Optimizer:
    """Keeps per-parameter state keyed by the parameter array itself."""

    def __init__(self, lr):
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr}")
        self.lr = float(lr)
        self.state = {}  # id(param) -> (param, dict of state arrays); the param is kept so ids stay unique

    def _slot(self, param):
        entry = self.state.get(id(param))
        if entry is None:
            entry = self.state[id(param)] = (param, {})
        return entry[1]

    def step(self, pairs):
        for param, grad in merge_pairs(pairs):
            if grad.shape != param.shape:
                raise ValueError(f"{type(self).__name__}: gradient of shape {grad.shape} for a "
                                 f"parameter of shape {param.shape}")
            self._update(param, grad.astype(param.dtype, copy=False), self._slot(param))

    def state_dict(self, params):
        """Optimiser state as {f'{i}.{key}': array} for the parameter list ``params`` (in order)."""
        out = {"lr": np.array(self.lr)}
        for i, param in enumerate(params):
            for key, value in self._slot(param).items():
                out[f"{i}.{key}"] = value
        return out

    def load_state_dict(self, params, state):
        """Restore what ``state_dict(params)`` returned, for the same parameter order."""
        self.lr = float(state["lr"])
        for i, param in enumerate(params):
            slot = self._slot(param)
            for key in list(state):
                prefix = f"{i}."
                if key.startswith(prefix) and "." not in key[len(prefix):]:
                    value = np.asarray(state[key])
                    if value.shape != param.shape:
                        raise ValueError(f"{type(self).__name__}: saved state {key} has shape {value.shape}, "
                                         f"parameter {i} has shape {param.shape}")
                    slot[key[len(prefix):]] = value.astype(param.dtype).copy()


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

        g = grad + weight_decay * w
        classical momentum:  v = momentum * v + g             w -= lr * v
        damped momentum:     v = momentum * v + (1 - m) * g   w -= lr * v   (dampening=momentum,
                                                                        the VGG practical's form)
        Nesterov:            w -= lr * (g + momentum * v)     after the classical update of v
        no momentum:         w -= lr * g
    """

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if nesterov and (momentum == 0.0 or dampening != 0.0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and no dampening")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)
        self.dampening = float(dampening)

    def _update(self, param, grad, slot):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if not self.momentum:
            param -= self.lr * grad
            return
        velocity = slot.get("velocity")
        if velocity is None:
            velocity = slot["velocity"] = grad.copy()  # first step: v = g, as PyTorch
        else:
            velocity *= self.momentum
            velocity += (1.0 - self.dampening) * grad
        if self.nesterov:
            param -= self.lr * (grad + self.momentum * velocity)
        else:
            param -= self.lr * velocity


# ------------------------------------------------------------------ schedules
class EpochPolicy:
    """Piecewise-constant learning rate by epoch, as the lab: {1: 1e-1, 3: 1e-2, 5: 1e-3, 7: 1e-4}.

    ``policy(epoch)`` (epochs count from 1) is the value of the largest key <= epoch.
    """

    def __init__(self, policy):
        if not policy:
            raise ValueError("EpochPolicy: the policy needs at least one {epoch: lr} entry")
        self.policy = {int(k): float(v) for k, v in policy.items()}
        if min(self.policy) > 1:
            raise ValueError(f"EpochPolicy: the policy must say what to use from epoch 1, got {policy}")

    def __call__(self, epoch):
        return self.policy[max(k for k in self.policy if k <= epoch)]

    def __repr__(self):
        return f"EpochPolicy({self.policy})"
