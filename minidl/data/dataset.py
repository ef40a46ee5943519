"""What every loader returns: a ``Dataset`` of normalised images, split three ways; and ``one_hot``.

Symbols: N examples, C channels, H W image height and width, K classes.

``make_dataset`` is the one place where uint8 images become normalised floats
and where the fixed train / validation split is cut: the statistics come from
the training split only, so nothing of the validation or test images leaks into it.
"""
from typing import NamedTuple

import numpy as np

CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar-10": ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
}


class Dataset(NamedTuple):
    """Normalised images (N, C, H, W) with int64 labels (N,), split three ways.

    The images are ``(pixels / 255 - mean[c]) / std[c]`` with ``mean`` and
    ``std`` of shape (C,), one value per channel, computed on the training split
    only (the form ``minidl.viz.plot_worst`` takes). ``unnormalize`` undoes it.
    ``train_x`` and ``val_x`` are views of one array (the fixed split of the
    original training set).
    """
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    class_names: tuple

    def unnormalize(self, x):
        """Pixels in [0, 1] from normalised images (C, H, W) or (N, C, H, W)."""
        return x * self.std[:, None, None] + self.mean[:, None, None]


def pixel_stats(images):
    """Exact mean and standard deviation of uint8 pixels, scaled to [0, 1], as floats.

    A histogram of the 256 possible values gives exact integer sums of p and p^2,
    with no float array the size of the data set. It is counted a block of images
    at a time: bincount turns its input into int64, 8 bytes per pixel, and on all
    of MNIST at once that temporary (376 MB) took 15 times as long as the counting.
    """
    images = np.asarray(images)
    block = max(1, (1 << 20) // max(1, images[:1].size))          # about a million pixels
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, len(images), block):
        counts += np.bincount(images[start:start + block].ravel(), minlength=256)
    counts = counts.astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    n = counts.sum()
    mean = (counts @ values) / n
    variance = max((counts @ values ** 2) / n - mean ** 2, 0.0)
    return mean / 255, np.sqrt(variance) / 255


def make_dataset(train_images, train_labels, test_images, test_labels, class_names,
                 validation_size, dtype, divide_by_std, split_seed=None):
    """A ``Dataset`` from uint8 images (N, C, H, W) and integer labels (N,).

    The first ``N_train - validation_size`` training images are the training
    split, the last ``validation_size`` the validation split (fixed, not
    shuffled). With ``split_seed`` (an int), the training images are first put in
    a random order drawn from ``numpy.random.default_rng(split_seed)``, so the
    validation split is a random sample of ``validation_size``, the same one for
    the same seed. Per channel c, mean[c] and std[c] are the statistics of the
    training split's pixels / 255; x = (pixels / 255 - mean[c]) / std[c] in
    ``dtype``, or only centred (std = 1) when ``divide_by_std`` is False. A
    constant channel is only centred, never divided by zero.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"dtype must be a floating type (float32, float64), got {dtype}")
    num_total = len(train_images)
    validation_size = int(validation_size)
    if not 0 <= validation_size < num_total:
        raise ValueError(f"validation_size must be in [0, {num_total - 1}] "
                         f"for {num_total} training images, got {validation_size}")
    num_train = num_total - validation_size
    train_labels = np.asarray(train_labels, dtype=np.int64)
    if split_seed is not None:  # a random split: shuffle once, then cut as above
        order = np.random.default_rng(split_seed).permutation(num_total)
        train_images, train_labels = train_images[order], train_labels[order]

    channels = train_images.shape[1]
    stats = [pixel_stats(train_images[:num_train, c]) for c in range(channels)]  # over N, H, W
    mean = np.array([m for m, _ in stats], dtype=dtype)
    std = np.array([sd if divide_by_std else 1.0 for _, sd in stats], dtype=dtype)
    std[std == 0] = 1
    train_all = train_images.astype(dtype)
    test_x = test_images.astype(dtype)
    for x in (train_all, test_x):  # in place, in the target dtype
        x /= dtype.type(255)
        x -= mean[:, None, None]   # (C,) -> (C, 1, 1) broadcasts over N, H, W
        if divide_by_std:
            x /= std[:, None, None]
    return Dataset(
        train_x=train_all[:num_train], train_y=train_labels[:num_train],
        val_x=train_all[num_train:], val_y=train_labels[num_train:],
        test_x=test_x, test_y=np.asarray(test_labels, dtype=np.int64),
        mean=mean, std=std, class_names=tuple(class_names),
    )


def one_hot(labels, num_classes, dtype=np.float32):
    """Class indices (...,) -> one-hot rows (..., K) with K = ``num_classes``."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"one_hot: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), "
                         f"got min {labels.min()} max {labels.max()}")
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
