"""Pictures of a network and its training: filter grids, training curves, worst mistakes.

Symbols: N images, C channels, H W image size, F filters, KH KW kernel size,
K classes, k how many images are shown.

Every function that writes a file writes a PNG, atomically: the image goes to a
temporary file in the target directory which then replaces the target in one
step (``os.replace``), so a viewer that reloads the file during training never
sees half an image. Paths must end in ``.png``.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, never
through ``pyplot``: nothing here changes the backend you chose, opens a window,
or leaves figures behind in pyplot's list of open figures.
"""
import math
import numbers
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image  # Pillow, which matplotlib itself needs and loads

from .io import atomic_target
from .metrics import _as_index_vector, top_k

__all__ = ["filter_grid", "save_filter_grid", "plot_training", "training_figure",
           "plot_worst", "worst_figure", "lambda_comparison", "lambda_figure",
           "filter_comparison", "filters_figure"]

DPI = 100


# ---------------------------------------------------------------- files and figures

def _check_png_path(path):
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() != ".png":
        raise ValueError(f"{path}: minidl.viz writes PNG files; the path must end in .png")
    return path


def _write_atomically(path, write):
    """Call ``write(tmp_path)`` on a temporary .png beside ``path``, then rename it over ``path``."""
    path = _check_png_path(path)
    with atomic_target(path, suffix=".png") as tmp:
        write(tmp)
    return path


