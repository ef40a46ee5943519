"""minidl.labkit: images, blob labels, rendered characters, sentence reading, lab figures.

Oracles: hand values, analytic Hessians of Gaussian blobs, a brute-force edit
distance, direct constructions of the expected arrays.
"""
import functools
import os

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import labkit
from minidl.labkit import characters as chars_mod

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ images
def test_photo_is_nchw_in_unit_range():
    x = labkit.photo("coffee")
    assert x.shape == (1, 3, 400, 600) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    import skimage.data
    assert np.allclose(x[0, :, 10, 20], skimage.data.coffee()[10, 20] / 255.0)


def test_photo_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown photograph 'teapot'.*coffee"):
        labkit.photo("teapot")


def test_grey_is_the_channel_mean():
    x = np.random.default_rng(0).random((2, 3, 5, 7))
    assert np.allclose(labkit.grey(x)[:, 0], (x[:, 0] + x[:, 1] + x[:, 2]) / 3)
    with pytest.raises(ValueError, match=r"grey: expected an array of shape \(N, C, H, W\), got \(5, 7\)"):
        labkit.grey(x[0, 0])


def test_resize_keeps_constants_and_gives_the_shape():
    x = np.full((1, 2, 40, 60), 0.25)
    out = labkit.resize(x, 13, 17)
    assert out.shape == (1, 2, 13, 17) and np.allclose(out, 0.25)


def test_smooth_spreads_an_impulse_with_variance_sigma_squared():
    impulse = np.zeros((1, 1, 61, 61))
    impulse[0, 0, 30, 30] = 1.0
    blurred = labkit.smooth(impulse, 3.0)[0, 0]
    assert np.isclose(blurred.sum(), 1.0, atol=1e-6)
    offsets = np.arange(61) - 30
    assert np.isclose((blurred.sum(axis=1) * offsets ** 2).sum(), 9.0, rtol=0.02)
    assert np.isclose((blurred.sum(axis=0) * offsets ** 2).sum(), 9.0, rtol=0.02)


def test_hubble_blobs_is_a_light_sky_with_dark_blobs():
    sky = labkit.hubble_blobs(width=200)
    assert sky.shape == (1, 1, 174, 200) and sky.dtype == np.float32
    assert np.median(sky) > 0.9 and sky.min() < 0.5


# ------------------------------------------------------------------- blobs
def gaussian_blob(shape, centre, s, amplitude):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return amplitude * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * s ** 2))


def test_hessian_of_a_gaussian_dip_matches_the_analytic_value():
    # I = 1 - A exp(-rho^2 / (2 s^2)); smoothed by sigma it is 1 - a exp(-rho^2 / (2 v)) with
    # v = s^2 + sigma^2 and a = A s^2 / v. Its second difference at the centre, taken as a central
    # difference of central differences (step 2: (g(2) - 2 g(0) + g(-2)) / 4), is a (1 - exp(-2/v)) / 2
    # along rows and along columns; the mixed one is 0
    amplitude, s, sigma = 0.6, 3.0, 2.5
    image = 1 - gaussian_blob((81, 81), (40, 40), s, amplitude)
    det, trace = labkit.hessian(image, sigma=sigma)
    v = s ** 2 + sigma ** 2
    second = amplitude * s ** 2 / v * (1 - np.exp(-2 / v)) / 2
    assert np.isclose(trace[40, 40], 2 * second, rtol=1e-3)
    assert np.isclose(det[40, 40], second ** 2, rtol=2e-3)
    det_bright, trace_bright = labkit.hessian(2 - image, sigma=sigma)
    assert det_bright[40, 40] > 0 > trace_bright[40, 40]


def test_extract_black_blobs_finds_dark_centres_only():
    image = np.full((90, 120), 0.9)
    dark = [(20, 25), (30, 90), (65, 40), (70, 100)]
    for centre in dark:
        image -= gaussian_blob(image.shape, centre, 2.0, 0.8)
    image += gaussian_blob(image.shape, (45, 65), 2.0, 0.8)      # a bright blob: not a dark centre
    det, _ = labkit.hessian(image)
    assert det[45, 65] > 3e-4                                    # as strong as the dark ones
    pos, neg, (rows, cols) = labkit.extract_black_blobs(image[None, None])
    assert sorted(zip(rows.tolist(), cols.tolist())) == dark
    assert pos.sum() == len(dark) and not (pos & neg).any()
    r, c = dark[0]
    assert not neg[r + 3, c] and not neg[r, c - 3] and neg[r + 4, c] and neg[r, c + 4]
    assert neg.sum() == image.size - len(dark) * 49
    higher = labkit.extract_black_blobs(image, threshold=1.0)[0]
    assert not higher.any()


