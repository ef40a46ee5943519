"""Lowercase characters rendered from real fonts, sentences, and reading them back.

Images are (N, 1, 32, 32) float32, white paper (1.0) and black ink (0.0). Every
character sits on the same baseline (row ``BASELINE`` from the top), its ink
centred horizontally, so "p" hangs below the line and "h" rises above it, as in
text. A sentence is rendered the same way, glyph after glyph with the font's
own advances and kerning, 32 pixels high and as wide as it needs.

Fonts are the TrueType/OpenType files of the system (matplotlib's
``findSystemFonts``) plus those bundled with matplotlib. A face is kept when it
has all 26 lowercase letters and every one of them has ink; symbol, dingbat and
small-capital faces are left out. The training/validation split is by family:
a family and its relatives (the same first word: "Noto Sans" and "Noto Serif
Display", "Go" and "Go Mono") are all on one side, so validation measures how
the network reads letter shapes it has never seen.
"""
import dataclasses
import os
import re

import numpy as np
from matplotlib import font_manager, ft2font, get_data_path
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.path import Path
from matplotlib.transforms import Affine2D

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SIZE = 32       # a character image is SIZE x SIZE pixels
EM = 26         # font size in pixels (the height of the em square)
BASELINE = 24   # the baseline's row, counted from the top
#: faces whose letters are not letters (symbols, dingbats) or not lowercase (small capitals)
EXCLUDED = re.compile(r"last resort|symbol|math|dingbat|nushu|keyboard|smallcaps|small caps|d050000l|"
                      r"stixsize|stixnonunicode|^cm(ex|sy|mi)", re.IGNORECASE)

#: the names a family gives its plain style
PLAIN_STYLES = ("Regular", "Book", "Roman", "Normal", "Medium")

# FreeType flags: matplotlib >= 3.10 names them in enums, older releases as module constants
_NO_HINTING = getattr(getattr(ft2font, "LoadFlags", None), "NO_HINTING", None) or ft2font.LOAD_NO_HINTING
_KERN_UNFITTED = getattr(getattr(ft2font, "Kerning", None), "UNFITTED", None) or ft2font.KERNING_UNFITTED


@dataclasses.dataclass(frozen=True)
class Face:
    """One font file: its path, family ("Noto Sans") and style ("Bold Italic")."""
    path: str
    family: str
    style: str

    @property
    def group(self):
        """The family's first word: families sharing it are relatives ("Noto Sans", "Noto Serif")."""
        return self.family.split()[0]

    @property
    def name(self):
        return f"{self.family} {self.style}"


# ------------------------------------------------------------------- fonts
def bundled_font_dir():
    """The directory of the TrueType fonts that ship with matplotlib (DejaVu, STIX, Computer Modern)."""
    return os.path.join(get_data_path(), "fonts", "ttf")


def find_faces(paths=None):
    """The usable faces among font files, sorted by (family, style).

    ``paths``: font files to consider; by default the system's TrueType/OpenType
    fonts, then matplotlib's bundled ones (a family and style found twice is kept
    once, the first found).
    """
    if paths is None:
        system = sorted(font_manager.findSystemFonts(fontext="ttf"))
        bundled = sorted(os.path.join(bundled_font_dir(), f) for f in os.listdir(bundled_font_dir())
                         if f.lower().endswith((".ttf", ".otf")))
        paths = system + bundled
    faces, seen = [], set()
    for path in paths:
        try:
            font = ft2font.FT2Font(str(path))
        except (OSError, RuntimeError, ValueError):
            continue  # a file FreeType cannot read (e.g. a Type 1 font): not ours to use
        family, style = font.family_name, font.style_name
        charmap = font.get_charmap()
        if (family, style) in seen or EXCLUDED.search(family) or EXCLUDED.search(style) \
                or not all(ord(c) in charmap for c in LETTERS):
            continue
        seen.add((family, style))
        faces.append(Face(str(path), family, style))
    return sorted(faces, key=lambda f: (f.family, f.style))


