"""Metrics: identity (ArcFace or dlib embeddings, identity consistency), flicker, image quality."""
