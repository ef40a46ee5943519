"""The plumbing of ``train_mnist.py``, ``train_l2reg.py`` and ``train_cifar.py``: options, run directory, outputs.

The scripts show the recipe (data, network, loss, optimiser, learning-rate
policy, ``Trainer.fit``, evaluation); this module does the rest. A run leaves in
its directory (``--out``):

    config.json            the options of the run
    checkpoint.npz         a model file plus the optimiser and loop state, after every
                           epoch and on Ctrl-C (``--resume`` continues from it bit for bit)
    filters/*.png          the first layer's filters every N steps and at each epoch end
    filters_start_end.png  the first layer's filters at initialisation and after training
    training_plot.png      train/validation loss and accuracy, learning rate, per epoch
    metrics.json           per-epoch history, test loss/accuracy, confusion matrix,
                           per-class precision and recall
    worst_test.png         the 20 misclassified test images with the largest loss
    model.npz              the trained network: ``minidl.io.load("model.npz")``

Every option is declared once, in ``parser``; the parsed ``argparse.Namespace``
is the run's configuration (``options(**changes)`` makes one in code). Titles,
logs and metrics.json name the data set as ``DATASETS`` describes it, so a run on
a stand-in is never mistaken for one on the real thing.
"""
import argparse
import functools
import json
import os
import sys
import textwrap

import numpy as np

from . import io, metrics, ops, viz
from .data import DataUnavailableError
from .layers import softmax
from .optim import EpochPolicy
from .trainer import Callback, NonFiniteLossError, evaluate

#: what each ``--dataset`` is, in the words every output of a run uses
DATASETS = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "fashion-mnist-as-cifar": "Fashion-MNIST as CIFAR (a stand-in for CIFAR-10, not CIFAR-10: "
                              "grey 28x28 images padded to 32x32 and repeated over 3 channels)",
}
SCRIPT_DATASETS = {"mnist": ("mnist", "fashion-mnist"), "cifar": ("cifar10", "fashion-mnist-as-cifar")}


# ------------------------------------------------------------------ options
def parse_lr_policy(text):
    """'1:0.1,3:0.01' -> {1: 0.1, 3: 0.01} (the learning rate from each epoch on)."""
    try:
        policy = {int(k): float(v) for k, v in (item.split(":") for item in text.split(",") if item.strip())}
    except ValueError:
        raise ValueError(f"--lr-policy must be epoch:lr pairs separated by commas, got {text!r}") from None
    EpochPolicy(policy)  # validates
    return policy


def _lr_policy_argument(text):
    try:
        return parse_lr_policy(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parser(description, out, script="mnist"):
    """The options of the training scripts, each declared here once; the defaults are
    the labs'. ``out`` is the script's default run directory; ``script`` is "mnist"
    (train_mnist.py, train_l2reg.py: the lab network, whose widths are options) or
    "cifar" (train_cifar.py: the fixed CIFAR-10 network, augmentation, a random
    validation split)."""
    if script not in SCRIPT_DATASETS:
        raise ValueError(f"script must be one of {sorted(SCRIPT_DATASETS)}, got {script!r}")
    cifar = script == "cifar"
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    option = p.add_argument
    option("--out", default=out, help="run directory (default: %(default)s)")
    option("--data-dir", default=None, help="where the datasets are cached (default: $MINIDL_DATA, "
           "else ~/.cache/minidl)")
    datasets = SCRIPT_DATASETS[script]
    option("--dataset", default=datasets[0], choices=datasets, help="(default: %(default)s)" + (
        "; fashion-mnist-as-cifar is an offline stand-in (Fashion-MNIST padded to 32x32, three equal "
        "channels), named as such in every output" if cifar else ""))
    option("--limit", type=positive_int, default=None, help="train on the first N training images only")
    option("--epochs", type=int, default=10 if cifar else 8, help="(default: %(default)s)")
    option("--batch-size", type=positive_int, default=50, help="(default: %(default)s)")
    option("--lr-policy", type=_lr_policy_argument,
           default="1:0.01,7:0.001" if cifar else "1:0.1,3:0.01,5:0.001,7:0.0001",
           help="learning rate from each epoch on, epoch:lr pairs (default: %(default)s)")
    option("--momentum", type=float, default=0.9 if cifar else 0.0, help="SGD momentum (default: %(default)s)")
    option("--weight-decay", type=float, default=1e-4 if cifar else 0.0,
           help="lambda of an L2 penalty on " + ("the weights of every conv and FC layer" if cifar else
                                                  "the conv1, conv2 and fc3 weights") + " (default: %(default)s)")
    if cifar:
        option("--augment", action="store_true",
               help="random crops (4 pixels of zero padding) and horizontal flips of every training batch")
        option("--validation-size", type=positive_int, default=5000,
               help="training images held out for validation, drawn at random with --seed (default: %(default)s)")
    else:
        option("--conv1-width", type=positive_int, default=16, help="filters of conv1 (default: %(default)s)")
        option("--conv2-width", type=positive_int, default=32, help="filters of conv2 (default: %(default)s)")
        option("--fc-width", type=positive_int, default=512,
               help="units of the hidden FC layer (default: %(default)s)")
        option("--kernel-size", type=positive_int, default=5, help="(default: %(default)s)")
    option("--seed", type=int, default=0, help="initial weights and shuffling" + (
        ", augmentation and the validation split" if cifar else "") + " (default: %(default)s)")
    option("--filter-every", type=int, default=200,
           help="steps between filter images, 0 for epoch ends only (default: %(default)s)")
    option("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    option("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def replace(options, **changes):
    """A copy of ``options`` (a Namespace) with some values changed; unknown names are refused."""
    unknown = sorted(set(changes) - set(vars(options)))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(vars(options)))}")
    return argparse.Namespace(**{**vars(options), **changes})


