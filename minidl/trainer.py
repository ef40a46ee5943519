"""Mini-batch training and evaluation.

``Trainer.fit`` runs epochs over shuffled mini-batches: forward, loss, backward,
optimiser step. Callbacks see every step and every epoch (progress bars, filter
images and plots plug in there). The whole training state (parameters,
optimiser state, random generator, position inside the epoch, history) goes
into a checkpoint (a model file plus the training state, see ``minidl.io``), so
an interrupted run resumes exactly where it stopped, bit for bit.
"""
import signal
import threading
import time

import numpy as np

from . import io
from .layers.base import call_backprop


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped before the parameters, buffers and
    optimiser state were changed by the failing step."""


class Callback:
    """Hooks called by ``Trainer.fit``; override the ones you need."""

    def on_train_begin(self, trainer):
        """Before the first step (also after a resume)."""

    def on_epoch_begin(self, trainer, epoch):
        """At the start of each epoch (epochs count from 1)."""

    def on_step_end(self, trainer, info):
        """After each optimiser step; ``info`` is a dict (see ``Trainer.fit``)."""

    def on_epoch_end(self, trainer, epoch, record):
        """After each epoch; ``record`` is the epoch's history entry."""

    def on_train_end(self, trainer):
        """After the last epoch, or when training stops early."""


