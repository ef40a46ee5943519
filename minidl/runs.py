"""What ``train_mnist.py`` and ``train_l2reg.py`` do, as importable functions.

A run trains the lab network on MNIST (or Fashion-MNIST) and leaves in its run
directory:

    config.json            the options of the run
    checkpoint.npz         parameters, optimiser and loop state, after every epoch (atomic)
    filters/*.png          the first layer's filters every N steps and at each epoch end
    training_plot.png      train/validation loss and accuracy, learning rate, per epoch
    metrics.json           per-epoch history, test loss/accuracy, confusion matrix,
                           per-class precision and recall
    worst_test.png         the 20 misclassified test images with the largest loss
    model.npz              the trained parameters

``--resume`` continues from ``checkpoint.npz`` exactly where the run stopped.
"""
import dataclasses
import json
import os
import sys
import time

import numpy as np

from . import metrics, ops, viz
from .checkpoint import atomic_savez, atomic_write_bytes
from .layers import L2Regularizer, RegularizedLoss, SoftmaxCrossEntropy, softmax
from .models import lab_net
from .optim import SGD, EpochPolicy
from .trainer import Callback, NonFiniteLossError, Trainer, evaluate

LAB_LR_POLICY = {1: 1e-1, 3: 1e-2, 5: 1e-3, 7: 1e-4}


@dataclasses.dataclass
class RunConfig:
    """Every option of a training run; the defaults are the lab's."""
    out: str = "runs/mnist"
    data_dir: str = None
    dataset: str = "mnist"
    epochs: int = 8
    batch_size: int = 50
    lr_policy: dict = dataclasses.field(default_factory=lambda: dict(LAB_LR_POLICY))
    momentum: float = 0.0
    weight_decay: float = 0.0          # L2 on conv1, conv2, fc3 weights (train_l2reg.py)
    conv1_width: int = 16
    conv2_width: int = 32
    fc_width: int = 512
    kernel_size: int = 5
    seed: int = 0
    limit: int = None                  # train on the first N training images only
    filter_every: int = 200            # steps between filter images (0: only at epoch ends)
    resume: bool = False
    progress: bool = True
    eval_batch_size: int = 1000

    def to_json(self):
        d = dataclasses.asdict(self)
        d["lr_policy"] = {str(k): v for k, v in self.lr_policy.items()}
        return d


# ------------------------------------------------------------------ callbacks
class ProgressBar(Callback):
    """A tqdm bar per epoch: loss, running accuracy, images/s."""

    def __init__(self, enabled=True, file=None):
        self.enabled = enabled
        self.file = file or sys.stderr
        self.bar = None

    def on_train_begin(self, trainer):
        if self.enabled and trainer.step_in_epoch:
            self._open(trainer, trainer.epoch + 1)

    def on_epoch_begin(self, trainer, epoch):
        if self.enabled:
            self._open(trainer, epoch)

    def _open(self, trainer, epoch):
        from tqdm import tqdm
        self.bar = tqdm(total=None, desc=f"epoch {epoch}", unit="batch", file=self.file,
                        mininterval=0.5, dynamic_ncols=True, leave=True, initial=trainer.step_in_epoch)
        self._smoothed_speed = None

    def on_step_end(self, trainer, info):
        if self.bar is None:
            return
        if self.bar.total is None:
            self.bar.total = info["steps_per_epoch"]
        speed = info["images_per_sec"]
        self._smoothed_speed = speed if self._smoothed_speed is None else 0.95 * self._smoothed_speed + 0.05 * speed
        self.bar.update(1)
        if info["step"] % 20 == 0 or info["step"] == info["steps_per_epoch"]:
            self.bar.set_postfix(loss=f"{info['running_loss']:.4f}", acc=f"{info['running_accuracy']:.4f}",
                                 img_s=f"{self._smoothed_speed:.0f}", lr=f"{info['lr']:.0e}", refresh=False)

    def on_epoch_end(self, trainer, epoch, record):
        self._close()
        val = (f", validation loss {record['val_loss']:.4f} accuracy {record['val_accuracy']:.4f}"
               if "val_loss" in record else "")
        print(f"epoch {epoch}: train loss {record['train_loss']:.4f} accuracy {record['train_accuracy']:.4f}"
              f"{val} ({record['seconds']:.1f} s)", flush=True)

    def on_train_end(self, trainer):
        self._close()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FilterSnapshots(Callback):
    """PNGs of a conv layer's filters every ``every`` steps and at each epoch end,
    named epoch_EE_step_SSSSSS.png with the global step count."""

    def __init__(self, layer, directory, every=200):
        self.layer, self.directory, self.every = layer, directory, every

    def save(self, epoch, step):
        path = os.path.join(self.directory, f"epoch_{epoch:02d}_step_{step:06d}.png")
        viz.save_filter_grid(self.layer.weights, path)
        return path

    def on_train_begin(self, trainer):
        if trainer.global_step == 0:
            self.save(0, 0)  # the random initialisation

    def on_step_end(self, trainer, info):
        if self.every and info["global_step"] % self.every == 0:
            self.save(info["epoch"], info["global_step"])

    def on_epoch_end(self, trainer, epoch, record):
        self.save(epoch, trainer.global_step)


