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

from vidinvert.face.align import (
    crop_to_frame,
    frame_to_crop,
    params_to_quad,
    quad_from_5,
    quad_from_68,
    quad_from_face,
    quad_to_params,
    warp_faces,
)
from vidinvert.face.detect import DETECTOR_CHOICES, DlibDetector, FaceDetector, RetinaFaceDetector, make_detector
from vidinvert.face.masks import FACE_CLASSES, FACE_CLASSES_STIT, ParsingMasker, load_parsing_masker, outline_masks
from vidinvert.face.paste import PASTE_MODES, combine_masks, depth_order, match_color, paste_faces, paste_faces_depth
from vidinvert.face.regions import REGIONS, RegionMasker, feature_grid_mask, parse_regions
from vidinvert.face.select import NumberedFace, choose_faces, find_faces
from vidinvert.face.smooth import SmoothConfig, SmoothedQuad, StreamingQuadSmoother
from vidinvert.face.stage import AlignCounts, AlignedFace, AlignStream, FaceAligner, FaceConfig, align_frames
from vidinvert.face.track import FaceSelect, FaceTracker, TrackConfig, parse_face_select
from vidinvert.face.types import Face

__all__ = [
    "DETECTOR_CHOICES", "FACE_CLASSES", "FACE_CLASSES_STIT", "PASTE_MODES", "REGIONS",
    "AlignCounts", "AlignStream", "AlignedFace", "DlibDetector", "Face", "FaceAligner", "FaceConfig",
    "FaceDetector", "FaceSelect", "FaceTracker", "NumberedFace", "ParsingMasker", "RegionMasker", "RetinaFaceDetector",
    "SmoothConfig", "SmoothedQuad", "StreamingQuadSmoother", "TrackConfig",
    "align_frames", "choose_faces", "combine_masks", "crop_to_frame", "depth_order", "feature_grid_mask", "find_faces",
    "frame_to_crop", "load_parsing_masker", "make_detector", "match_color", "outline_masks", "params_to_quad",
    "parse_face_select", "parse_regions", "paste_faces", "paste_faces_depth", "quad_from_5", "quad_from_68",
    "quad_from_face", "quad_to_params", "warp_faces",
]
