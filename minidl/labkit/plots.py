"""Figures for the labs: mosaics of feature maps and filters, image/kernel/response triptychs,
a line of text with what a network reads in it.

Symbols: N tiles (images, filters or channels), C colour channels of a tile
(1 or 3), H W its size, K classes, OW output columns. Each function returns a
matplotlib Figure (shown inline in a notebook) and does not modify its inputs.
"""
import math

import matplotlib.pyplot as plt
import numpy as np

from .characters import LETTERS


def scale_to_unit(image, clip=0.0):
    """Affinely map the values of an array to [0, 1] (a constant array becomes 0.5).

    ``clip``: the percentage of values at each end mapped beyond the range and clipped
    to 0 or 1, so that a few extreme values do not leave the rest in one shade.
    """
    image = np.asarray(image, dtype=np.float64)
    low, high = (image.min(), image.max()) if not clip else np.percentile(image, [clip, 100 - clip])
    if high == low:
        return np.full_like(image, 0.5)
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def mosaic(tiles, spacing=1, cols=None):
    """Tiles (N, C, H, W), C in {1, 3}, each scaled to [0, 1] on its own, laid out in a grid.

    Returns (rows*(H+spacing) - spacing, cols*(W+spacing) - spacing, C); the gaps are
    white. ``cols`` defaults to ceil(sqrt(N)).
    """
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[1] not in (1, 3):
        raise ValueError(f"mosaic: expected tiles of shape (N, C, H, W) with C = 1 or 3, got {tiles.shape}")
    n, c, h, w = tiles.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.ones((rows * (h + spacing) - spacing, cols * (w + spacing) - spacing, c))
    for i in range(n):
        r, q = divmod(i, cols)
        out[r * (h + spacing):r * (h + spacing) + h, q * (w + spacing):q * (w + spacing) + w] = \
            scale_to_unit(tiles[i]).transpose(1, 2, 0)
    return out


def channels(x):
    """(1, C, H, W) -> (C, 1, H, W): the channels of one feature map as grey tiles for ``mosaic``."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"channels: expected one feature map of shape (1, C, H, W), got {x.shape}")
    return x[0][:, None]


def _imshow(axes, image, title=None, clip=0.0):
    """Show an (H, W), (H, W, 1) or (H, W, 3) array scaled to [0, 1] (grey maps in grey)."""
    image = scale_to_unit(image, clip)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    axes.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest",
                vmin=0, vmax=1)
    axes.set_xticks([])
    axes.set_yticks([])
    if title:
        axes.set_title(title)


def show(image, title=None, size=6):
    """One image: (C, H, W) with C in {1, 3}, (1, C, H, W), or (H, W); scaled to [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 4:
        image = image[0]
    if image.ndim == 3:
        image = image.transpose(1, 2, 0)
    figure, axes = plt.subplots(figsize=(size, size * image.shape[0] / image.shape[1]))
    _imshow(axes, image, title)
    return figure


def show_mosaic(tiles, title=None, spacing=1, cols=None, size=8):
    """``mosaic`` in a figure of width ``size`` inches."""
    grid = mosaic(tiles, spacing, cols)
    figure, axes = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1] + 0.4))
    _imshow(axes, grid, title)
    return figure


def triptych(image, kernel, response, titles=("input", "kernel", "response"), size=4, clip=0.5):
    """Three panels side by side: an image, a kernel, and the response of one to the other.

    Each is (1, C, H, W), (C, H, W) or (H, W); the kernel is drawn with nearest pixels.
    The response's shades span its ``clip``-th to (100 - ``clip``)-th percentiles: a
    filter's response often has a few values far larger than the rest.
    """
    figure, axes = plt.subplots(1, 3, figsize=(3 * size, size))
    for ax, array, title, cut in zip(axes, (image, kernel, response), titles, (0.0, 0.0, clip)):
        array = np.asarray(array)
        if array.ndim == 4:
            array = array[0]
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
        _imshow(ax, array, title, cut)
    figure.tight_layout()
    return figure


def plot_sentence(image, scores, centres=None, letters=None, title=None):
    """A line of text, the letter read at each centre, and the class scores of every output column.

    image (1, 1, 32, W); scores (1, K, 1, OW) or (K, OW); centres: x of each letter
    (pixels); letters: the string read there (one letter per centre).
    """
    image = np.asarray(image)[0, 0]
    scores = np.asarray(scores)
    if scores.ndim == 4:
        scores = scores[0, :, 0]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(14, 5), gridspec_kw={"height_ratios": [1, 2]})
    _imshow(top, image, title)
    if centres is not None and letters is not None:
        for x, char in zip(centres, letters):
            top.text(x, image.shape[0] + 6, char, ha="center", va="top", fontsize=12, color="tab:red")
        top.set_ylim(image.shape[0] + 16, -0.5)
    bottom.imshow(scores, aspect="auto", interpolation="nearest", cmap="viridis")
    bottom.set_yticks(range(len(LETTERS)))
    bottom.set_yticklabels(list(LETTERS), fontsize=7)
    bottom.set_xlabel("output column")
    bottom.set_title("class scores of each output column")
    figure.tight_layout()
    return figure


def plot_curves(histories, keys=("loss", "accuracy")):
    """Training curves of one or more runs: ``histories`` maps a label to ``Trainer.history``.

    One panel per key, training (solid) and validation (dashed) per run.
    """
    figure, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        for (label, history), colour in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            epochs = [r["epoch"] for r in history]
            ax.plot(epochs, [r[f"train_{key}"] for r in history], "-o", color=colour, label=f"{label}: training")
            if all(f"val_{key}" in r for r in history):
                ax.plot(epochs, [r[f"val_{key}"] for r in history], "--o", color=colour,
                        label=f"{label}: validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    figure.tight_layout()
    return figure