def test_extract_black_blobs_rejects_colour():
    with pytest.raises(ValueError, match="expected a grey image"):
        labkit.extract_black_blobs(np.zeros((1, 3, 10, 10)))


def test_about_seventy_six_blobs_in_the_reduced_deep_field():
    pos, neg, _ = labkit.extract_black_blobs(labkit.hubble_blobs())
    assert 65 <= pos.sum() <= 90


# -------------------------------------------------------------- characters
@functools.lru_cache(maxsize=1)
def all_faces():
    return tuple(labkit.find_faces())


def bundled_faces():
    """Faces of matplotlib's own fonts: present wherever matplotlib is."""
    directory = chars_mod.bundled_font_dir()
    return labkit.find_faces([os.path.join(directory, f) for f in sorted(os.listdir(directory))])


def test_find_faces_keeps_text_faces_with_all_letters():
    faces = all_faces()
    families = {f.family for f in faces}
    assert {"DejaVu Sans", "DejaVu Serif"} <= families            # bundled with matplotlib
    assert not any(chars_mod.EXCLUDED.search(f.family) for f in faces)
    assert len({(f.family, f.style) for f in faces}) == len(faces)
    for face in faces[:: max(1, len(faces) // 10)]:
        assert labkit.render_letters(face).shape == (26, 32, 32)


@pytest.mark.parametrize("family", ["Standard Symbols PS", "D050000L", "Noto Sans Math", "Go Smallcaps",
                                    "Last Resort High-Efficiency", "STIXSizeOneSym", "cmex10"])
def test_symbol_and_small_capital_families_are_excluded(family):
    assert chars_mod.EXCLUDED.search(family)


def test_bundled_faces_exclude_the_placeholder_font():
    assert not any("Last Resort" in f.family for f in bundled_faces())


def fake_faces(groups):
    """Faces without files, for the split only: {group: n} -> n faces in each of two related
    families of the group ("<group> Sans", "<group> Serif Display")."""
    return [labkit.Face(f"/nonexistent/{g}-{family}-{i}.ttf", f"{g} {family}", f"Style{i}")
            for g, n in groups.items() for family in ("Sans", "Serif Display") for i in range(n)]


@pytest.mark.parametrize("seed", range(8))
def test_split_keeps_every_group_on_one_side(seed):
    faces = fake_faces({"Lato": 2, "Noto": 3, "Roboto": 2, "Go": 1, "Open": 1, "Free": 2})
    train, val = labkit.split_by_family(faces, validation_fraction=0.3, seed=seed)
    assert len(train) + len(val) == len(faces)
    first_words = [{f.family.split()[0] for f in side} for side in (train, val)]
    assert not first_words[0] & first_words[1]
    assert "Lato" in first_words[1]                              # the held-out group
    assert len(val) >= 0.3 * len(faces) and train


def test_split_needs_two_groups():
    with pytest.raises(ValueError, match="at least two family groups"):
        labkit.split_by_family(fake_faces({"Lato": 5}))


def test_render_letters_places_ink_on_the_baseline_centred():
    face = next(f for f in bundled_faces() if f.name == "DejaVu Sans Book")
    tiles = labkit.render_letters(face)
    assert tiles.shape == (26, 32, 32) and tiles.dtype == np.float32
    assert tiles.max() == 1.0 and tiles.min() < 0.05 and (tiles[:, 0, 0] == 1.0).all()
    ink = 1.0 - tiles
    for k in range(26):
        cols = np.nonzero(ink[k].max(axis=0) > 0.02)[0]
        assert abs((cols[0] + cols[-1] + 1) / 2 - 16) <= 1.0, labkit.LETTERS[k]
    x_rows = np.nonzero(ink[labkit.LETTERS.index("x")].max(axis=1) > 0.02)[0]
    p_rows = np.nonzero(ink[labkit.LETTERS.index("p")].max(axis=1) > 0.02)[0]
    h_rows = np.nonzero(ink[labkit.LETTERS.index("h")].max(axis=1) > 0.02)[0]
    assert x_rows[-1] == chars_mod.BASELINE - 1              # sits on the baseline
    assert p_rows[-1] > chars_mod.BASELINE + 2               # descends below it
    assert h_rows[0] < x_rows[0] - 3                         # rises above the x-height
    distinct = {tiles[k].tobytes() for k in range(26)}
    assert len(distinct) == 26


def test_load_characters_labels_match_the_renderings():
    faces = bundled_faces()
    data = labkit.load_characters(faces=faces, validation_fraction=0.2, holdout=("cmss10",))
    assert data.x_train.shape[1:] == (1, 32, 32) and data.x_train.dtype == np.float32
    assert len(data.x_train) == 26 * len(data.train_faces) and len(data.x_val) == 26 * len(data.val_faces)
    assert data.val_families == ["cmss10"] or "cmss10" in data.val_families
    assert not set(data.train_families) & set(data.val_families)
    face = data.train_faces[1]
    expected = labkit.render_letters(face)
    got = data.x_train[26:52, 0]
    assert np.array_equal(got, expected) and np.array_equal(data.y_train[26:52], np.arange(26))


def test_styles_per_family_caps_each_family():
    data = labkit.load_characters(faces=bundled_faces(), styles_per_family=1, holdout=("cmss10",))
    counts = {}
    for face in data.train_faces + data.val_faces:
        counts[face.family] = counts.get(face.family, 0) + 1
    assert max(counts.values()) == 1
    assert any(f.style == "Book" for f in data.train_faces + data.val_faces if f.family == "DejaVu Sans")


def test_render_text_puts_each_letter_at_its_centre():
    face = next(f for f in bundled_faces() if f.name == "DejaVu Sans Book")
    line = labkit.render_text(face, "mix it")
    assert line.image.shape[:3] == (1, 1, 32) and line.letters == "mixit"
    assert np.all(np.diff(line.centres) > 3)
    single = labkit.render_text(face, "o")
    cols = np.nonzero((1 - single.image[0, 0]).max(axis=0) > 0.02)[0]
    assert abs((cols[0] + cols[-1] + 1) / 2 - single.centres[0]) <= 1.0
    # the same glyph as the character images: the window around the centre matches the tile
    tile = labkit.render_letters(face, "o")[0]
    start = int(round(single.centres[0] - 16))
    window = single.image[0, 0, :, start:start + 32]
    assert np.abs(window - tile).max() < 0.6 and np.abs(window - tile).mean() < 0.05
    with pytest.raises(ValueError, match="only lowercase letters and spaces"):
        labkit.render_text(face, "Hello")


def test_column_reading():
    scores = np.full((26, 10), -1.0)
    for column, letter in enumerate("abcdefghij"):
        scores[labkit.LETTERS.index(letter), column] = 1.0
    assert labkit.decode_columns(scores) == "abcdefghij"
    assert labkit.decode_columns(scores[None, :, None, :]) == "abcdefghij"
    assert np.array_equal(labkit.column_centres(3), [16, 20, 24])
    # a centre at x reads column round((x - 16) / 4), clipped to the row
    assert labkit.read_letters(scores, [16, 21.9, 25.9, 26.1, 0, 500]) == "abcdaj"
    with pytest.raises(ValueError, match="expected scores of shape"):
        labkit.decode_columns(np.zeros((2, 26, 1, 5)))


def brute_edit_distance(a, b):
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


def test_edit_distance_by_hand():
    assert labkit.edit_distance("kitten", "sitting") == 3
    assert labkit.edit_distance("", "abc") == 3 and labkit.edit_distance("abc", "abc") == 0
    assert labkit.character_error_rate("thequick", "thequack") == 1 / 8
    with pytest.raises(ValueError, match="empty"):
        labkit.character_error_rate("a", "")


@settings(max_examples=60, deadline=None)
@given(st.text("abc", max_size=7), st.text("abc", max_size=7))
def test_edit_distance_against_the_recursive_definition(a, b):
    assert labkit.edit_distance(a, b) == brute_edit_distance(a, b) == labkit.edit_distance(b, a)


def test_add_neighbours_lays_shifted_batch_images_over_each_character():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 6, 20)).astype(np.float32) + 0.5
    before = x.copy()
    out = labkit.AddNeighbours(spacing=(5, 5))(x, np.random.default_rng(1))
    assert np.array_equal(x, before) and out.shape == x.shape and out.dtype == x.dtype
    paper = x.max()

    def shifted(image, s):   # moved right by s (left if negative), paper where it is empty
        moved = np.full_like(image, paper)
        if s > 0:
            moved[..., s:] = image[..., :-s]
        else:
            moved[..., :s] = image[..., -s:]
        return moved

    for i in range(4):       # some pair of batch images, one on each side, explains each output
        assert any(np.array_equal(out[i], np.minimum(np.minimum(x[i], shifted(x[a], -5)), shifted(x[b], 5)))
                   for a in range(4) for b in range(4))
    assert np.array_equal(labkit.AddNeighbours(probability=0.0)(x, rng), x)