def evaluate(net, loss, x, y, batch_size=1000):
    """Loss and accuracy of ``net`` on (x, y) in evaluation mode, without training.

    Returns {"loss": mean of ``loss`` (cross-entropy if ``loss`` is None), "accuracy":
    fraction correct, "logits": (N, C), "predictions": (N,), "losses": per-example
    cross-entropy (N,), which ranks the worst mistakes whatever the training loss}.
    """
    was_training = getattr(net, "training", True)
    net.train(False)
    try:
        logits = np.concatenate([net.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        net.train(was_training)
    logits64 = logits.astype(np.float64)
    shifted = logits64 - logits64.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    y = np.asarray(y)
    per_example = -log_probs[np.arange(len(y)), y] if y.ndim == 1 else -(y * log_probs).sum(axis=1)
    labels = y if y.ndim == 1 else y.argmax(axis=1)
    predictions = logits.argmax(axis=1)
    if loss is None:
        mean_loss = float(per_example.mean())
    else:  # the loss the net trains on (hinge, MSE, a penalty...), averaged over batches by size
        mean_loss = sum(loss.forward(logits[i:i + batch_size], y[i:i + batch_size]) * len(y[i:i + batch_size])
                        for i in range(0, len(y), batch_size)) / len(y)
    return {"loss": mean_loss, "accuracy": float((predictions == labels).mean()),
            "logits": logits, "predictions": predictions, "losses": per_example}


class _DeferredInterrupt:
    """Turn Ctrl-C into a flag checked between steps, so a step is never cut in half."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    """Train ``net`` on a loss with an optimiser and an optional learning-rate schedule.

    ``loss`` has ``forward(logits, targets)``, ``backward_inputs(logits, targets)``
    and optionally ``backward_params()`` (a ``RegularizedLoss``). ``lr_schedule``
    maps an epoch (from 1) to a learning rate. ``checkpoint_path``: where each
    epoch end (and Ctrl-C) writes the full training state.

    ``transform(x_batch, rng) -> x_batch`` is applied to every training batch
    (N, C, H, W) before the forward pass (augmentation: random crops, flips);
    ``rng`` is ``self.transform_rng``, a generator of its own that checkpoints
    save, so a resumed run draws the same augmentations. Validation and test
    images are never transformed. ``seed`` seeds the shuffling (``self.rng``)
    and, through a child seed, ``transform_rng``.
    """

    def __init__(self, net, loss, optimizer, lr_schedule=None, batch_size=50, seed=0,
                 callbacks=(), eval_batch_size=1000, checkpoint_path=None, transform=None):
        if int(batch_size) < 1:
            raise ValueError(f"Trainer: batch_size must be >= 1, got {batch_size}")
        self.net, self.loss, self.optimizer = net, loss, optimizer
        self.lr_schedule = lr_schedule
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.callbacks = list(callbacks)
        self.checkpoint_path = checkpoint_path
        self.transform = transform
        seed_sequence = np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(seed_sequence)                       # shuffles each epoch
        self.transform_rng = np.random.default_rng(seed_sequence.spawn(1)[0])  # the transform's draws
        self.epoch = 0             # completed epochs
        self.step_in_epoch = 0     # steps done in the current (unfinished) epoch
        self.global_step = 0
        self.history = []          # one dict per completed epoch
        self._epoch_rng_state = None  # generator state before this epoch's shuffle
        self._running = {"loss_sum": 0.0, "correct": 0, "seen": 0}
        self.stopped_by_user = False

    # ---------------------------------------------------------------- steps
    def train_step(self, x, y):
        """One optimiser step on a batch; returns (loss, number correct)."""
        buffers = [(arr, arr.copy()) for _, arr in self.net.buffers()]  # running statistics before forward
        logits = self.net.forward(x)
        # a diverged network gives inf/NaN logits, which the loss itself would reject
        loss_value = self.loss.forward(logits, y) if np.isfinite(logits).all() else float("nan")
        if not np.isfinite(loss_value):
            for arr, before in buffers:  # undo what this forward did to the running statistics
                arr[...] = before
            raise NonFiniteLossError(
                f"the loss is {loss_value} at step {self.step_in_epoch + 1} of epoch {self.epoch + 1} "
                f"(global step {self.global_step + 1}); training stopped before updating the "
                f"parameters, and the last checkpoint is untouched. Try a smaller learning rate.")
        grad_logits = self.loss.backward_inputs(logits, y)
        _, pairs = call_backprop(self.net, grad_logits, need_input_grad=False)
        if hasattr(self.loss, "backward_params"):
            pairs = pairs + self.loss.backward_params()
        self.optimizer.step(pairs)
        labels = y if np.ndim(y) == 1 else np.argmax(y, axis=1)
        return loss_value, int((logits.argmax(axis=1) == labels).sum())

    def current_lr(self, epoch):
        return self.lr_schedule(epoch) if self.lr_schedule is not None else self.optimizer.lr

    # ----------------------------------------------------------------- fit
    def fit(self, x, y, epochs, x_val=None, y_val=None):
        """Train until ``epochs`` epochs are complete (counting those already done).

        Each step calls ``on_step_end`` with {"epoch", "step", "steps_per_epoch",
        "global_step", "loss", "batch_accuracy", "running_loss", "running_accuracy",
        "images_per_sec", "lr"}. Each epoch appends {"epoch", "lr", "train_loss",
        "train_accuracy" (running averages over the epoch), "val_loss",
        "val_accuracy", "seconds"} to ``history``. Returns ``history``.
        """
        n = len(x)
        if len(y) != n:
            raise ValueError(f"Trainer.fit: {n} inputs but {len(y)} targets")
        steps_per_epoch = -(-n // self.batch_size)  # the last batch may be smaller
        self.net.train(True)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with _DeferredInterrupt() as interrupt:
            try:
                while self.epoch < epochs:
                    epoch = self.epoch + 1
                    self.optimizer.lr = self.current_lr(epoch)
                    if self.step_in_epoch == 0:
                        self._epoch_rng_state = io.generator_state(self.rng)
                        self._running = {"loss_sum": 0.0, "correct": 0, "seen": 0}
                        self._epoch_started = time.perf_counter()
                        for cb in self.callbacks:
                            cb.on_epoch_begin(self, epoch)
                    else:  # resuming inside an epoch: replay the same shuffle
                        self.rng.bit_generator.state = self._epoch_rng_state
                        self._epoch_started = time.perf_counter()
                    order = self.rng.permutation(n)
                    tic = time.perf_counter()
                    while self.step_in_epoch < steps_per_epoch:
                        idx = order[self.step_in_epoch * self.batch_size:(self.step_in_epoch + 1) * self.batch_size]
                        xb, yb = x[idx], y[idx]
                        if self.transform is not None:
                            xb = self._transformed(xb)
                        loss_value, correct = self.train_step(xb, yb)
                        self.step_in_epoch += 1
                        self.global_step += 1
                        run = self._running
                        run["loss_sum"] += loss_value * len(idx)
                        run["correct"] += correct
                        run["seen"] += len(idx)
                        toc = time.perf_counter()
                        info = {"epoch": epoch, "step": self.step_in_epoch, "steps_per_epoch": steps_per_epoch,
                                "global_step": self.global_step, "loss": loss_value,
                                "batch_accuracy": correct / len(idx),
                                "running_loss": run["loss_sum"] / run["seen"],
                                "running_accuracy": run["correct"] / run["seen"],
                                "images_per_sec": len(idx) / max(toc - tic, 1e-9),
                                "lr": self.optimizer.lr}
                        tic = toc
                        for cb in self.callbacks:
                            cb.on_step_end(self, info)
                        if interrupt.requested:
                            raise KeyboardInterrupt
                    record = {"epoch": epoch, "lr": self.optimizer.lr,
                              "train_loss": self._running["loss_sum"] / max(self._running["seen"], 1),
                              "train_accuracy": self._running["correct"] / max(self._running["seen"], 1),
                              "seconds": time.perf_counter() - self._epoch_started}
                    if x_val is not None:
                        val = evaluate(self.net, self.loss, x_val, y_val, self.eval_batch_size)
                        record["val_loss"], record["val_accuracy"] = val["loss"], val["accuracy"]
                    self.history.append(record)
                    self.epoch, self.step_in_epoch = epoch, 0
                    if self.checkpoint_path:
                        self.save_checkpoint(self.checkpoint_path)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, epoch, record)
            except KeyboardInterrupt:
                self.stopped_by_user = True
                if self.checkpoint_path:
                    self.save_checkpoint(self.checkpoint_path)
            finally:
                for cb in self.callbacks:
                    cb.on_train_end(self)
        return self.history

    def _transformed(self, x):
        out = self.transform(x, self.transform_rng)
        if not isinstance(out, np.ndarray) or len(out) != len(x):
            shape = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"Trainer: the transform must return an array of {len(x)} inputs, "
                             f"got {shape} from a batch of shape {x.shape}")
        return out

    # --------------------------------------------------------- checkpoints
    def save_checkpoint(self, path):
        """Write a checkpoint (``minidl.io``): a model file of the net plus the optimiser
        state, the loop position, the history and every random generator, atomically."""
        state = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                 "history": self.history, "running": self._running,
                 "rng_state": io.generator_state(self.rng),
                 "epoch_rng_state": self._epoch_rng_state,
                 "transform_rng_state": io.generator_state(self.transform_rng)}
        io.save_checkpoint(path, self.net, self.optimizer, state)

    def load_checkpoint(self, path):
        """Restore a checkpoint written by ``save_checkpoint`` (the same architecture and
        optimiser type) into this trainer; returns the trainer state it read."""
        state = io.load_checkpoint(path, self.net, self.optimizer)
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.history = state["global_step"], state["history"]
        self.rng.bit_generator.state = state["rng_state"]
        self._epoch_rng_state = state["epoch_rng_state"]
        self.transform_rng.bit_generator.state = state["transform_rng_state"]
        self._running = state["running"]
        return state