def options(script="mnist", **changes):
    """The default options of a script ("mnist" or "cifar", see ``parser``) with some changed,
    e.g. ``options(out="runs/quick", epochs=1)``."""
    return replace(parser(None, out=f"runs/{script}", script=script).parse_args([]), **changes)


# ------------------------------------------------------------------ callbacks
class ProgressBar(Callback):
    """A tqdm bar per epoch (loss, running accuracy, images/s) and a line per epoch on stdout."""

    def __init__(self, enabled=True, file=None):
        self.enabled = enabled
        self.file = file or sys.stderr
        self.bar = None

    def on_train_begin(self, trainer):
        resumed = (f"; resuming after {trainer.epoch} epochs and {trainer.step_in_epoch} steps"
                   if trainer.global_step else "")
        print(f"minidl {ops.BACKEND} kernels, batch {trainer.batch_size}{resumed}", flush=True)
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


class ValidationMetrics(Callback):
    """After each epoch, the net on the validation split (x (N, C, H, W), y (N,)): loss,
    accuracy, confusion matrix, per-class precision and recall, printed and added to the
    epoch's history entry as val_loss, val_accuracy, val_confusion, val_precision and
    val_recall. The trainer has already written that epoch's checkpoint; it is written
    again with them, so a resumed run's history has them for every epoch.

    Place it before ``ProgressBar`` in the callbacks (which prints the entry), and train
    with ``fit(x, y, epochs)`` alone so the validation split is not evaluated twice.
    """

    def __init__(self, x, y, class_names=None, report=True):
        self.x, self.y, self.class_names, self.report = x, y, class_names, report

    def on_epoch_end(self, trainer, epoch, record):
        result = evaluate(trainer.net, trainer.loss, self.x, self.y, trainer.eval_batch_size)
        confusion = metrics.confusion_matrix(self.y, result["predictions"], result["logits"].shape[1])
        precision, recall = metrics.precision_recall(confusion)
        record.update(val_loss=result["loss"], val_accuracy=result["accuracy"], val_confusion=confusion.tolist(),
                      val_precision=precision.tolist(), val_recall=recall.tolist())
        if trainer.checkpoint_path:
            trainer.save_checkpoint(trainer.checkpoint_path)
        if self.report:
            print(f"validation after epoch {epoch}:\n{metrics.classification_report(confusion, self.class_names)}",
                  flush=True)


