"""Helpers for the course labs that are not part of the framework.

    images      photographs from scikit-image as (N, C, H, W) arrays; grey, resize, smooth
    blobs       labels for a dark-blob detector (Hessian determinant of a smoothed image)
    characters  letters rendered from real fonts, split by family; sentences; reading them back
    plots       mosaics, image/kernel/response triptychs, a sentence and its reading, curves

``quick()`` tells a lab whether to run its quick version (MINIDL_LAB_QUICK=1).
"""
import os

from .blobs import extract_black_blobs, hessian
from .characters import (LETTERS, AddNeighbours, Characters, Face, Text, character_error_rate,
                         column_centres, decode_columns, edit_distance, find_faces, load_characters,
                         read_letters, render_letters, render_text, split_by_family)
from .images import grey, hubble_blobs, photo, resize, smooth
from .plots import channels, mosaic, plot_curves, plot_sentence, show, show_mosaic, triptych


def quick():
    """True when the environment variable MINIDL_LAB_QUICK is set to something other than '' or '0'."""
    return os.environ.get("MINIDL_LAB_QUICK", "0") not in ("", "0")


__all__ = ["quick", "photo", "grey", "resize", "smooth", "hubble_blobs", "hessian",
           "extract_black_blobs", "LETTERS", "Face", "Characters", "Text", "find_faces",
           "split_by_family", "render_letters", "load_characters", "render_text", "column_centres",
           "decode_columns", "read_letters", "edit_distance", "character_error_rate", "AddNeighbours",
           "mosaic", "channels", "show", "show_mosaic", "triptych", "plot_sentence", "plot_curves"]
