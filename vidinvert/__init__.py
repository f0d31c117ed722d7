"""vidinvert: edit faces in real videos through a pretrained StyleGAN2 and the Feature-Style encoder."""

__version__ = "0.1.0"

from vidinvert.errors import VidinvertError  # noqa: E402

__all__ = ["VidinvertError", "__version__"]
