"""File kinds by suffix, declared once: clips read, clips written, still images."""

from __future__ import annotations

# Containers read as clips (anything FFmpeg demuxes works when named directly; these are the
# suffixes collected from folders and globs).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".flv", ".wmv",
                            ".ts", ".3gp"})
# Containers written (the output keeps the input's when it is one of these, else .mp4).
OUTPUT_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
# Still images read and written.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