def test_add_neighbours_checks_its_arguments():
    with pytest.raises(ValueError, match="spacing"):
        labkit.AddNeighbours(spacing=(5, 3))
    with pytest.raises(ValueError, match="probability"):
        labkit.AddNeighbours(probability=1.5)
    with pytest.raises(ValueError, match=r"expected a batch \(N, C, H, W\)"):
        labkit.AddNeighbours()(np.zeros((32, 32)), np.random.default_rng(0))


# ------------------------------------------------------------------- plots
def test_mosaic_scales_each_tile_and_leaves_white_gaps():
    tiles = np.stack([np.full((1, 2, 3), 5.0), np.arange(6.0).reshape(1, 2, 3), -np.arange(6.0).reshape(1, 2, 3)])
    grid = labkit.mosaic(tiles, spacing=1)
    assert grid.shape == (2 * 2 + 1, 2 * 3 + 1, 1)
    assert np.allclose(grid[:2, :3, 0], 0.5)                          # a constant tile: mid grey
    assert np.allclose(grid[:2, 4:, 0], np.arange(6).reshape(2, 3) / 5)
    assert np.allclose(grid[3:, :3, 0], 1 - np.arange(6).reshape(2, 3) / 5)
    assert (grid[2, :, 0] == 1).all() and (grid[:, 3, 0] == 1).all()
    with pytest.raises(ValueError, match="C = 1 or 3"):
        labkit.mosaic(np.zeros((2, 2, 4, 4)))


