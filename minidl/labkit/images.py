"""Images for the labs: photographs from scikit-image as float NCHW arrays, grey, resize, smooth.

Symbols: N images, C channels (3 for colour, 1 for grey), H W height and width.
Every function takes and returns arrays of shape (N, C, H, W) with values in
[0, 1] for photographs; none modifies its argument.
"""
import numpy as np
import skimage.data
import skimage.filters
import skimage.transform

#: the colour photographs of ``skimage.data`` that ``photo`` serves (all ship with scikit-image)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def _check_nchw(x, who):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{who}: expected an array of shape (N, C, H, W), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")


def photo(name="coffee", dtype=np.float32):
    """A colour photograph of ``skimage.data`` as an array of shape (1, 3, H, W) in [0, 1].

    ``coffee`` is 400 x 600, ``astronaut`` 512 x 512 (see ``PHOTOS``).
    """
    if name not in PHOTOS:
        raise ValueError(f"photo: unknown photograph {name!r}; choose one of {', '.join(PHOTOS)}")
    rgb = getattr(skimage.data, name)()                  # (H, W, 3) uint8
    return (rgb[..., :3].transpose(2, 0, 1)[None] / 255.0).astype(dtype)


def grey(x):
    """(N, C, H, W) -> (N, 1, H, W): the mean of the channels (a plain, unweighted grey)."""
    _check_nchw(x, "grey")
    return x.mean(axis=1, keepdims=True)


def resize(x, height, width):
    """(N, C, H, W) -> (N, C, height, width), bilinear, smoothed first when shrinking (no aliasing)."""
    _check_nchw(x, "resize")
    n, c = x.shape[:2]
    out = np.empty((n, c, height, width), dtype=x.dtype)
    for i in range(n):
        for j in range(c):
            out[i, j] = skimage.transform.resize(x[i, j], (height, width), order=1,
                                                 anti_aliasing=(height < x.shape[2] or width < x.shape[3]),
                                                 preserve_range=True)
    return out


def smooth(x, sigma):
    """(N, C, H, W) -> (N, C, H, W): each channel convolved with a Gaussian of standard
    deviation ``sigma`` pixels (borders extended with their nearest pixel)."""
    _check_nchw(x, "smooth")
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = skimage.filters.gaussian(x[i, j], sigma=sigma, mode="nearest",
                                                 preserve_range=True)
    return out


def hubble_blobs(width=420, dtype=np.float32):
    """Dark blobs on a light background: 1 - grey(``skimage.data.hubble_deep_field()``),
    resized to ``width`` pixels wide, shape (1, 1, H, width), values in [0, 1].

    The stars and galaxies of the Hubble deep field become dark dots, the sky light.
    """
    sky = photo("hubble_deep_field", dtype=np.float64)   # (1, 3, 872, 1000)
    height = round(sky.shape[2] * width / sky.shape[3])
    return (1.0 - resize(grey(sky), height, width)).astype(dtype)