# ------------------------------------------------------------------ the run
def load_dataset(config):
    from .data import load_mnist
    data = load_mnist(data_dir=config.data_dir, dataset=config.dataset)
    return data


def build(config):
    """(net, loss, optimizer, schedule) for a config; L2 on conv1, conv2 and fc3 weights
    when ``config.weight_decay`` > 0 (the lab's regularized model)."""
    net = lab_net(conv1_width=config.conv1_width, conv2_width=config.conv2_width, fc_width=config.fc_width,
                  kernel_size=config.kernel_size, dtype=np.float32, rng=config.seed)
    loss = SoftmaxCrossEntropy()
    if config.weight_decay > 0:
        by_name = {layer.name: layer for layer in net}
        loss = RegularizedLoss(loss, [L2Regularizer(by_name[name].weights, config.weight_decay, name=f"l2_{name}")
                                      for name in ("conv1", "conv2", "fc3")])
    optimizer = SGD(lr=config.lr_policy[min(config.lr_policy)], momentum=config.momentum)
    return net, loss, optimizer, EpochPolicy(config.lr_policy)


def train_run(config, data=None, log=print):
    """Train (or resume) one run; returns a dict of results (see the module docstring).

    Raises NonFiniteLossError if the loss diverges (the last checkpoint stays as it was).
    When the user presses Ctrl-C, the state is saved and the result has "interrupted": True.
    """
    os.makedirs(config.out, exist_ok=True)
    checkpoint_path = os.path.join(config.out, "checkpoint.npz")
    config_path = os.path.join(config.out, "config.json")
    if config.resume:
        if not os.path.exists(checkpoint_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
    elif os.path.exists(checkpoint_path):
        raise FileExistsError(f"{config.out} already holds a run (checkpoint.npz); pass --resume to "
                              f"continue it, or choose another --out")
    _write_json(config_path, config.to_json())

    data = data if data is not None else load_dataset(config)
    train_x, train_y = data.train_x, data.train_y
    if config.limit:
        train_x, train_y = train_x[:config.limit], train_y[:config.limit]
    net, loss, optimizer, schedule = build(config)
    filters = FilterSnapshots(net[0], os.path.join(config.out, "filters"), config.filter_every)
    trainer = Trainer(net, loss, optimizer, schedule, batch_size=config.batch_size, seed=config.seed,
                      callbacks=[ProgressBar(config.progress), filters], eval_batch_size=config.eval_batch_size,
                      checkpoint_path=checkpoint_path)
    if config.resume:
        trainer.load_checkpoint(checkpoint_path)
        log(f"resumed from {checkpoint_path}: {trainer.epoch} epochs and {trainer.step_in_epoch} steps done")
    log(f"minidl {ops.BACKEND} kernels; training on {len(train_x)} images, validating on {len(data.val_x)}, "
        f"batch {config.batch_size}, {config.epochs} epochs")

    started = time.perf_counter()
    trainer.fit(train_x, train_y, config.epochs, data.val_x, data.val_y)
    train_seconds = time.perf_counter() - started
    if trainer.stopped_by_user:
        log(f"interrupted: state saved to {checkpoint_path}; continue with --resume")
        return {"interrupted": True, "checkpoint": checkpoint_path, "history": trainer.history}

    return finish_run(config, net, loss, data, trainer.history, train_seconds, log)


def finish_run(config, net, loss, data, history, train_seconds, log=print):
    """Test evaluation, plot, metrics.json, worst-20 grid and model file."""
    test = evaluate(net, loss, data.test_x, data.test_y, config.eval_batch_size)
    confusion = metrics.confusion_matrix(data.test_y, test["predictions"], 10)
    precision, recall = metrics.precision_recall(confusion)
    cross_entropy = float(test["losses"].mean())
    penalty = f" (cross-entropy {cross_entropy:.4f} + L2 penalty)" if hasattr(loss, "regularizers") else ""
    log(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}{penalty}")
    log(metrics.classification_report(confusion, getattr(data, "class_names", None)))

    plot_path = viz.plot_training(history, os.path.join(config.out, "training_plot.png"))
    worst_path = viz.plot_worst(data.test_x, data.test_y, softmax(test["logits"].astype(np.float64)),
                                os.path.join(config.out, "worst_test.png"), k=20,
                                mean=getattr(data, "mean", 0.0), std=getattr(data, "std", 1.0),
                                class_names=getattr(data, "class_names", None), losses=test["losses"])
    result = {
        "dataset": config.dataset, "backend": ops.BACKEND, "config": config.to_json(),
        "history": history, "train_seconds": train_seconds,
        "test_loss": test["loss"], "test_cross_entropy": cross_entropy, "test_accuracy": test["accuracy"],
        "confusion_matrix": confusion.tolist(),
        "precision": precision.tolist(), "recall": recall.tolist(),
    }
    _write_json(os.path.join(config.out, "metrics.json"), result)
    atomic_savez(os.path.join(config.out, "model.npz"), {name: arr for name, arr in net.params()})
    log(f"wrote {plot_path}, {worst_path}, metrics.json and model.npz in {config.out}")
    result["net"] = net
    return result


def l2_sweep(config, lambdas, data=None, log=print):
    """The lab's regularisation experiment: one run per lambda in ``config.out``/lambda_<value>,
    then a side-by-side figure of first-layer filters and an accuracy table per lambda."""
    data = data if data is not None else load_dataset(config)
    rows, filters = [], {}
    for lam in lambdas:
        run_config = dataclasses.replace(config, weight_decay=float(lam),
                                         out=os.path.join(config.out, f"lambda_{lam:g}"))
        log(f"=== lambda = {lam:g} ===")
        result = train_run(run_config, data=data, log=log)
        if result.get("interrupted"):
            return result
        net = result["net"]
        filters[float(lam)] = net[0].weights.copy()
        rows.append({"lambda": float(lam), "val_accuracy": result["history"][-1].get("val_accuracy"),
                     "test_accuracy": result["test_accuracy"],
                     "conv1_weight_norm": float(np.linalg.norm(net[0].weights))})
    figure = viz.lambda_comparison(filters, os.path.join(config.out, "filters_by_lambda.png"))
    table = format_sweep_table(rows)
    with open(os.path.join(config.out, "lambda_table.md"), "w") as f:
        f.write(table + "\n")
    _write_json(os.path.join(config.out, "lambda_table.json"), rows)
    log(table)
    log(f"wrote {figure} and lambda_table.md in {config.out}")
    return {"rows": rows, "figure": figure}


def format_sweep_table(rows):
    lines = ["| lambda | validation accuracy | test accuracy | conv1 weight norm |", "|---:|---:|---:|---:|"]
    for r in rows:
        val = "" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        lines.append(f"| {r['lambda']:g} | {val} | {r['test_accuracy']:.4f} | {r['conv1_weight_norm']:.3f} |")
    return "\n".join(lines)


def _write_json(path, obj):
    atomic_write_bytes(path, json.dumps(obj, indent=2).encode("utf-8"))


def add_common_arguments(parser, out_default):
    """The options train_mnist.py and train_l2reg.py share; defaults are the lab's."""
    d = RunConfig()
    parser.add_argument("--out", default=out_default, help="run directory (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="where MNIST is cached (default: $MINIDL_DATA, "
                        "else ~/.cache/minidl)")
    parser.add_argument("--dataset", default=d.dataset, choices=["mnist", "fashion-mnist"])
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr-policy", default="1:0.1,3:0.01,5:0.001,7:0.0001",
                        help="learning rate from each epoch on, epoch:lr pairs (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=d.momentum)
    parser.add_argument("--conv1-width", type=int, default=d.conv1_width)
    parser.add_argument("--conv2-width", type=int, default=d.conv2_width)
    parser.add_argument("--fc-width", type=int, default=d.fc_width)
    parser.add_argument("--kernel-size", type=int, default=d.kernel_size)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--filter-every", type=int, default=d.filter_every,
                        help="steps between filter images, 0 for epoch ends only (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_lr_policy(text):
    """'1:0.1,3:0.01' -> {1: 0.1, 3: 0.01}."""
    try:
        policy = {int(k): float(v) for k, v in (item.split(":") for item in text.split(",") if item.strip())}
    except ValueError:
        raise ValueError(f"--lr-policy must be epoch:lr pairs separated by commas, got {text!r}") from None
    EpochPolicy(policy)  # validates
    return policy


def config_from_args(args, **overrides):
    config = RunConfig(out=args.out, data_dir=args.data_dir, dataset=args.dataset, epochs=args.epochs,
                       batch_size=args.batch_size, lr_policy=parse_lr_policy(args.lr_policy),
                       momentum=args.momentum, conv1_width=args.conv1_width, conv2_width=args.conv2_width,
                       fc_width=args.fc_width, kernel_size=args.kernel_size, seed=args.seed, limit=args.limit,
                       filter_every=args.filter_every, resume=args.resume, progress=not args.no_progress)
    return dataclasses.replace(config, **overrides)


def main_guard(fn):
    """Run fn() and turn the expected failures into a message and an exit status."""
    try:
        return fn()
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