def _new_figure(width, height, layout="constrained"):
    """A Figure (width x height inches) on its own Agg canvas, outside pyplot."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path):
    return _write_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- filter grids

def filter_grid(weights, scale=8, border=1, cols=8, per_channel=None, border_value=255):
    """Tile a filter bank into one uint8 image.

    weights (F, C, KH, KW), any real dtype, finite; KH and KW need not be equal.

    Tiles: C == 1 gives one grey tile per filter and a grey image (H, W);
    C == 3 gives one RGB tile per filter and an image (H, W, 3);
    any other C gives one grey tile per (filter, channel) pair, filter-major
    (filter 0 channels 0..C-1, then filter 1, ...), so ``cols=C`` puts one
    filter on each row. ``per_channel=True`` forces per-channel grey tiles
    for C == 1 or 3 too.

    Values: one min-max normalisation over the whole bank, so tiles are
    comparable: pixel = round(255 * (w - w.min()) / (w.max() - w.min())).
    A constant bank (min == max) is drawn mid-grey (128) everywhere.

    Layout: each kernel pixel becomes a scale x scale block (nearest neighbour,
    no smoothing); tiles are separated by ``border`` pixels of ``border_value``
    (also used for empty slots in the last row), with no outer frame. With
    T tiles, cols' = min(cols, T) columns and rows = ceil(T / cols'):

        H = rows  * KH * scale + (rows  - 1) * border
        W = cols' * KW * scale + (cols' - 1) * border

    Tile i has its top-left corner at ((i // cols') * (KH*scale + border),
    (i % cols') * (KW*scale + border)).
    """
    w = np.asarray(weights)
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"weights must be a non-empty filter bank (F, C, KH, KW), got shape {w.shape}")
    if not (np.issubdtype(w.dtype, np.number) or w.dtype == bool) or np.iscomplexobj(w):
        raise ValueError(f"weights must be real numbers, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or inf; there is nothing meaningful to draw")
    scale = _positive_int(scale, "scale")
    border = _positive_int(border, "border", minimum=0)
    cols = _positive_int(cols, "cols")
    if isinstance(border_value, bool) or not isinstance(border_value, numbers.Integral) \
            or not 0 <= border_value <= 255:
        raise ValueError(f"border_value must be an integer in [0, 255], got {border_value!r}")
    num_filters, channels, kernel_h, kernel_w = w.shape
    if per_channel is None:
        per_channel = channels not in (1, 3)

    low, high = w.min(), w.max()
    if high > low:
        unit = (w - low) / (high - low)
    else:  # a constant bank has no contrast to stretch
        unit = np.full_like(w, 0.5)
    pixels = np.rint(unit * 255.0).astype(np.uint8)

    if per_channel:
        tiles = pixels.reshape(num_filters * channels, kernel_h, kernel_w)
    elif channels == 1:
        tiles = pixels[:, 0]                           # (F, KH, KW)
    else:
        tiles = pixels.transpose(0, 2, 3, 1)           # (F, KH, KW, 3) for an RGB image

    num_tiles = len(tiles)
    grid_cols = min(cols, num_tiles)
    grid_rows = math.ceil(num_tiles / grid_cols)
    tile_h, tile_w = kernel_h * scale, kernel_w * scale
    height = grid_rows * tile_h + (grid_rows - 1) * border
    width = grid_cols * tile_w + (grid_cols - 1) * border
    image = np.full((height, width) + tiles.shape[3:], border_value, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        top = (i // grid_cols) * (tile_h + border)
        left = (i % grid_cols) * (tile_w + border)
        # nearest-neighbour enlargement: repeat every row, then every column, `scale` times
        image[top:top + tile_h, left:left + tile_w] = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
    return image


def save_filter_grid(weights, path, **grid_kw):
    """Write ``filter_grid(weights, **grid_kw)`` to ``path`` (.png) as a uint8 PNG; returns path."""
    image = filter_grid(weights, **grid_kw)
    return _write_atomically(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def _show_grid(axes, grid):
    """Draw a filter_grid image pixel for pixel (grey through a fixed 0..255 colour map)."""
    if grid.ndim == 2:
        axes.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axes.imshow(grid, interpolation="nearest")
    axes.set_axis_off()


def _format_lambda(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):g}"
    return str(value)


def lambda_comparison(filters_by_lambda, path, **grid_kw):
    """Filter grids side by side, one per regularisation strength; writes ``path`` (.png).

    filters_by_lambda: {lambda: weights (F, C, KH, KW)}, drawn left to right in
    the dict's order. Each panel is titled with its lambda and the range of its
    weights: every grid is min-max normalised on its own (see ``filter_grid``),
    so the range is what tells you how much stronger L2 shrank the weights.
    ``grid_kw`` goes to ``filter_grid``. Returns path.
    """
    _check_png_path(path)
    return _save_figure(lambda_figure(filters_by_lambda, **grid_kw), path)


def lambda_figure(filters_by_lambda, **grid_kw):
    """The Figure that ``lambda_comparison`` saves (for a notebook, or to adjust before saving)."""
    if not isinstance(filters_by_lambda, dict) or not filters_by_lambda:
        raise ValueError("filters_by_lambda must be a non-empty dict {lambda: weights (F, C, KH, KW)}")
    return filters_figure({f"λ = {_format_lambda(lam)}": weights for lam, weights in filters_by_lambda.items()},
                          "First-layer filters by L2 regularisation strength", **grid_kw)


def filter_comparison(filters_by_label, path, title=None, **grid_kw):
    """Filter grids side by side, one per label (e.g. "initial" and "trained"); writes ``path`` (.png).

    filters_by_label: {label: weights (F, C, KH, KW)}, drawn left to right. Each panel
    is titled with its label and the range of its weights (every grid is min-max
    normalised on its own, see ``filter_grid``); ``title`` goes above them all.
    Returns path.
    """
    _check_png_path(path)
    return _save_figure(filters_figure(filters_by_label, title, **grid_kw), path)


def filters_figure(filters_by_label, title=None, **grid_kw):
    """The Figure that ``filter_comparison`` saves (for a notebook, or to adjust before saving)."""
    if not isinstance(filters_by_label, dict) or not filters_by_label:
        raise ValueError("filters_by_label must be a non-empty dict {label: weights (F, C, KH, KW)}")
    panels = []
    for label, weights in filters_by_label.items():
        grid = filter_grid(weights, **grid_kw)
        weights = np.asarray(weights, dtype=np.float64)
        panels.append((label, grid, weights.min(), weights.max()))

    # panel widths follow the grids' aspect ratios, so every grid gets the same height
    ratios = [grid.shape[1] / grid.shape[0] for _, grid, _, _ in panels]
    panel_width = 5.0
    grid_height = min(panel_width * len(panels) / sum(ratios), 6.0)
    figure = _new_figure(panel_width * len(panels) + 0.3, grid_height + 0.9)
    axes_row = figure.subplots(1, len(panels), width_ratios=ratios, squeeze=False)[0]
    for axes, (label, grid, low, high) in zip(axes_row, panels):
        _show_grid(axes, grid)
        axes.set_title(f"{label}\nweights in [{low:.3g}, {high:.3g}]", fontsize=11)
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


# ---------------------------------------------------------------- training curves

def _series(history, key):
    """Values of ``key`` over the epochs as float64, NaN where an epoch lacks it; None if no epoch has it."""
    values = [record.get(key) for record in history]
    if all(v is None for v in values):
        return None
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def plot_training(history, path, title=None):
    """Three panels: loss (train/val), accuracy (train/val), learning rate (log scale); writes ``path``.

    history: a list of per-epoch dicts as ``Trainer.fit`` returns, with keys
    "epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr".
    Any key may be missing (validation is often off): a series no epoch has is
    left out, an epoch missing a value leaves a gap. Epochs are numbered
    1, 2, ... when "epoch" is absent. The learning rate falls back to a linear
    axis if some value is not positive. ``title`` goes above the panels (say which
    data the run trained on). Returns path.
    """
    _check_png_path(path)
    return _save_figure(training_figure(history, title), path)


def training_figure(history, title=None):
    """The Figure that ``plot_training`` saves (for a notebook, or to adjust before saving)."""
    if isinstance(history, dict):
        raise ValueError("history must be a list of per-epoch dicts, got one dict")
    history = list(history)
    if not history:
        raise ValueError("history is empty: there is no epoch to plot")
    if not all(isinstance(record, dict) for record in history):
        raise ValueError("history must be a list of per-epoch dicts")
    epochs = _series(history, "epoch")
    if epochs is None or np.isnan(epochs).any():
        epochs = np.arange(1, len(history) + 1, dtype=np.float64)

    figure = _new_figure(15, 4.2)
    loss_axes, accuracy_axes, lr_axes = figure.subplots(1, 3)
    style = {"marker": "o", "linewidth": 2, "markersize": 4}
    panels = ((loss_axes, "Cross-entropy loss", "loss", ("train_loss", "val_loss")),
              (accuracy_axes, "Accuracy", "accuracy", ("train_accuracy", "val_accuracy")))
    for axes, panel_title, ylabel, keys in panels:
        drawn = 0
        for key, label, colour in zip(keys, ("train", "validation"), ("tab:purple", "tab:cyan")):
            values = _series(history, key)
            if values is not None:
                axes.plot(epochs, values, color=colour, label=label, **style)
                drawn += 1
        if drawn:
            axes.legend()
        else:
            axes.text(0.5, 0.5, f"no {ylabel} recorded", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(panel_title)
        axes.set_ylabel(ylabel)

    lr = _series(history, "lr")
    if lr is not None:
        lr_axes.plot(epochs, lr, color="tab:purple", **style)
        finite = lr[np.isfinite(lr)]
        if finite.size and np.all(finite > 0):
            lr_axes.set_yscale("log")
    else:
        lr_axes.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center",
                     transform=lr_axes.transAxes)
    lr_axes.set_title("Learning rate")
    lr_axes.set_ylabel("lr")

    for axes in (loss_axes, accuracy_axes, lr_axes):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:  # a lone point would get an axis of fractional epochs around it
            axes.set_xlim(epochs[0] - 1, epochs[0] + 1)
        axes.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


# ---------------------------------------------------------------- worst mistakes

WORST_COLS = 5


def _display_images(images, mean, std):
    """Un-normalise images (n, C, H, W) and return uint8 (n, H, W) or (n, H, W, 3) for display.

    x * std + mean, with mean/std scalars or per-channel (C,). If every result
    lies in [0, 1] (give or take rounding error) it is read as a 0..1 image,
    otherwise as a 0..255 image; either way it is clipped to the valid range.
    """
    channels = images.shape[1]
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    for name, value in (("mean", mean), ("std", std)):
        if value.size not in (1, channels) or value.ndim > 1:
            raise ValueError(f"{name} must be a scalar or have one value per channel ({channels}), "
                             f"got shape {value.shape}")
    raw = images * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
    # normalising and un-normalising in float32 leaves errors like 1.0000001, hence the slack
    if raw.size and raw.min() >= -0.01 and raw.max() <= 1.01:
        raw = raw * 255.0
    pixels = np.rint(np.clip(raw, 0.0, 255.0)).astype(np.uint8)
    return pixels[:, 0] if channels == 1 else pixels.transpose(0, 2, 3, 1)


def plot_worst(images, labels, probs, path, k=20, mean=0.0, std=1.0, class_names=None, losses=None,
               title=None):
    """The k misclassified images with the largest loss, in a grid of 5 columns; writes ``path``.

    images (N, C, H, W) with C = 1 (grey) or 3 (RGB), normalised as the network
    saw them; ``mean`` and ``std`` (scalars or (C,)) undo that: shown = x * std + mean.
    labels (N,) true classes; probs (N, K) predicted class probabilities;
    losses (N,) per-example loss, by default -log probs[n, labels[n]].
    An image is misclassified when argmax(probs) differs from its label.
    Each panel is titled "true X  (loss L)", "pred a p_a", "b p_b,  c p_c": the
    true class and the top 3 predictions with their probabilities.
    Fewer than k mistakes: all of them are shown; none: the figure says so.
    ``title`` is a first line above the figure's own (say which data these are).
    Returns path.
    """
    _check_png_path(path)
    return _save_figure(worst_figure(images, labels, probs, k=k, mean=mean, std=std,
                                     class_names=class_names, losses=losses, title=title), path)


def worst_figure(images, labels, probs, k=20, mean=0.0, std=1.0, class_names=None, losses=None, title=None):
    """The Figure that ``plot_worst`` saves (for a notebook, or to adjust before saving)."""
    images = np.asarray(images, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W) with C = 1 or 3, got shape {images.shape}")
    if probs.ndim != 2 or probs.shape[0] != images.shape[0] or probs.shape[1] == 0:
        raise ValueError(f"probs must be (N, K) with N = {images.shape[0]} images, got shape {probs.shape}")
    num_images, num_classes = probs.shape
    labels = _as_index_vector(labels, "labels")
    if len(labels) != num_images:
        raise ValueError(f"labels must be (N,) with N = {num_images} images, got {len(labels)} labels")
    if num_images and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    k = _positive_int(k, "k")
    if class_names is None:
        class_names = [str(c) for c in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    if losses is None:
        # the smallest positive float stands in for a zero probability, so log never sees 0
        true_probs = probs[np.arange(num_images), labels]
        losses = -np.log(np.maximum(true_probs, np.finfo(np.float64).tiny))
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (num_images,):
        raise ValueError(f"losses must be (N,) with N = {num_images}, got shape {losses.shape}")

    predictions = probs.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    # largest loss first; a stable sort keeps equal losses in dataset order
    chosen = wrong[np.argsort(-losses[wrong], kind="stable")][:k]

    if chosen.size == 0:
        figure = _new_figure(6, 2)
        axes = figure.subplots()
        axes.set_axis_off()
        axes.text(0.5, 0.5, f"No misclassified images\n(all {num_images} classified correctly)",
                  ha="center", va="center", fontsize=14, transform=axes.transAxes)
        if title:
            figure.suptitle(title, fontsize=12)
        return figure

    shown = _display_images(images[chosen], mean, std)
    best = top_k(probs[chosen], min(3, num_classes))
    cols = min(WORST_COLS, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    # A fixed grid, in inches: images 2.8 square, 0.1 apart side by side; above each, 0.55
    # for its three lines of title; 0.5 above those for the heading, 0.25 between rows.
    # (Constrained layout measured every title to find the same places: a third of the time.)
    width, height = 2.9 * cols, 3.6 * rows + 0.5
    figure = _new_figure(width, height, layout=None)
    axes_grid = figure.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=0.05 / width, right=1 - 0.05 / width, top=1 - 1.05 / height, bottom=0.25 / height,
        wspace=0.1 / 2.8, hspace=0.8 / 2.8))
    for slot, axes in enumerate(axes_grid.flat):
        axes.set_axis_off()
        if slot >= len(chosen):
            continue
        n = chosen[slot]
        if shown.ndim == 3:
            axes.imshow(shown[slot], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            axes.imshow(shown[slot], interpolation="nearest")
        guesses = [f"{class_names[c]} {probs[n, c]:.2f}" for c in best[slot]]
        # the best guess on the "pred" line, the runners-up below it, so long class names fit
        lines = [f"true {class_names[labels[n]]}  (loss {losses[n]:.2f})", "pred " + guesses[0]]
        if len(guesses) > 1:
            lines.append(",  ".join(guesses[1:]))
        axes.set_title("\n".join(lines), fontsize=9)
    heading = (f"{len(chosen)} of {len(wrong)} misclassified images (out of {num_images}), "
               f"largest loss first")
    figure.suptitle(f"{title}\n{heading}" if title else heading, fontsize=12, y=1 - 0.06 / height)
    return figure
