"""Batch transforms: random crops, flips and shifts, normalisation, test-time augmentation.

    from minidl import transforms as T
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    x_train = augment(x, rng)          # x (N, C, H, W); rng a numpy.random.Generator

Every transform is called as ``transform(x, rng)`` on a batch x (N, C, H, W) and
returns a new array of x's dtype (x itself is never modified). The generator is
the only source of randomness: the same generator state gives the same batch, so a
training run that saves its generator resumes bit for bit. Each image of the batch
draws its own crop, flip or shift. Deterministic transforms (``Normalize``, the
views ``Identity``, ``HorizontalFlip``, ``Crop``) take ``rng`` too and ignore it, so
they compose with the random ones.

Symbols: N batch, C channels, H W input size, OH OW output size, PH PW padding.
"""
import abc
import numbers

import numpy as np

from .layers import softmax as _softmax_rows

__all__ = ["Transform", "Compose", "RandomCrop", "RandomHorizontalFlip", "RandomShift", "Normalize",
           "Identity", "HorizontalFlip", "Crop", "five_crops", "tta_predict", "imagenet_preprocess",
           "IMAGENET_MEAN", "IMAGENET_STD"]

#: the per-channel (R, G, B) mean and standard deviation of ImageNet images in [0, 1],
#: which torchvision's pretrained models expect their input normalised by
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(value, what, who, minimum):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum
                              for v in items):
        raise ValueError(f"{who}: {what} must be an int >= {minimum} or a pair of them, got {value!r}")
    return tuple(int(v) for v in items)


class Transform(abc.ABC):
    """A batch transform: ``transform(x, rng) -> x'``; subclasses write ``apply``."""

    random = False  # True if the transform draws from rng

    def __call__(self, x, rng=None):
        who = type(self).__name__
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            what = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{who}: expected a batch of images (N, C, H, W) as a numpy array, got {what}")
        if self.random and not isinstance(rng, np.random.Generator):
            raise TypeError(f"{who}: needs a numpy.random.Generator, called as transform(x, rng), "
                            f"got rng={rng!r}")
        return self.apply(x, rng)

    @abc.abstractmethod
    def apply(self, x, rng):
        """x (N, C, H, W) -> the transformed batch; draws only from ``rng``."""

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order, all drawing from the one generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not a transform (a callable transform(x, rng))")
        self.random = any(getattr(t, "random", True) for t in self.transforms)

    def apply(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


# ------------------------------------------------------------------- crops
def _pad(x, padding, fill):
    (ph, pw) = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)


def _crop_each(x_pad, tops, lefts, size):
    """Image n of the result is x_pad[n, :, tops[n]:tops[n] + OH, lefts[n]:lefts[n] + OW]."""
    oh, ow = size
    out = np.empty((x_pad.shape[0], x_pad.shape[1], oh, ow), dtype=x_pad.dtype)
    for n, (top, left) in enumerate(zip(tops, lefts)):
        out[n] = x_pad[n, :, top:top + oh, left:left + ow]
    return out


def _check_fits(who, x, size, padding):
    h, w = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if size[0] > h or size[1] > w:
        raise ValueError(f"{who}: a {size[0]}x{size[1]} crop does not fit images of {x.shape[2]}x{x.shape[3]} "
                         f"padded by {padding} ({h}x{w})")
    return h, w


class RandomCrop(Transform):
    """Pad every image by ``padding`` (value ``fill``), then cut an OH x OW window at a
    random place, drawn for each image on its own:

        top ~ uniform{0, ..., H + 2*PH - OH},   left ~ uniform{0, ..., W + 2*PW - OW}
        y[n] = x_pad[n, :, top:top + OH, left:left + OW]

    ``size`` and ``padding`` are an int or a pair. ``RandomCrop(32, padding=4)`` on
    32x32 images moves each image by up to 4 pixels in each direction (CIFAR-10's usual
    augmentation).
    """

    random = True

    def __init__(self, size, padding=0, fill=0.0):
        self.size = _pair(size, "size", "RandomCrop", 1)
        self.padding = _pair(padding, "padding", "RandomCrop", 0)
        self.fill = float(fill)

    def apply(self, x, rng):
        h, w = _check_fits("RandomCrop", x, self.size, self.padding)
        n = x.shape[0]
        tops = rng.integers(0, h - self.size[0] + 1, size=n)
        lefts = rng.integers(0, w - self.size[1] + 1, size=n)
        return _crop_each(_pad(x, self.padding, self.fill), tops, lefts, self.size)


