"""The face layer: detect and track a face, FFHQ-align it with temporally smoothed crops, paste edits back.

Typical use (the pipeline)::

    stream = align_frames(frames, FaceConfig(detector="auto", track=TrackConfig(select="largest")))
    for chunk in batches(stream):                      # AlignedFace items, in order
        todo = [a for a in chunk if a.edited]
        quads = np.stack([a.quad for a in todo])
        crops = warp_faces([a.frame for a in todo], quads, size=S, device=dev)   # [B,3,S,S] in [-1,1]
        ...  # invert / edit -> recon, edited
        masks = outline_masks([a.landmarks_crop for a in todo], device=dev)  # [B,1,256,256]; or ParsingMasker
        frames = paste_faces([a.frame for a in todo], quads, edited, masks, mode="delta", recon=recon,
                             weights=[a.edit_weight for a in todo])
    stream.counts.as_dict()   # edited / detected / interpolated / passthrough
"""

from __future__ import annotations

import importlib

# Names are imported on first use (``vidinvert.face.warp_faces``), so importing one light module of
# this package (``vidinvert.face.types``, ``vidinvert.face.track``'s parsing) does not load torch.
_WHERE = {
    "AlignCounts": "vidinvert.face.stage",
    "AlignStream": "vidinvert.face.stage",
    "AlignedFace": "vidinvert.face.stage",
    "DETECTOR_CHOICES": "vidinvert.face.detect",
    "DlibDetector": "vidinvert.face.detect",
    "FACE_CLASSES": "vidinvert.face.masks",
    "FACE_CLASSES_STIT": "vidinvert.face.masks",
    "Face": "vidinvert.face.types",
    "FaceAligner": "vidinvert.face.stage",
    "FaceConfig": "vidinvert.face.stage",
    "FaceDetector": "vidinvert.face.detect",
    "FaceSelect": "vidinvert.face.types",
    "FaceTracker": "vidinvert.face.track",
    "NumberedFace": "vidinvert.face.select",
    "PASTE_MODES": "vidinvert.face.paste",
    "ParsingMasker": "vidinvert.face.masks",
    "REGIONS": "vidinvert.face.regions",
    "RegionMasker": "vidinvert.face.regions",
    "RetinaFaceDetector": "vidinvert.face.detect",
    "FaceFrame": "vidinvert.face.stream",
    "MultiFaceAligner": "vidinvert.face.stream",
    "MultiFaceTracker": "vidinvert.face.tracks",
    "SmoothConfig": "vidinvert.face.smooth",
    "SmoothedQuad": "vidinvert.face.smooth",
    "StreamingQuadSmoother": "vidinvert.face.smooth",
    "TrackConfig": "vidinvert.face.track",
    "align_frames": "vidinvert.face.stage",
    "align_tracks": "vidinvert.face.stream",
    "batch_frames": "vidinvert.face.stream",
    "choose_faces": "vidinvert.face.select",
    "combine_masks": "vidinvert.face.paste",
    "crop_to_frame": "vidinvert.face.align",
    "depth_order": "vidinvert.face.paste",
    "feature_grid_mask": "vidinvert.face.regions",
    "find_faces": "vidinvert.face.select",
    "frame_to_crop": "vidinvert.face.align",
    "load_parsing_masker": "vidinvert.face.masks",
    "make_detector": "vidinvert.face.detect",
    "match_color": "vidinvert.face.paste",
    "outline_masks": "vidinvert.face.masks",
    "params_to_quad": "vidinvert.face.align",
    "parse_face_select": "vidinvert.face.types",
    "parse_regions": "vidinvert.face.regions",
    "paste_faces": "vidinvert.face.paste",
    "paste_faces_depth": "vidinvert.face.paste",
    "quad_from_5": "vidinvert.face.align",
    "quad_from_68": "vidinvert.face.align",
    "quad_from_face": "vidinvert.face.align",
    "quad_to_params": "vidinvert.face.align",
    "warp_faces": "vidinvert.face.align",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidinvert.face' has no attribute {name!r}")