def test_channels_and_figures():
    feature_map = np.random.default_rng(0).random((1, 5, 8, 9))
    assert labkit.channels(feature_map).shape == (5, 1, 8, 9)
    for figure in (labkit.show(feature_map[:, :3]), labkit.show_mosaic(labkit.channels(feature_map)),
                   labkit.triptych(feature_map[:, :1], np.eye(3), feature_map[:, 1:2]),
                   labkit.plot_sentence(np.ones((1, 1, 32, 80)), np.zeros((1, 26, 1, 13)), [20.0], "a"),
                   labkit.plot_curves({"run": [{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5,
                                                "val_loss": 1.1, "val_accuracy": 0.4}]})):
        assert isinstance(figure, matplotlib.figure.Figure)


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_quick_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("MINIDL_LAB_QUICK", raising=False)
    else:
        monkeypatch.setenv("MINIDL_LAB_QUICK", value)
    assert labkit.quick() is expected


def test_a_stroke_thinner_than_a_pixel_still_leaves_ink():
    # a hairline "l" is a rectangle 0.3 pixels wide; snapped to the pixel grid it would vanish
    from matplotlib.path import Path
    from matplotlib.transforms import Affine2D
    bar = Path([(15.85, 4), (16.15, 4), (16.15, 28), (15.85, 28), (15.85, 4)],
               [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY])
    coverage = chars_mod._rasterise([(bar, Affine2D())], 32)
    assert np.isclose(coverage.sum(), 0.3 * 24, rtol=0.1)


def test_scale_to_unit_can_clip_the_extremes():
    values = np.concatenate([np.linspace(0, 1, 1000), [100.0]])
    assert np.isclose(labkit.plots.scale_to_unit(values)[500], 0.005, atol=1e-3)     # squashed by the outlier
    clipped = labkit.plots.scale_to_unit(values, clip=1.0)
    assert clipped[-1] == 1.0 and 0.45 < clipped[500] < 0.55