class RandomShift(Transform):
    """Move each image by a random whole number of pixels, drawn for each image:

        dy ~ uniform{-max_dy, ..., max_dy},   dx ~ uniform{-max_dx, ..., max_dx}
        y[n, :, i, j] = x[n, :, i - dy, j - dx]    (``fill`` where that is outside x)

    ``max_shift`` is an int or a pair (max_dy, max_dx). The output keeps the input's
    size; it is ``RandomCrop((H, W), padding=max_shift)``, written as a shift. The
    jitter of a character recogniser: ``RandomShift((2, 5))`` moves characters up to
    2 pixels vertically and 5 horizontally.
    """

    random = True

    def __init__(self, max_shift, fill=0.0):
        self.max_shift = _pair(max_shift, "max_shift", "RandomShift", 0)
        self.fill = float(fill)

    def apply(self, x, rng):
        n, _, h, w = x.shape
        max_dy, max_dx = self.max_shift
        dy = rng.integers(-max_dy, max_dy + 1, size=n)
        dx = rng.integers(-max_dx, max_dx + 1, size=n)
        # shifting the content by (dy, dx) is cutting the padded image at (max_dy - dy, max_dx - dx)
        return _crop_each(_pad(x, self.max_shift, self.fill), max_dy - dy, max_dx - dx, (h, w))


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``, independently:
    y[n, :, :, j] = x[n, :, :, W - 1 - j] for the chosen images, y[n] = x[n] for the others."""

    random = True

    def __init__(self, p=0.5):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def apply(self, x, rng):
        flip = rng.random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out


# ------------------------------------------------------------ normalisation
class Normalize(Transform):
    """Per-channel standardisation: y[:, c] = (x[:, c] - mean[c]) / std[c].

    ``mean`` and ``std`` have one value per channel (C,), e.g. those of the training
    set (``x_train.mean(axis=(0, 2, 3))``, ``x_train.std(axis=(0, 2, 3))``).
    ``inverse`` undoes it (to show the images). Float inputs only.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).ravel()
        self.std = np.asarray(std, dtype=np.float64).ravel()
        if self.mean.shape != self.std.shape or self.mean.size == 0:
            raise ValueError(f"Normalize: mean and std need one value per channel, got {self.mean.size} "
                             f"and {self.std.size}")
        if not (np.all(np.isfinite(self.std)) and np.all(self.std > 0) and np.all(np.isfinite(self.mean))):
            raise ValueError(f"Normalize: std must be positive and finite and mean finite, got mean "
                             f"{self.mean.tolist()} and std {self.std.tolist()}")

    def _per_channel(self, x):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"Normalize: expected float images, got {x.dtype.name} "
                             f"(convert with .astype(np.float32))")
        if x.shape[1] != self.mean.size:
            raise ValueError(f"Normalize: mean and std are given for {self.mean.size} channels, the batch "
                             f"{x.shape} has {x.shape[1]}")
        shape = (1, -1, 1, 1)
        return self.mean.astype(x.dtype).reshape(shape), self.std.astype(x.dtype).reshape(shape)

    def apply(self, x, rng):
        mean, std = self._per_channel(x)
        return (x - mean) / std

    def inverse(self, y):
        """x = y * std + mean: the images before normalisation."""
        mean, std = self._per_channel(y)
        return y * std + mean

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


# ------------------------------------------------ deterministic views, TTA
class Identity(Transform):
    """y = x (a copy): the unchanged view in test-time augmentation."""

    def apply(self, x, rng):
        return x.copy()


class HorizontalFlip(Transform):
    """y[:, :, :, j] = x[:, :, :, W - 1 - j]: every image mirrored."""

    def apply(self, x, rng):
        return np.ascontiguousarray(x[:, :, :, ::-1])


class Crop(Transform):
    """The same OH x OW window of every image padded by ``padding``: y = x_pad[:, :, top:top+OH, left:left+OW].

    ``offset`` = (top, left) in the padded image; ``None`` centres the window
    (top = (H + 2*PH - OH) // 2).
    """

    def __init__(self, size, padding=0, offset=None, fill=0.0):
        self.size = _pair(size, "size", "Crop", 1)
        self.padding = _pair(padding, "padding", "Crop", 0)
        self.offset = None if offset is None else _pair(offset, "offset", "Crop", 0)
        self.fill = float(fill)

    def apply(self, x, rng):
        h, w = _check_fits("Crop", x, self.size, self.padding)
        top, left = self.offset or ((h - self.size[0]) // 2, (w - self.size[1]) // 2)
        if top + self.size[0] > h or left + self.size[1] > w:
            raise ValueError(f"Crop: a {self.size} window at {(top, left)} does not fit the padded {h}x{w} images")
        n = x.shape[0]
        return _crop_each(_pad(x, self.padding, self.fill), [top] * n, [left] * n, self.size)


def five_crops(size, image_size, padding=0):
    """The four corner windows and the centre one of images of ``image_size`` padded by
    ``padding``: five ``Crop`` views for ``tta_predict``."""
    oh, ow = _pair(size, "size", "five_crops", 1)
    ph, pw = _pair(padding, "padding", "five_crops", 0)
    h, w = (v + 2 * p for v, p in zip(_pair(image_size, "image_size", "five_crops", 1), (ph, pw)))
    corners = [(0, 0), (0, w - ow), (h - oh, 0), (h - oh, w - ow)]
    return [Crop(size, padding, offset) for offset in corners] + [Crop(size, padding)]


def tta_predict(net, x, views=None, batch_size=256, combine="softmax"):
    """Test-time augmentation: class scores (N, K) of ``net`` averaged over views of each image.

    ``views``: deterministic transforms (default ``[Identity(), HorizontalFlip()]``, the
    image and its mirror image); each must keep the shape the net expects. ``combine``:

        "softmax"  mean over views of softmax(logits)             (probabilities, rows sum to 1)
        "logits"   mean over views of the logits
        "vote"     fraction of views whose top class is k         (a majority vote)

    ``.argmax(axis=1)`` gives the predicted labels in every case. The net runs in
    evaluation mode, ``batch_size`` images at a time; its mode is restored afterwards.
    """
    views = [Identity(), HorizontalFlip()] if views is None else list(views)
    if not views:
        raise ValueError("tta_predict: needs at least one view")
    if combine not in ("softmax", "logits", "vote"):
        raise ValueError(f"tta_predict: combine must be 'softmax', 'logits' or 'vote', got {combine!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"tta_predict: batch_size must be a positive integer, got {batch_size!r}")
    was_training = getattr(net, "training", False)
    net.eval()
    try:
        total = None
        for start in range(0, x.shape[0], batch_size):
            batch = x[start:start + batch_size]
            scores = 0.0
            for view in views:
                logits = net.forward(view(batch, None))
                if combine == "softmax":
                    scores = scores + _softmax_rows(logits)
                elif combine == "logits":
                    scores = scores + logits
                else:
                    scores = scores + np.eye(logits.shape[1], dtype=logits.dtype)[logits.argmax(axis=1)]
            scores = scores / len(views)
            if total is None:
                total = np.empty((x.shape[0], scores.shape[1]), dtype=scores.dtype)
            total[start:start + batch.shape[0]] = scores
        return total
    finally:
        net.train(was_training)


# --------------------------------------------------------- ImageNet input
def imagenet_preprocess(image, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """One photo (H, W, 3) -> a batch of one (1, 3, size, size), float32, as torchvision's
    pretrained models expect: resized to size x size (bilinear, antialiased; the aspect
    ratio is not kept), scaled to [0, 1] (uint8 images are divided by 255), each channel
    normalised by ImageNet's mean and standard deviation. A grey image (H, W) is repeated
    to three channels.
    """
    from skimage.transform import resize  # scikit-image is a dependency; imported when used

    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"imagenet_preprocess: expected an image (H, W, 3) or (H, W), got shape {image.shape}")
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        image = image / 255.0
    elif not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"imagenet_preprocess: expected uint8 or float pixels, got {image.dtype.name}")
    resized = resize(image.astype(np.float64), (size, size), order=1, anti_aliasing=True)
    batch = resized.transpose(2, 0, 1)[None].astype(np.float32)
    return Normalize(mean, std)(batch)
