"""Batch transforms: shapes, determinism for a seeded generator, one draw per image, hand cases."""
import numpy as np
import pytest

from minidl import transforms as T
from minidl.layers import FC, Dropout, Flatten
from minidl.layers import Sequential


def gen(seed=0):
    return np.random.default_rng(seed)


def find_window(big, small):
    """Every (top, left) where ``small`` (C, h, w) appears in ``big`` (C, H, W)."""
    _, h, w = small.shape
    return [(i, j) for i in range(big.shape[1] - h + 1) for j in range(big.shape[2] - w + 1)
            if np.array_equal(big[:, i:i + h, j:j + w], small)]


def distinct_images(n, c, h, w, dtype=np.float64):
    """Images whose pixels are all different, so a crop gives away where it was cut (values > 0)."""
    return (np.arange(n * c * h * w, dtype=np.float64).reshape(n, c, h, w) + 1).astype(dtype)


# --------------------------------------------------------------- RandomCrop
def test_random_crop_shape_dtype_and_input_untouched():
    x = distinct_images(5, 3, 8, 7, np.float32)
    before = x.copy()
    y = T.RandomCrop((6, 4), padding=(1, 2))(x, gen())
    assert y.shape == (5, 3, 6, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_random_crop_each_output_is_a_window_of_its_own_padded_image():
    x = distinct_images(40, 2, 5, 6)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)))
    y = T.RandomCrop((4, 5), padding=(2, 1))(x, gen(3))
    offsets = []
    for n in range(len(x)):
        found = find_window(padded[n], y[n])
        assert len(found) == 1, f"image {n} is not a window of its padded input"
        offsets.append(found[0])
    tops, lefts = zip(*offsets)
    # every allowed offset is drawn: top in 0..5 (5 + 4 - 4), left in 0..3 (6 + 2 - 5)
    assert set(tops) == set(range(6)) and set(lefts) == set(range(4))


def test_random_crop_draws_one_crop_per_image():
    """The same image repeated 50 times comes out cut in many different places."""
    x = np.repeat(distinct_images(1, 1, 6, 6), 50, axis=0)
    y = T.RandomCrop(4, padding=2)(x, gen(1))
    assert len({y[n].tobytes() for n in range(50)}) > 10


def test_random_crop_is_deterministic_for_a_seeded_generator():
    x = distinct_images(16, 3, 10, 10)
    crop = T.RandomCrop(8, padding=3)
    np.testing.assert_array_equal(crop(x, gen(7)), crop(x, gen(7)))
    assert not np.array_equal(crop(x, gen(7)), crop(x, gen(8)))
    g = gen(7)  # successive calls continue the stream: two batches differ
    assert not np.array_equal(crop(x, g), crop(x, g))


def test_random_crop_by_hand():
    """A 2x2 crop of a 2x2 image padded by 1 with fill -1: nine possible windows, each with
    the padding in the right place; the full image without padding is the identity."""
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    padded = np.array([[-1, -1, -1, -1], [-1, 1, 2, -1], [-1, 3, 4, -1], [-1, -1, -1, -1]], dtype=float)
    windows = {padded[i:i + 2, j:j + 2].tobytes() for i in range(3) for j in range(3)}
    seen = set()
    g = gen(0)
    for _ in range(200):
        y = T.RandomCrop(2, padding=1, fill=-1)(x, g)
        assert y[0, 0].tobytes() in windows
        seen.add(y[0, 0].tobytes())
    assert seen == windows
    np.testing.assert_array_equal(T.RandomCrop(2)(x, g), x)


# ---------------------------------------------------------------- flips
def test_flip_probability_one_and_zero():
    x = distinct_images(4, 2, 3, 5)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x, gen()), x[:, :, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x, gen()), x)


def test_flip_chooses_each_image_on_its_own():
    x = distinct_images(200, 2, 3, 4)
    y = T.RandomHorizontalFlip(0.5)(x, gen(5))
    flipped = np.array([np.array_equal(y[n], x[n, :, :, ::-1]) for n in range(200)])
    kept = np.array([np.array_equal(y[n], x[n]) for n in range(200)])
    assert np.all(flipped ^ kept)                     # every image is one or the other
    assert 70 < flipped.sum() < 130                   # about half (binomial: sd ~ 7)
    hand = np.array([[[[1.0, 2.0, 3.0]]]])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(hand, gen()), [[[[3.0, 2.0, 1.0]]]])


def test_flip_is_deterministic_for_a_seeded_generator():
    x = distinct_images(30, 1, 2, 3)
    flip = T.RandomHorizontalFlip()
    np.testing.assert_array_equal(flip(x, gen(11)), flip(x, gen(11)))


