"""Filter grids pixel by pixel; plots written as real, non-trivial PNGs without warnings.

Run with ``-W error`` to turn any matplotlib/NumPy warning into a failure; the
tests about degenerate input also turn warnings into errors themselves.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import skimage.io

from minidl import viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CYAN = (23, 190, 207)      # matplotlib "tab:cyan", the validation curves
PURPLE = (148, 103, 189)   # matplotlib "tab:purple", the training curves


def read_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG file"
    return skimage.io.imread(path)


def count_colour(image, rgb):
    return int(np.all(image[..., :3] == np.array(rgb, dtype=np.uint8), axis=-1).sum())


def expected_tile(weights, f, c=None):
    """Oracle for one tile, straight from the definition: min-max over the bank, round, repeat."""
    w = weights.astype(np.float64)
    unit = (w - w.min()) / (w.max() - w.min())
    pixels = np.rint(unit * 255).astype(np.uint8)
    tile = pixels[f, c] if c is not None else pixels[f].transpose(1, 2, 0)
    return tile


def enlarge(tile, scale):
    block = np.ones((scale, scale), dtype=np.uint8)
    if tile.ndim == 2:
        return np.kron(tile, block)
    return np.stack([np.kron(tile[..., ch], block) for ch in range(tile.shape[-1])], axis=-1)


# ---------------------------------------------------------------- filter_grid: size and layout

def test_grid_size_for_wide_kernels():
    # F=10 filters of 3x5, scale 4, border 2, 4 columns: 3 rows (4 + 4 + 2 tiles)
    #   tile = 12 x 20;  H = 3*12 + 2*2 = 40;  W = 4*20 + 3*2 = 86
    weights = np.random.default_rng(0).normal(size=(10, 1, 3, 5))
    grid = viz.filter_grid(weights, scale=4, border=2, cols=4)
    assert grid.shape == (40, 86)
    assert grid.dtype == np.uint8


def test_grid_size_for_tall_kernels_and_fewer_filters_than_columns():
    # F=3 filters of 5x3, scale 2, border 1, cols 8 -> only 3 columns are used, 1 row
    #   tile = 10 x 6;  H = 10;  W = 3*6 + 2*1 = 20
    weights = np.random.default_rng(1).normal(size=(3, 1, 5, 3))
    assert viz.filter_grid(weights, scale=2, border=1, cols=8).shape == (10, 20)


def test_grid_size_rgb():
    # F=16 RGB filters of 5x5, default scale 8, border 1, cols 8: 2 rows
    #   H = 2*40 + 1 = 81;  W = 8*40 + 7 = 327
    weights = np.random.default_rng(2).normal(size=(16, 3, 5, 5))
    assert viz.filter_grid(weights).shape == (81, 327, 3)


def test_known_tile_holds_normalised_weights():
    # bank min -1 (filter 0), max 3 (filter 1), so pixel = round(255 * (w + 1) / 4):
    #   w = 0 -> 63.75 -> 64;  w = 1 -> 127.5 -> 128 (round half to even)
    weights = np.zeros((10, 1, 3, 5))
    weights[0, 0, 0, 0] = -1.0
    weights[1, 0, 0, 0] = 3.0
    weights[5, 0, 0, 0] = 1.0
    grid = viz.filter_grid(weights, scale=4, border=2, cols=4)
    # tile 5 sits in row 5 // 4 = 1, column 5 % 4 = 1: top = 1*(12 + 2) = 14, left = 1*(20 + 2) = 22
    tile = grid[14:26, 22:42]
    assert np.all(tile[:4, :4] == 128)          # the one kernel pixel w = 1, as a 4x4 block
    tile_rest = tile.copy()
    tile_rest[:4, :4] = 64
    assert np.all(tile_rest == 64)              # every other kernel pixel w = 0
    assert np.all(grid[0:4, 0:4] == 0)          # the bank minimum, tile 0
    assert np.all(grid[0:4, 22:26] == 255)      # the bank maximum, tile 1


def test_every_tile_matches_oracle_rgb_non_square():
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(11, 3, 2, 3)).astype(np.float32)
    scale, border, cols = 3, 1, 4
    grid = viz.filter_grid(weights, scale=scale, border=border, cols=cols)
    tile_h, tile_w = 2 * scale, 3 * scale
    for f in range(11):
        top, left = (f // cols) * (tile_h + border), (f % cols) * (tile_w + border)
        np.testing.assert_array_equal(grid[top:top + tile_h, left:left + tile_w],
                                      enlarge(expected_tile(weights, f), scale), err_msg=f"tile {f}")


def test_rgb_channels_keep_their_order():
    weights = np.zeros((2, 3, 1, 1))
    weights[0, 0] = 1.0      # filter 0: pure red
    weights[1, 2] = 1.0      # filter 1: pure blue
    grid = viz.filter_grid(weights, scale=1, border=0)
    np.testing.assert_array_equal(grid[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(grid[0, 1], [0, 0, 255])


def test_other_channel_counts_give_one_grey_tile_per_filter_and_channel():
    # F=3, C=2 -> 6 tiles in order (f0 c0), (f0 c1), (f1 c0), ...; 2x2 kernels, scale 1, border 1, cols 2
    #   3 rows: H = 3*2 + 2 = 8;  W = 2*2 + 1 = 5
    weights = np.random.default_rng(5).normal(size=(3, 2, 2, 2))
    grid = viz.filter_grid(weights, scale=1, border=1, cols=2)
    assert grid.shape == (8, 5)
    for i in range(6):
        f, c = divmod(i, 2)
        top, left = (i // 2) * 3, (i % 2) * 3
        np.testing.assert_array_equal(grid[top:top + 2, left:left + 2], expected_tile(weights, f, c),
                                      err_msg=f"tile {i} should be filter {f} channel {c}")


def test_per_channel_can_be_forced_for_rgb():
    weights = np.random.default_rng(6).normal(size=(2, 3, 2, 2))
    grid = viz.filter_grid(weights, scale=1, border=0, cols=3, per_channel=True)
    assert grid.shape == (4, 6)                   # 6 grey tiles in 2 rows of 3
    np.testing.assert_array_equal(grid[2:4, 0:2], expected_tile(weights, 1, 0))


def test_borders_and_empty_slots_use_border_value():
    weights = np.random.default_rng(7).normal(size=(5, 1, 2, 2))
    for border_value in (255, 0, 77):
        # 3 columns, 2 rows, scale 2, border 1: tiles 4x4, H = 9, W = 14
        grid = viz.filter_grid(weights, scale=2, border=1, cols=3, border_value=border_value)
        assert grid.shape == (9, 14)
        assert np.all(grid[4, :] == border_value)          # the row between the tile rows
        assert np.all(grid[:, 4] == border_value)          # the columns between tiles
        assert np.all(grid[:, 9] == border_value)
        assert np.all(grid[5:9, 10:14] == border_value)    # slot 6 of 6 holds no filter


def test_constant_bank_is_mid_grey_without_warnings():
    for value in (0.0, 1.0, -3.5):
        weights = np.full((4, 1, 3, 3), value, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error")       # a 0/0 would raise a RuntimeWarning here
            grid = viz.filter_grid(weights, scale=2, border=1, cols=4)
        tiles = np.delete(grid, [6, 13, 20], axis=1)   # drop the three border columns
        assert np.all(tiles == 128), f"constant {value} should be drawn mid-grey"
        assert np.all(grid[:, 6] == 255)


@pytest.mark.parametrize("weights, kw, match", [
    (np.zeros((4, 3, 3)), {}, r"\(F, C, KH, KW\)"),
    (np.zeros((0, 1, 3, 3)), {}, r"non-empty"),
    (np.array([[[[np.nan]]]]), {}, r"NaN or inf"),
    (np.zeros((2, 1, 3, 3)), {"scale": 0}, r"scale"),
    (np.zeros((2, 1, 3, 3)), {"border": -1}, r"border"),
    (np.zeros((2, 1, 3, 3)), {"cols": 0}, r"cols"),
    (np.zeros((2, 1, 3, 3)), {"border_value": 300}, r"border_value"),
])
def test_filter_grid_rejects_bad_input(weights, kw, match):
    with pytest.raises(ValueError, match=match):
        viz.filter_grid(weights, **kw)


# ---------------------------------------------------------------- save_filter_grid

@pytest.mark.parametrize("channels", [1, 3])
def test_saved_grid_is_a_png_with_exactly_the_grid_pixels(tmp_path, channels):
    weights = np.random.default_rng(8).normal(size=(6, channels, 5, 5))
    path = tmp_path / "sub" / "filters.png"       # the directory is created
    assert viz.save_filter_grid(weights, path, scale=3, cols=3) == str(path)
    image = read_png(path)
    np.testing.assert_array_equal(image, viz.filter_grid(weights, scale=3, cols=3))
    assert os.listdir(tmp_path / "sub") == ["filters.png"]    # no temporary file left behind


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "filters.png"
    weights = np.random.default_rng(9).normal(size=(4, 1, 3, 3))
    viz.save_filter_grid(weights, path)
    before = path.read_bytes()

    def broken_save(image, fname, **kw):              # Pillow's Image.save, failing halfway
        with open(fname, "wb") as f:
            f.write(b"half an imag")
        raise OSError("disk full")

    monkeypatch.setattr(viz.Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        viz.save_filter_grid(-weights, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["filters.png"]


def test_paths_must_be_png(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        viz.save_filter_grid(np.zeros((1, 1, 2, 2)), tmp_path / "filters.jpg")
    with pytest.raises(ValueError, match=r"\.png"):
        viz.plot_training([{"train_loss": 1.0}], tmp_path / "plot")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- plot_training

def make_history(epochs, validation=True):
    history = []
    for e in range(1, epochs + 1):
        record = {"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 1 - 0.5 / e,
                  "lr": 0.1 * 0.5 ** (e - 1), "seconds": 1.0}
        if validation:
            record.update(val_loss=2.2 / e, val_accuracy=1 - 0.6 / e)
        history.append(record)
    return history


def test_training_plot_is_a_nontrivial_png_with_both_curves(tmp_path):
    path = viz.plot_training(make_history(6), tmp_path / "training.png")
    image = read_png(path)
    assert image.shape[:2] == (420, 1500)        # 15 x 4.2 inches at 100 dpi
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50
    assert count_colour(image, PURPLE) > 100
    assert count_colour(image, CYAN) > 100


def test_training_plot_panels():
    figure = viz.training_figure(make_history(4))
    loss_axes, accuracy_axes, lr_axes = figure.axes
    assert [ax.get_title() for ax in figure.axes] == ["Cross-entropy loss", "Accuracy", "Learning rate"]
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == ["train", "validation"]
    np.testing.assert_allclose(accuracy_axes.lines[1].get_ydata(), [1 - 0.6 / e for e in range(1, 5)])
    assert lr_axes.get_yscale() == "log"


def test_training_plot_without_validation(tmp_path):
    history = make_history(3, validation=False)
    image = read_png(viz.plot_training(history, tmp_path / "training.png"))
    assert count_colour(image, PURPLE) > 100
    assert count_colour(image, CYAN) == 0
    figure = viz.training_figure(history)
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["train"]


def test_training_plot_single_epoch(tmp_path):
    history = make_history(1)
    image = read_png(viz.plot_training(history, tmp_path / "training.png"))
    assert count_colour(image, CYAN) > 0         # the lone validation point is drawn
    assert viz.training_figure(history).axes[0].get_xlim() == (0.0, 2.0)


def test_flat_curves_and_zero_lr_without_warnings(tmp_path):
    history = [{"epoch": e, "train_loss": 0.5, "val_loss": 0.5, "train_accuracy": 1.0,
                "val_accuracy": 1.0, "lr": 0.0} for e in range(1, 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = viz.plot_training(history, tmp_path / "flat.png")
        figure = viz.training_figure(history)
    assert read_png(path).shape[:2] == (420, 1500)
    assert figure.axes[2].get_yscale() == "linear"      # a zero cannot go on a log axis


def test_training_plot_rejects_empty_history(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        viz.plot_training([], tmp_path / "training.png")
    assert not (tmp_path / "training.png").exists()


# ---------------------------------------------------------------- plot_worst

def make_mistakes(num_wrong, num_right, channels=3, seed=10):
    """Images of class 0; example i < num_wrong is misclassified with true-class probability 0.01*(i+1)."""
    rng = np.random.default_rng(seed)
    n = num_wrong + num_right
    images = rng.normal(size=(n, channels, 6, 5))
    labels = np.zeros(n, dtype=np.int64)
    probs = np.zeros((n, 4))
    for i in range(n):
        if i < num_wrong:
            p_true = 0.01 * (i + 1)
            probs[i] = [p_true, 0.6, 0.3, 0.1 - p_true]    # predicted 1, then 2, then 3 or 0
        else:
            probs[i] = [0.9, 0.05, 0.03, 0.02]
    return images, labels, probs


def titled_axes(figure):
    return [ax for ax in figure.axes if ax.images]


def test_worst_shows_the_20_largest_losses_in_a_4x5_grid(tmp_path):
    images, labels, probs = make_mistakes(25, 5)
    names = ["cat", "dog", "ship", "frog"]
    figure = viz.worst_figure(images, labels, probs, class_names=names)
    panels = titled_axes(figure)
    assert len(panels) == 20
    rows_cols = {ax.get_subplotspec().get_gridspec().get_geometry() for ax in panels}
    assert rows_cols == {(4, 5)}
    # the loss -log(0.01*(i+1)) is largest for example 0, so examples 0..19 appear in order
    first = panels[0].get_title().splitlines()
    assert first[0] == f"true cat  (loss {-np.log(0.01):.2f})"
    assert first[1] == "pred dog 0.60"
    assert first[2] == "ship 0.30,  frog 0.09"
    losses_shown = [float(ax.get_title().split("loss ")[1].split(")")[0]) for ax in panels]
    assert losses_shown == sorted(losses_shown, reverse=True)
    assert losses_shown[-1] == pytest.approx(-np.log(0.20), abs=0.01)

    image = read_png(viz.plot_worst(images, labels, probs, tmp_path / "worst.png", class_names=names))
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 100


def test_worst_undoes_normalisation_per_channel():
    images, labels, probs = make_mistakes(2, 0)
    mean, std = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 40.0])
    figure = viz.worst_figure(images, labels, probs, mean=mean, std=std)
    shown = np.asarray(titled_axes(figure)[0].images[0].get_array())
    raw = images[0] * std[:, None, None] + mean[:, None, None]
    np.testing.assert_array_equal(shown, np.rint(np.clip(raw, 0, 255)).astype(np.uint8).transpose(1, 2, 0))


def test_worst_grey_images_in_zero_one_range_are_scaled():
    images, labels, probs = make_mistakes(1, 0, channels=1)
    unit = np.random.default_rng(11).random(size=images.shape)       # images in [0, 1]
    normalised = (unit - 0.13) / 0.31
    figure = viz.worst_figure(normalised.astype(np.float32), labels, probs, mean=0.13, std=0.31)
    shown = np.asarray(titled_axes(figure)[0].images[0].get_array())
    assert shown.shape == (6, 5)
    np.testing.assert_allclose(shown, np.rint(unit[0, 0] * 255), atol=1)


def test_worst_tolerates_rounding_error_around_zero_one_images():
    images, labels, probs = make_mistakes(1, 0, channels=1)
    unit = np.linspace(0.0, 1.0, 30).reshape(1, 1, 6, 5)
    unit[0, 0, 0, 0] = -1e-7                  # what float32 normalise/un-normalise leaves behind
    unit[0, 0, -1, -1] = 1 + 1e-7
    figure = viz.worst_figure(unit, labels, probs)
    shown = np.asarray(titled_axes(figure)[0].images[0].get_array())
    np.testing.assert_array_equal(shown, np.rint(np.clip(unit[0, 0], 0, 1) * 255).astype(np.uint8))


def test_worst_with_fewer_mistakes_than_k(tmp_path):
    images, labels, probs = make_mistakes(3, 10)
    figure = viz.worst_figure(images, labels, probs, k=20)
    assert len(titled_axes(figure)) == 3
    read_png(viz.plot_worst(images, labels, probs, tmp_path / "worst.png"))


def test_worst_with_no_mistakes_still_writes_a_figure(tmp_path):
    images, labels, probs = make_mistakes(0, 6, channels=1)
    figure = viz.worst_figure(images, labels, probs)
    assert titled_axes(figure) == []
    assert any("No misclassified" in text.get_text() for ax in figure.axes for text in ax.texts)
    image = read_png(viz.plot_worst(images, labels, probs, tmp_path / "worst.png"))
    assert image.shape[:2] == (200, 600)
    assert image[..., :3].min() < 100                   # some dark text on the white figure


def test_worst_uses_given_losses():
    images, labels, probs = make_mistakes(5, 0)
    losses = np.array([0.1, 0.2, 5.0, 0.3, 0.4])        # example 2 is the worst by this measure
    figure = viz.worst_figure(images, labels, probs, k=1, losses=losses)
    assert titled_axes(figure)[0].get_title().startswith("true 0  (loss 5.00)")


@pytest.mark.parametrize("change, match", [
    ({"images": np.zeros((4, 2, 6, 5))}, r"C = 1 or 3"),
    ({"labels": np.array([0, 1, 2])}, r"N = 4"),
    ({"labels": np.array([0, 1, 2, 9])}, r"\[0, 4\)"),
    ({"probs": np.zeros((3, 4))}, r"probs"),
    ({"class_names": ["a", "b"]}, r"2 names for 4 classes"),
    ({"mean": [1.0, 2.0]}, r"one value per channel"),
])
def test_worst_rejects_bad_input(change, match):
    images, labels, probs = make_mistakes(4, 0)
    arguments = {"images": images, "labels": labels, "probs": probs, **change}
    with pytest.raises(ValueError, match=match):
        viz.worst_figure(**arguments)


# ---------------------------------------------------------------- lambda_comparison

def test_lambda_comparison(tmp_path):
    rng = np.random.default_rng(12)
    banks = {1e-3: rng.normal(size=(16, 1, 5, 5)), 1e-2: 0.3 * rng.normal(size=(16, 1, 5, 5)),
             1e-1: np.zeros((16, 1, 5, 5))}                       # fully shrunk: a constant bank
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = viz.lambda_comparison(banks, tmp_path / "lambdas.png")
        figure = viz.lambda_figure(banks)
    titles = [ax.get_title().splitlines()[0] for ax in figure.axes]
    assert titles == ["λ = 0.001", "λ = 0.01", "λ = 0.1"]
    assert figure.axes[2].get_title().splitlines()[1] == "weights in [0, 0]"
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), viz.filter_grid(banks[1e-3]))
    image = read_png(path)
    assert image.shape[1] > 2 * image.shape[0]                     # three wide panels side by side
    assert len(np.unique(image[..., 0])) > 100


def test_lambda_comparison_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.lambda_comparison({}, tmp_path / "lambdas.png")


def test_filter_comparison_panels_and_title(tmp_path):
    rng = np.random.default_rng(3)
    banks = {"initial": rng.normal(size=(16, 3, 5, 5)), "trained": 2 * rng.normal(size=(16, 3, 5, 5))}
    figure = viz.filters_figure(banks, title="conv1 on some data")
    assert [ax.get_title().splitlines()[0] for ax in figure.axes] == ["initial", "trained"]
    assert figure.get_suptitle() == "conv1 on some data"
    np.testing.assert_array_equal(figure.axes[1].images[0].get_array(), viz.filter_grid(banks["trained"]))
    assert read_png(viz.filter_comparison(banks, tmp_path / "f.png", title="x")).ndim == 3
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.filters_figure({})


def test_training_and_worst_figures_carry_a_title():
    assert viz.training_figure(make_history(2), title="on the stand-in").get_suptitle() == "on the stand-in"
    assert viz.training_figure(make_history(2)).get_suptitle() == ""
    images = np.zeros((3, 1, 4, 4))
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    heading = viz.worst_figure(images, [1, 1, 0], probs, title="on the stand-in").get_suptitle()
    assert heading.splitlines() == ["on the stand-in", "1 of 1 misclassified images (out of 3), largest loss first"]
    assert viz.worst_figure(images, [0, 1, 0], probs, title="T").get_suptitle() == "T"  # no mistakes


# ---------------------------------------------------------------- pyplot is left alone

def test_viz_never_imports_pyplot(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from minidl import viz\n"
        f"viz.plot_training([{{'train_loss': 1.0, 'lr': 0.1}}], {str(tmp_path / 'a.png')!r})\n"
        f"viz.lambda_comparison({{0.1: np.ones((2, 1, 3, 3))}}, {str(tmp_path / 'b.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'viz imported pyplot'\n"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr
