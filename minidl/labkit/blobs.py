"""Pixel labels for learning a blob detector: the centres of dark blobs, and the pixels far from any.

A dark blob is a small dip of the intensity surface. At its centre the surface
curves upward in every direction, so the Hessian H = [[I_rr, I_rc], [I_rc, I_cc]]
of the (smoothed) image is positive definite there:

    det H = I_rr * I_cc - I_rc^2 > 0     and     trace H = I_rr + I_cc > 0

(a bright blob has det H > 0 too, but a negative trace). The blob centres are
the local maxima of det H above a threshold, with a positive trace.
"""
import numpy as np
import skimage.feature
from scipy import ndimage


def _plane(image, who):
    """(H, W) or (1, 1, H, W) -> (H, W) float64."""
    image = np.asarray(image)
    if image.ndim == 4 and image.shape[:2] == (1, 1):
        image = image[0, 0]
    if image.ndim != 2:
        raise ValueError(f"{who}: expected a grey image of shape (H, W) or (1, 1, H, W), got {image.shape}")
    return image.astype(np.float64)


def hessian(image, sigma=2.5):
    """(det H, trace H), each (H, W), of the image smoothed by a Gaussian of std ``sigma``.

    Second derivatives by finite differences of the smoothed image (scikit-image's
    ``hessian_matrix``); borders extended with their nearest pixel.
    """
    plane = _plane(image, "hessian")
    i_rr, i_rc, i_cc = skimage.feature.hessian_matrix(plane, sigma=sigma, mode="nearest", order="rc",
                                                      use_gaussian_derivatives=False)
    return i_rr * i_cc - i_rc ** 2, i_rr + i_cc


def extract_black_blobs(image, sigma=2.5, threshold=3e-4, exclusion=3):
    """Labels for a dark-blob detector on a grey image with values in [0, 1].

    Returns (pos, neg, centres):
      pos (H, W) bool: True at each blob centre, a pixel where det H is a maximum of
          its 3x3 neighbourhood, above ``threshold``, and trace H > 0 (a dark blob);
      neg (H, W) bool: True at each pixel farther than ``exclusion`` pixels (in rows
          or columns) from every centre;
      centres: (rows, cols), two integer arrays, the positions of the centres.
    Pixels near a centre but not on it are in neither set: the detector is free there.
    """
    det, trace = hessian(image, sigma)
    is_peak = ndimage.maximum_filter(det, size=3, mode="nearest") == det
    pos = is_peak & (det > threshold) & (trace > 0)
    near = ndimage.maximum_filter(pos, size=2 * exclusion + 1, mode="constant", cval=False)
    rows, cols = np.nonzero(pos)
    return pos, ~near, (rows, cols)