# ---------------------------------------------------------------- shifts
def test_random_shift_moves_a_single_pixel_within_bounds():
    """One bright pixel in the middle of 9x11 zeros lands at (4 + dy, 5 + dx), |dy| <= 2, |dx| <= 3,
    and every shift in that range occurs."""
    x = np.zeros((400, 1, 9, 11), dtype=np.float32)
    x[:, 0, 4, 5] = 1.0
    y = T.RandomShift((2, 3))(x, gen(2))
    assert y.shape == x.shape and y.dtype == np.float32
    shifts = set()
    for n in range(len(y)):
        (row,), (col,) = np.nonzero(y[n, 0])[0], np.nonzero(y[n, 0])[1]
        shifts.add((row - 4, col - 5))
    assert shifts == {(dy, dx) for dy in range(-2, 3) for dx in range(-3, 4)}


def test_random_shift_fills_what_comes_in_from_outside():
    x = np.ones((50, 2, 5, 5))
    y = T.RandomShift(2, fill=0.5)(x, gen(4))
    assert set(np.unique(y)) <= {0.5, 1.0}
    # a shift by (dy, dx) leaves (5 - |dy|) * (5 - |dx|) ones per channel
    counts = (y[:, 0] == 1).sum(axis=(1, 2))
    assert set(counts) <= {a * b for a in (3, 4, 5) for b in (3, 4, 5)} and len(set(counts)) > 3


def test_random_shift_zero_is_the_identity():
    x = distinct_images(3, 2, 4, 4)
    np.testing.assert_array_equal(T.RandomShift(0)(x, gen()), x)


# ------------------------------------------------------------ Normalize
def test_normalize_by_hand_and_inverse():
    x = np.array([[[[1.0, 3.0]], [[2.0, 10.0]]]], dtype=np.float32)   # (1, 2, 1, 2)
    norm = T.Normalize(mean=[1.0, 2.0], std=[2.0, 4.0])
    y = norm(x)
    np.testing.assert_array_equal(y, [[[[0.0, 1.0]], [[0.0, 2.0]]]])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(norm.inverse(y), x)


def test_normalize_with_training_statistics_gives_zero_mean_unit_std(rng):
    x = rng.standard_normal((20, 3, 4, 5)) * [[[[1.0]], [[5.0]], [[0.2]]]] + [[[[3.0]], [[-1.0]], [[0.0]]]]
    y = T.Normalize(x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)))(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, rtol=1e-12)


def test_normalize_errors():
    with pytest.raises(ValueError, match="given for 3 channels, the batch .* has 2"):
        T.Normalize([0, 0, 0], [1, 1, 1])(np.zeros((1, 2, 3, 3)))
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize([0.0], [0.0])
    with pytest.raises(ValueError, match="expected float images, got uint8"):
        T.Normalize([0.0], [1.0])(np.zeros((1, 1, 2, 2), dtype=np.uint8))


# --------------------------------------------------------------- Compose
def test_compose_applies_in_order_with_one_generator():
    x = distinct_images(8, 3, 6, 6)
    crop, flip, norm = T.RandomCrop(4, padding=1), T.RandomHorizontalFlip(), T.Normalize([1, 2, 3], [2, 2, 2])
    composed = T.Compose([crop, flip, norm])
    g1, g2 = gen(9), gen(9)
    np.testing.assert_array_equal(composed(x, g1), norm(flip(crop(x, g2), g2)))
    np.testing.assert_array_equal(composed(x, gen(9)), composed(x, gen(9)))


def test_random_transforms_need_a_generator():
    x = np.zeros((2, 1, 4, 4))
    for t in (T.RandomCrop(2), T.RandomHorizontalFlip(), T.RandomShift(1), T.Compose([T.RandomShift(1)])):
        with pytest.raises(TypeError, match="needs a numpy.random.Generator"):
            t(x)
    np.testing.assert_array_equal(T.Compose([T.Normalize([1.0], [2.0])])(x + 1), x)  # deterministic: no rng


def test_shape_errors():
    with pytest.raises(ValueError, match=r"expected a batch of images \(N, C, H, W\).*shape \(4, 4\)"):
        T.RandomCrop(2)(np.zeros((4, 4)), gen())
    with pytest.raises(ValueError, match="a 6x6 crop does not fit images of 4x4 padded by"):
        T.RandomCrop(6, padding=0)(np.zeros((1, 1, 4, 4)), gen())
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        T.RandomCrop(0)
    with pytest.raises(ValueError, match="p must be in"):
        T.RandomHorizontalFlip(1.5)


# ------------------------------------------------------ views and TTA
def test_deterministic_views():
    x = distinct_images(2, 1, 4, 4)
    np.testing.assert_array_equal(T.HorizontalFlip()(x), x[..., ::-1])
    np.testing.assert_array_equal(T.Crop(2)(x), x[:, :, 1:3, 1:3])                     # centred
    np.testing.assert_array_equal(T.Crop(2, offset=(0, 2))(x), x[:, :, 0:2, 2:4])
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(T.Crop(4, padding=1, offset=(0, 2))(x), padded[:, :, 0:4, 2:6])
    views = T.five_crops(3, 4)
    got = {v(x)[0, 0].tobytes() for v in views}
    expected = {x[0, 0, i:i + 3, j:j + 3].tobytes() for i, j in ((0, 0), (0, 1), (1, 0), (1, 1))}
    assert got == expected | {x[0, 0, 0:3, 0:3].tobytes()}    # centre of 4 with 3 is at (0, 0)
    assert len(views) == 5


