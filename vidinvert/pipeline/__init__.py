"""Jobs that compose the layers: the inversion engine, the image job and the video job."""