def split_by_family(faces, validation_fraction=0.25, holdout=("Lato",), seed=0):
    """(training faces, validation faces): every group of related families on one side.

    The groups named in ``holdout`` go to validation first (when present), then
    groups drawn at random (``seed``) until validation holds at least
    ``validation_fraction`` of the faces.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"split_by_family: validation_fraction must be in (0, 1), got {validation_fraction}")
    groups = sorted({f.group for f in faces})
    if len(groups) < 2:
        raise ValueError(f"split_by_family: need faces of at least two family groups, got {groups}")
    rng = np.random.default_rng(seed)
    order = [g for g in holdout if g in groups] + [groups[i] for i in rng.permutation(len(groups))
                                                   if groups[i] not in holdout]
    chosen, count = set(), 0
    for group in order[:-1]:  # at least one group stays for training
        if count >= validation_fraction * len(faces):
            break
        chosen.add(group)
        count += sum(f.group == group for f in faces)
    return [f for f in faces if f.group not in chosen], [f for f in faces if f.group in chosen]


# --------------------------------------------------------------- rendering
def _rasterise(placed_paths, width, height=SIZE):
    """Ink coverage (height, width) in [0, 1] of glyph outlines, each placed by an Affine2D.

    Outlines are in pixels with y upward (matplotlib's display space); Agg fills
    them with anti-aliasing.
    """
    renderer = RendererAgg(width, height, 72)
    gc = renderer.new_gc()
    gc.set_linewidth(0)
    gc.set_antialiased(True)
    gc.set_snap(False)   # no snapping to the pixel grid: it would squash a hairline "l" to nothing
    for path, placement in placed_paths:
        renderer.draw_path(gc, path, placement, rgbFace=(0, 0, 0, 1))
    gc.restore()
    return np.asarray(renderer.buffer_rgba())[..., 3] / 255.0


def _open(face, em):
    """The face's FreeType font at ``em`` pixels (72 dpi: one point is one pixel)."""
    font = ft2font.FT2Font(face.path)
    font.set_size(em, 72)
    return font


def _glyph(font, char):
    """(outline, advance) of one character: the outline in pixels, y upward, origin on the pen
    position and the baseline; the advance (pixels) moves the pen to the next character."""
    glyph = font.load_char(ord(char), flags=_NO_HINTING)
    vertices, codes = font.get_path()
    return Path(vertices, codes), glyph.linearHoriAdvance / 65536.0


def render_letters(face, letters=LETTERS, em=EM):
    """(len(letters), 32, 32) float32: each letter on the baseline, its ink centred; paper 1, ink 0.

    Raises ValueError if a letter has no ink in this face.
    """
    font = _open(face, em)
    placed = []
    for i, char in enumerate(letters):
        path, _ = _glyph(font, char)
        if len(path.vertices) == 0:
            raise ValueError(f"render_letters: {face.name} has no outline for {char!r}")
        box = path.get_extents()
        centre = (box.x0 + box.x1) / 2
        placed.append((path, Affine2D().translate(SIZE * i + SIZE / 2 - centre, SIZE - BASELINE)))
    coverage = _rasterise(placed, SIZE * len(letters))
    tiles = coverage.reshape(SIZE, len(letters), SIZE).transpose(1, 0, 2)
    if (tiles.max(axis=(1, 2)) == 0).any():
        raise ValueError(f"render_letters: {face.name} draws no ink for some letters")
    return (1.0 - tiles).astype(np.float32)


@dataclasses.dataclass
class Characters:
    """A character data set split by family. x_* (N, 1, 32, 32) float32, y_* (N,) int64 in 0..25."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    train_faces: list
    val_faces: list

    @property
    def train_families(self):
        return sorted({f.family for f in self.train_faces})

    @property
    def val_families(self):
        return sorted({f.family for f in self.val_faces})


def load_characters(ems=(EM,), validation_fraction=0.25, holdout=("Lato",), seed=0,
                    styles_per_family=None, faces=None):
    """Render every usable face at each size in ``ems``, split by family (``split_by_family``).

    ``faces``: the faces to use (default ``find_faces()``); one that cannot draw every
    letter is left out. ``styles_per_family``: keep at most this many styles of each
    family (the plain one first, see ``PLAIN_STYLES``, then the others alphabetically),
    for a smaller set.
    """
    faces = find_faces() if faces is None else list(faces)
    if styles_per_family is not None:
        kept, count = [], {}
        for face in sorted(faces, key=lambda f: (f.family, f.style not in PLAIN_STYLES, f.style)):
            if count.get(face.family, 0) < styles_per_family:
                count[face.family] = count.get(face.family, 0) + 1
                kept.append(face)
        faces = sorted(kept, key=lambda f: (f.family, f.style))
    rendered = {}                     # face -> [(32, 32) images of the 26 letters per size]
    for face in faces:
        try:
            rendered[face] = [render_letters(face, em=em) for em in ems]
        except ValueError:
            continue
    train_faces, val_faces = split_by_family(list(rendered), validation_fraction, holdout, seed)

    def stack(chosen):
        images = np.concatenate([tiles for face in chosen for tiles in rendered[face]])
        labels = np.tile(np.arange(len(LETTERS)), len(chosen) * len(ems))
        return images[:, None], labels.astype(np.int64)

    x_train, y_train = stack(train_faces)
    x_val, y_val = stack(val_faces)
    return Characters(x_train, y_train, x_val, y_val, train_faces, val_faces)


# ---------------------------------------------------------------- sentences
@dataclasses.dataclass
class Text:
    """A rendered line: ``image`` (1, 1, 32, W), and for each letter (spaces left out) its
    ink centre ``centres`` (in pixels from the left edge) and the letters ``letters``."""
    image: np.ndarray
    centres: np.ndarray
    letters: str


def render_text(face, text, em=EM, margin=SIZE // 2):
    """Render a line of lowercase letters and spaces as the characters are rendered.

    Glyphs follow one another by the font's advance widths and kerning (as a text
    renderer places them); ``margin`` pixels of paper on either side.
    """
    bad = sorted(set(text) - set(LETTERS + " "))
    if bad:
        raise ValueError(f"render_text: only lowercase letters and spaces, got {''.join(bad)!r}")
    font = _open(face, em)
    pen, previous = float(margin), None
    placed, centres, letters = [], [], []
    for char in text:
        index = font.get_char_index(ord(char))
        if previous is not None:
            pen += font.get_kerning(previous, index, _KERN_UNFITTED) / 64.0
        path, advance = _glyph(font, char)
        if char != " ":
            box = path.get_extents()
            placed.append((path, Affine2D().translate(pen, SIZE - BASELINE)))
            centres.append(pen + (box.x0 + box.x1) / 2)
            letters.append(char)
        pen += advance
        previous = index
    width = int(np.ceil(pen + margin))
    image = (1.0 - _rasterise(placed, width)).astype(np.float32)[None, None]
    return Text(image, np.array(centres), "".join(letters))


# ------------------------------------------------------------------ reading
def column_centres(num_columns, stride=4, field=SIZE):
    """x centre (pixels) of the input window of each output column of a fully convolutional net
    whose columns are ``stride`` pixels apart and see ``field`` pixels."""
    return stride * np.arange(num_columns) + field / 2


def _scores_2d(scores):
    scores = np.asarray(scores)
    if scores.ndim == 4:  # (1, K, 1, OW), the network's output on one line
        if scores.shape[0] != 1 or scores.shape[2] != 1:
            raise ValueError(f"expected scores of shape (1, K, 1, OW) or (K, OW), got {scores.shape}")
        scores = scores[0, :, 0]
    if scores.ndim != 2:
        raise ValueError(f"expected scores of shape (1, K, 1, OW) or (K, OW), got {scores.shape}")
    return scores


def decode_columns(scores):
    """The best letter of every output column, left to right: (K, OW) or (1, K, 1, OW) -> str."""
    return "".join(LETTERS[k] for k in _scores_2d(scores).argmax(axis=0))


def read_letters(scores, centres, stride=4, field=SIZE):
    """The best letter of the output column nearest each letter's centre: -> str of len(centres).

    A reader must also find where the letters are; here their centres come from the
    renderer, so the measure is how well the network recognises letters in context.
    """
    scores = _scores_2d(scores)
    columns = np.clip(np.rint((np.asarray(centres) - field / 2) / stride).astype(int), 0, scores.shape[1] - 1)
    return "".join(LETTERS[k] for k in scores[:, columns].argmax(axis=0))


def edit_distance(a, b):
    """The least number of insertions, deletions and substitutions turning ``a`` into ``b`` (Levenshtein)."""
    previous = list(range(len(b) + 1))     # distances from a[:0] to every prefix of b
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1,                       # delete char_a
                               current[j - 1] + 1,                    # insert char_b
                               previous[j - 1] + (char_a != char_b)))  # substitute (or keep)
        previous = current
    return previous[-1]


def character_error_rate(predicted, truth):
    """edit_distance(predicted, truth) / len(truth)."""
    if not truth:
        raise ValueError("character_error_rate: the true string is empty")
    return edit_distance(predicted, truth) / len(truth)


# ------------------------------------------------------------------- jitter
class AddNeighbours:
    """Batch transform: each character gets random others of the batch as left and right neighbours.

    transform(x, rng): x (N, 1, H, W) -> (N, 1, H, W). Each neighbour is another image of
    the batch moved sideways by a spacing drawn from ``spacing`` (inclusive, pixels),
    and laid over the character by taking the darker pixel (ink over paper); each
    side gets a neighbour with probability ``probability``. The columns a moved image
    leaves empty are ``paper`` (default: the largest value of the batch). The input is
    not modified.
    """

    random = True  # draws from rng (for minidl.transforms.Compose)

    def __init__(self, spacing=(13, 18), probability=1.0, paper=None):
        low, high = spacing
        if not 0 < low <= high:
            raise ValueError(f"AddNeighbours: spacing must be a pair 0 < low <= high, got {spacing}")
        if not 0 <= probability <= 1:
            raise ValueError(f"AddNeighbours: probability must be in [0, 1], got {probability}")
        self.spacing, self.probability = (int(low), int(high)), float(probability)
        self.paper = None if paper is None else float(paper)

    def __call__(self, x, rng):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise ValueError(f"AddNeighbours: expected a batch (N, C, H, W), got {getattr(x, 'shape', x)}")
        n, width = x.shape[0], x.shape[3]
        paper = x.max() if self.paper is None else self.paper
        out = x.copy()
        for side in (-1, 1):       # left, then right
            others = rng.permutation(n)
            shifts = rng.integers(self.spacing[0], self.spacing[1] + 1, size=n)
            present = rng.random(n) < self.probability
            for i in np.nonzero(present)[0]:
                s = min(int(shifts[i]), width)
                moved = np.full_like(x[i], paper)
                if side < 0:   # the left neighbour: its image moved left by s
                    moved[..., :width - s] = x[others[i], ..., s:]
                else:          # the right neighbour: moved right by s
                    moved[..., s:] = x[others[i], ..., :width - s]
                np.minimum(out[i], moved, out=out[i])
        return out

    def __repr__(self):
        return f"AddNeighbours(spacing={self.spacing}, probability={self.probability}, paper={self.paper})"