def linear_net(rng):
    fc = FC(12, 3, dtype=np.float64, rng=0)
    fc.weights[...] = rng.standard_normal(fc.weights.shape)
    fc.bias[...] = rng.standard_normal(3)
    return Sequential([Flatten(), Dropout(0.5, rng=1), fc]), fc


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_tta_predict_averages_the_views_by_hand(rng):
    net, fc = linear_net(rng)
    x = rng.standard_normal((7, 1, 3, 4))
    logits = x.reshape(7, 12) @ fc.weights.T + fc.bias
    logits_flipped = x[..., ::-1].reshape(7, 12) @ fc.weights.T + fc.bias
    np.testing.assert_allclose(T.tta_predict(net, x, batch_size=3),
                               (softmax(logits) + softmax(logits_flipped)) / 2, rtol=1e-12)
    np.testing.assert_allclose(T.tta_predict(net, x, combine="logits", batch_size=100),
                               (logits + logits_flipped) / 2, rtol=1e-12)
    votes = T.tta_predict(net, x, combine="vote")
    expected = (np.eye(3)[logits.argmax(1)] + np.eye(3)[logits_flipped.argmax(1)]) / 2
    np.testing.assert_array_equal(votes, expected)
    single = T.tta_predict(net, x, views=[T.Identity()])
    np.testing.assert_allclose(single, softmax(logits), rtol=1e-12)


def test_tta_predict_runs_in_eval_mode_and_restores_the_mode(rng):
    net, _ = linear_net(rng)
    x = rng.standard_normal((4, 1, 3, 4))
    net.train()
    first = T.tta_predict(net, x)
    assert net.training and net[1].training
    np.testing.assert_array_equal(first, T.tta_predict(net, x))   # no dropout noise
    net.eval()
    T.tta_predict(net, x)
    assert not net.training


def test_tta_predict_errors(rng):
    net, _ = linear_net(rng)
    with pytest.raises(ValueError, match="combine must be"):
        T.tta_predict(net, np.zeros((1, 1, 3, 4)), combine="max")
    with pytest.raises(ValueError, match="at least one view"):
        T.tta_predict(net, np.zeros((1, 1, 3, 4)), views=[])


# ------------------------------------------------------------- ImageNet
def test_imagenet_preprocess_shape_and_normalisation():
    """A constant photo whose colour is ImageNet's mean becomes zeros after resizing and normalising."""
    mean_colour = np.array(T.IMAGENET_MEAN)
    photo = np.ones((300, 200, 3)) * mean_colour
    batch = T.imagenet_preprocess(photo)
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, 0, atol=1e-6)
    white = T.imagenet_preprocess(np.full((50, 60, 3), 255, dtype=np.uint8), size=32)
    np.testing.assert_allclose(white[0, :, 5, 7], (1 - mean_colour) / np.array(T.IMAGENET_STD), rtol=1e-5)
    grey = T.imagenet_preprocess(np.full((40, 40), 255, dtype=np.uint8), size=16)
    np.testing.assert_allclose(grey, white[:, :, :16, :16], rtol=1e-5)
    with pytest.raises(ValueError, match=r"expected an image \(H, W, 3\)"):
        T.imagenet_preprocess(np.zeros((4, 4, 5)))


# ------------------------------------------------------------ with Trainer
def test_transforms_plug_into_the_trainer_and_resume_bit_for_bit(tmp_path):
    """Trainer's hook calls transform(batch, its own generator): a run stopped after one epoch and
    resumed from its checkpoint ends with the parameters of an uninterrupted run."""
    from minidl.layers import SoftmaxCrossEntropy
    from minidl.models import lenet5
    from minidl.optim import SGD
    from minidl.trainer import Trainer

    data = gen(0)
    x = data.standard_normal((24, 1, 32, 32)).astype(np.float32)
    y = data.integers(0, 10, size=24)
    augment = T.Compose([T.RandomCrop(32, padding=2), T.RandomHorizontalFlip(), T.RandomShift(1)])

    def trainer(path=None):
        return Trainer(lenet5(rng=0), SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9), batch_size=8, seed=5,
                       checkpoint_path=path, transform=augment)

    straight = trainer()
    straight.fit(x, y, epochs=2)
    path = tmp_path / "ckpt.npz"
    trainer(path).fit(x, y, epochs=1)
    resumed = trainer()
    resumed.load_checkpoint(path)
    resumed.fit(x, y, epochs=2)
    for (_, a), (_, b) in zip(straight.net.params(), resumed.net.params()):
        np.testing.assert_array_equal(a, b)
    plain = Trainer(lenet5(rng=0), SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9), batch_size=8, seed=5)
    plain.fit(x, y, epochs=2)
    assert not np.array_equal(plain.net.params()[0][1], straight.net.params()[0][1])


def test_a_transform_without_apply_cannot_be_made():
    from minidl.transforms import Transform

    class Forgot(Transform):
        pass

    with pytest.raises(TypeError, match="apply"):
        Forgot()