# ------------------------------------------------------------ the run directory
class RunDirectory:
    """The ``--out`` directory of one run and the files in it (see the module docstring).

    Creating it writes config.json; it refuses a directory that already holds a
    run unless ``options.resume``, and ``--resume`` without a checkpoint.
    """

    def __init__(self, options):
        self.options = options
        self.path = options.out
        self.checkpoint = self.file("checkpoint.npz")
        if options.resume and not os.path.exists(self.checkpoint):
            raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint}")
        if not options.resume and os.path.exists(self.checkpoint):
            raise FileExistsError(f"{self.path} already holds a run (checkpoint.npz); pass --resume to "
                                  f"continue it, or choose another --out")
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file("config.json"), vars(options))
        self.dataset = DATASETS[options.dataset]
        print(f"data: {self.dataset}", flush=True)

    def file(self, name):
        return os.path.join(self.path, name)

    def title(self, what):
        """A figure title: ``what`` and the data set of the run, wrapped to fit."""
        return textwrap.fill(f"{what}: {self.dataset}", 100)

    def callbacks(self, first_conv, validation=None):
        """Progress bars and snapshots of ``first_conv``'s filters, as the options say; with
        ``validation`` = (x, y, class_names), the per-epoch ``ValidationMetrics`` first."""
        report = [ValidationMetrics(*validation)] if validation is not None else []
        return report + [ProgressBar(self.options.progress),
                         FilterSnapshots(first_conv, self.file("filters"), self.options.filter_every)]

    def write_filters(self, initial, trained, what="First-layer filters"):
        """filters_start_end.png: a filter bank (F, C, KH, KW) at initialisation and after training."""
        return viz.filter_comparison({"initial": initial, "trained": trained}, self.file("filters_start_end.png"),
                                     title=self.title(what))

    def write_results(self, history, test, data, loss):
        """Print the per-class report; write metrics.json, training_plot.png and worst_test.png.

        ``test`` is what ``evaluate`` returned on (data.test_x, data.test_y). Returns the metrics dict.
        """
        num_classes = test["logits"].shape[1]
        confusion = metrics.confusion_matrix(data.test_y, test["predictions"], num_classes)
        precision, recall = metrics.precision_recall(confusion)
        cross_entropy = float(test["losses"].mean())
        if hasattr(loss, "regularizers"):
            print(f"(the test loss is cross-entropy {cross_entropy:.4f} + the L2 penalty)")
        print(metrics.classification_report(confusion, getattr(data, "class_names", None)))
        viz.plot_training(history, self.file("training_plot.png"), title=self.title("Training curves"))
        viz.plot_worst(data.test_x, data.test_y, softmax(test["logits"].astype(np.float64)),
                       self.file("worst_test.png"), k=20, mean=getattr(data, "mean", 0.0),
                       std=getattr(data, "std", 1.0), class_names=getattr(data, "class_names", None),
                       losses=test["losses"], title=self.title("Worst test mistakes"))
        result = {
            "dataset": self.options.dataset, "dataset_description": self.dataset,
            "backend": ops.BACKEND, "config": vars(self.options),
            "history": history, "train_seconds": sum(record["seconds"] for record in history),
            "test_loss": test["loss"], "test_cross_entropy": cross_entropy, "test_accuracy": test["accuracy"],
            "confusion_matrix": confusion.tolist(), "precision": precision.tolist(), "recall": recall.tolist(),
        }
        write_json(self.file("metrics.json"), result)
        print(f"wrote training_plot.png, worst_test.png and metrics.json in {self.path}")
        return result


def write_json(path, obj):
    io.atomic_write_bytes(path, json.dumps(obj, indent=2).encode("utf-8"))


# ------------------------------------------------------------ exit status
class Interrupted(Exception):
    """Ctrl-C stopped training after a whole step; the state is in ``checkpoint``."""

    def __init__(self, checkpoint):
        super().__init__(f"interrupted: the state is saved in {checkpoint}; continue with --resume")
        self.checkpoint = checkpoint


def exit_status(main):
    """Make a script's ``main(argv)`` return its exit status: 0 when it returns; 130 after
    Ctrl-C (``Interrupted``, or a KeyboardInterrupt outside training); 1 when the loss
    diverged (``NonFiniteLossError``); 2 for a refused run directory, a bad value or
    data that cannot be had (``DataUnavailableError``). The reason is printed, not a
    traceback."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            main(argv)
        except Interrupted as exc:
            print(exc, flush=True)
            return 130
        except KeyboardInterrupt:  # outside training (loading data, evaluating, writing the outputs)
            print("interrupted; the last checkpoint in --out is intact (continue with --resume)", flush=True)
            return 130
        except NonFiniteLossError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (FileExistsError, FileNotFoundError, ValueError, DataUnavailableError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    return run


# ------------------------------------------------------------ the L2 experiment
def compare_lambdas(results, out):
    """After one run per lambda (``results``: {lambda: (net, metrics)}): the first layer's
    filters side by side (filters_by_lambda.png) and a table of accuracies and weight
    norms (lambda_table.md and lambda_table.json) in ``out``. Returns the table rows."""
    rows, filters = [], {}
    for lam, (net, run_metrics) in results.items():
        filters[float(lam)] = net[0].weights.copy()
        rows.append({"lambda": float(lam), "val_accuracy": run_metrics["history"][-1].get("val_accuracy"),
                     "test_accuracy": run_metrics["test_accuracy"],
                     "conv1_weight_norm": float(np.linalg.norm(net[0].weights))})
    figure = viz.lambda_comparison(filters, os.path.join(out, "filters_by_lambda.png"))
    table = format_sweep_table(rows)
    io.atomic_write_bytes(os.path.join(out, "lambda_table.md"), (table + "\n").encode("utf-8"))
    write_json(os.path.join(out, "lambda_table.json"), rows)
    print(table)
    print(f"wrote {figure} and lambda_table.md in {out}")
    return rows


def format_sweep_table(rows):
    lines = ["| lambda | validation accuracy | test accuracy | conv1 weight norm |", "|---:|---:|---:|---:|"]
    for r in rows:
        val = "" if r["val_accuracy"] is None else f"{r['val_accuracy']:.4f}"
        lines.append(f"| {r['lambda']:g} | {val} | {r['test_accuracy']:.4f} | {r['conv1_weight_norm']:.3f} |")
    return "\n".join(lines)
