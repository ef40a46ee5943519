"""The random validation split of the CIFAR-shaped loaders (``split_seed``)."""
import numpy as np
import pytest

from minidl.data.dataset import make_dataset


def images_numbered(n):
    """n uint8 images (n, 3, 2, 2): every pixel of image i is i (channel 1: 2 i, channel 2: 0)."""
    images = np.zeros((n, 3, 2, 2), dtype=np.uint8)
    images[:, 0] = np.arange(n)[:, None, None]
    images[:, 1] = 2 * np.arange(n)[:, None, None]
    return images


def split(seed, n=20, validation_size=5):
    images = images_numbered(n)
    return make_dataset(images, np.arange(n), images[:3], np.arange(3), [str(i) for i in range(n)],
                        validation_size, np.float64, divide_by_std=True, split_seed=seed)


def test_without_a_seed_the_validation_split_is_the_last_images():
    d = split(None)
    assert d.val_y.tolist() == [15, 16, 17, 18, 19] and d.train_y.tolist() == list(range(15))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_seeded_split_is_a_random_sample_normalised_on_its_own_training_part(seed):
    d = split(seed)
    assert sorted(d.train_y.tolist() + d.val_y.tolist()) == list(range(20))
    assert d.val_y.tolist() != [15, 16, 17, 18, 19]                     # not the fixed split
    assert d.val_y.tolist() == np.random.default_rng(seed).permutation(20)[15:].tolist()
    assert split(seed).val_y.tolist() == d.val_y.tolist()               # the same seed, the same split
    # the images still carry their labels (image i is all i), and the statistics are the
    # training part's only: channel 0 has mean(train labels) / 255, channel 1 twice that
    pixels = d.train_y.astype(np.float64) / 255
    np.testing.assert_allclose(d.mean, [pixels.mean(), 2 * pixels.mean(), 0.0])
    np.testing.assert_allclose(d.std, [pixels.std(), 2 * pixels.std(), 1.0])
    np.testing.assert_allclose(d.train_x[:, 0, 0, 0], (pixels - pixels.mean()) / pixels.std())
    np.testing.assert_allclose(d.unnormalize(d.val_x)[:, 1, 1, 1], 2 * d.val_y / 255)


def test_different_seeds_give_different_splits():
    assert len({tuple(split(seed).val_y) for seed in range(5)}) > 1
