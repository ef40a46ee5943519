"""Optimisers and learning-rate schedules.

An optimiser's ``step(pairs)`` takes the ``(param, grad)`` pairs of a backward
pass and updates each ``param`` in place. A parameter may appear in several
pairs (its data gradient and a regularizer's): their gradients are summed first.
"""
import math

import numpy as np

from . import ops


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
        self.lr = lr     # a float: see the property
        self.state = {}  # id(param) -> (param, dict of state arrays); the param is kept so ids stay unique

    @property
    def lr(self):
        """The learning rate, always a Python float, whoever sets it (a schedule may give an
        np.float64): with NumPy 2 a Python float keeps lr * g in float32 for float32
        parameters, as the compiled update computes it, where an np.float64 would make it
        float64 and round differently."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = float(value)

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
        self.lr = state["lr"]
        for i, param in enumerate(params):
            slot = self._slot(param)
            for key in list(state):
                prefix = f"{i}."
                if key.startswith(prefix) and "." not in key[len(prefix):]:
                    value = np.asarray(state[key])
                    if value.ndim == 0:  # a per-parameter scalar (Adam's step count): kept as saved
                        slot[key[len(prefix):]] = value.copy()
                        continue
                    if value.shape != param.shape:
                        raise ValueError(f"{type(self).__name__}: saved state {key} has shape {value.shape}, "
                                         f"parameter {i} has shape {param.shape}")
                    slot[key[len(prefix):]] = value.astype(param.dtype).copy()


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

        g = grad + weight_decay * w
        classical momentum:  v = momentum * v + g             w -= lr * v
        dampened momentum:   v = momentum * v + (1 - dampening) * g        w -= lr * v
        Nesterov:            w -= lr * (g + momentum * v)     after the classical update of v
        no momentum:         w -= lr * g

    As PyTorch, the first step sets v = g (undamped). The VGG practical's form
    mu = m*mu + (1-m)*g starts instead from mu = 0, so its first step is (1-m)*g:
    ``SGD(lr, momentum=m, dampening=m)`` differs from it in that first step only;
    ``DampedMomentumSGD(lr, m)`` is the practical's update exactly.

    With the compiled kernels the last line, w -= lr * step, runs as ``ops.axpy``:
    the same numbers, in one pass over memory instead of a temporary and two; with
    classical or dampened momentum the update of v and of w run together in one pass
    (``ops.momentum_step``, the same numbers again).
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
            grad = grad + self.weight_decay * param                  # g = grad + weight_decay * w
        step = grad                                                  # no momentum: w -= lr * g
        if self.momentum:
            velocity = slot.get("velocity")
            if velocity is None:
                velocity = slot["velocity"] = grad.copy()            # first step: v = g, as PyTorch
            elif ops.BACKEND == "compiled" and not self.nesterov:
                # fast path: the two lines below and w -= lr * v in one pass (ops.momentum_step)
                ops.momentum_step(self.momentum, 1.0 - self.dampening, -self.lr, velocity, grad, param)
                return
            else:
                velocity *= self.momentum                            # v = momentum * v
                velocity += (1.0 - self.dampening) * grad            #     + (1 - dampening) * g
            # Nesterov: w -= lr * (g + momentum * v);  else: w -= lr * v
            step = grad + self.momentum * velocity if self.nesterov else velocity
        if ops.BACKEND == "compiled":   # fast path: the same update in one pass over memory (ops.axpy)
            ops.axpy(-self.lr, step, param)
        else:
            param -= self.lr * step                                  # w -= lr * step


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


# ------------------------------------------------------- more optimisers
def _check_rate(owner, what, value, low, high, high_open=True):
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{owner}: {what} must be in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


class DampedMomentumSGD(SGD):
    """SGD with the damped momentum of the VGG (Oxford) CNN practical, exactly:

        g = grad + weight_decay * w        (the practical's "shrinkage")
        mu = momentum * mu + (1 - momentum) * g,    mu starting at 0
        w -= lr * mu

    The velocity is an exponential moving average of the gradients, so the step
    has the size of one gradient whatever the momentum. Unlike
    ``SGD(lr, momentum=m, dampening=m)`` (PyTorch's rule, v = g on the first
    step) the first step here is (1 - m) * g.
    """

    def __init__(self, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(lr, momentum=momentum, weight_decay=weight_decay, dampening=momentum)
        if self.momentum == 0.0:
            raise ValueError("DampedMomentumSGD: momentum must be in (0, 1); use SGD for plain steps")

    def _update(self, param, grad, slot):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        velocity = slot.get("velocity")
        if velocity is None:
            velocity = slot["velocity"] = np.zeros_like(param)
        velocity *= self.momentum
        velocity += (1.0 - self.momentum) * grad
        param -= self.lr * velocity


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), as PyTorch's ``torch.optim.RMSprop`` with its defaults.

        g = grad + weight_decay * w
        s = alpha * s + (1 - alpha) * g^2          (s starts at 0)
        w -= lr * g / (sqrt(s) + eps)

    Each weight's step is divided by a running root mean square of its own
    gradients, so weights with small gradients take relatively larger steps.
    State per parameter: ``square_avg`` (the shape of the parameter).
    """

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.alpha = _check_rate("RMSprop", "alpha", alpha, 0.0, 1.0)
        self.eps = _check_rate("RMSprop", "eps", eps, 0.0, np.inf)
        self.weight_decay = _check_rate("RMSprop", "weight_decay", weight_decay, 0.0, np.inf)

    def _update(self, param, grad, slot):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        square_avg = slot.get("square_avg")
        if square_avg is None:
            square_avg = slot["square_avg"] = np.zeros_like(param)
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * grad * grad
        param -= self.lr * grad / (np.sqrt(square_avg) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as PyTorch's ``torch.optim.Adam`` (L2 weight decay, not AdamW).

        g = grad + weight_decay * w
        m = beta1 * m + (1 - beta1) * g            (first moment, starts at 0)
        v = beta2 * v + (1 - beta2) * g^2          (second moment, starts at 0)
        t = t + 1
        w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    The divisions by 1 - beta^t undo the bias of moments that start at 0.
    State per parameter: ``exp_avg``, ``exp_avg_sq`` (the parameter's shape) and
    ``step``, a 0-d int64 array, so ``state_dict`` saves the step count and a
    restored optimiser continues with the same bias corrections.
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        if len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_rate("Adam", "beta1", betas[0], 0.0, 1.0),
                      _check_rate("Adam", "beta2", betas[1], 0.0, 1.0))
        self.eps = _check_rate("Adam", "eps", eps, 0.0, np.inf)
        self.weight_decay = _check_rate("Adam", "weight_decay", weight_decay, 0.0, np.inf)

    def _update(self, param, grad, slot):
        beta1, beta2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if "step" not in slot:
            slot["exp_avg"] = np.zeros_like(param)
            slot["exp_avg_sq"] = np.zeros_like(param)
            slot["step"] = np.array(0, dtype=np.int64)
        exp_avg, exp_avg_sq, step = slot["exp_avg"], slot["exp_avg_sq"], slot["step"]
        exp_avg *= beta1
        exp_avg += (1.0 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * grad * grad
        step += 1                                   # in place: the 0-d array stays the saved one
        t = int(step)
        bias_correction1 = 1.0 - beta1 ** t
        bias_correction2 = 1.0 - beta2 ** t
        # PyTorch's arrangement of the same formula (so the two agree to rounding)
        denom = np.sqrt(exp_avg_sq) / bias_correction2 ** 0.5 + self.eps
        param -= (self.lr / bias_correction1) * exp_avg / denom


# ------------------------------------------------------- more schedules
class StepDecay:
    """lr(epoch) = lr * gamma ** floor((epoch - 1) / step_size): multiply by gamma every
    ``step_size`` epochs (epochs count from 1; PyTorch's StepLR at epoch index epoch - 1)."""

    def __init__(self, lr, step_size, gamma=0.1):
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"StepDecay: lr must be a positive number, got {lr}")
        if isinstance(step_size, bool) or int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepDecay: step_size must be a positive integer, got {step_size!r}")
        if not np.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"StepDecay: gamma must be a positive number, got {gamma}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, epoch):
        return self.lr * self.gamma ** ((epoch - 1) // self.step_size)

    def __repr__(self):
        return f"StepDecay(lr={self.lr}, step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay:
    """lr(epoch) = lr * gamma ** (epoch - 1): multiply by gamma every epoch (epochs from 1)."""

    def __init__(self, lr, gamma):
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"ExponentialDecay: lr must be a positive number, got {lr}")
        if not np.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"ExponentialDecay: gamma must be a positive number, got {gamma}")
        self.lr, self.gamma = float(lr), float(gamma)

    def __call__(self, epoch):
        return self.lr * self.gamma ** (epoch - 1)

    def __repr__(self):
        return f"ExponentialDecay(lr={self.lr}, gamma={self.gamma})"


class CosineDecay:
    """Half a cosine from lr down to min_lr over ``total_epochs`` epochs (epochs from 1):

        lr(epoch) = min_lr + (lr - min_lr) * (1 + cos(pi * (epoch - 1) / total_epochs)) / 2

    PyTorch's CosineAnnealingLR(T_max=total_epochs) at epoch index epoch - 1: lr at
    epoch 1, just above min_lr at the last epoch; min_lr from epoch total_epochs + 1 on.
    """

    def __init__(self, lr, total_epochs, min_lr=0.0):
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"CosineDecay: lr must be a positive number, got {lr}")
        if isinstance(total_epochs, bool) or int(total_epochs) != total_epochs or total_epochs < 1:
            raise ValueError(f"CosineDecay: total_epochs must be a positive integer, got {total_epochs!r}")
        if not np.isfinite(min_lr) or not 0 <= min_lr <= lr:
            raise ValueError(f"CosineDecay: min_lr must be in [0, lr], got {min_lr}")
        self.lr, self.total_epochs, self.min_lr = float(lr), int(total_epochs), float(min_lr)

    def __call__(self, epoch):
        progress = min(epoch - 1, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def __repr__(self):
        return f"CosineDecay(lr={self.lr}, total_epochs={self.total_epochs}, min_lr={self.min_lr})"
