"""Pure ``nn.Module`` networks (no I/O, no CLI): StyleGAN2, the Feature-Style encoder, ArcFace.

``tiny_pair(seed)`` builds a matching tiny generator + encoder with random weights, for tests
and demos only: their output is meaningless.
"""

from __future__ import annotations


def tiny_pair(seed: int = 0):
    """(generator, encoder) with random weights that fit each other (64 px, 10 styles, 64-d).

    The encoder's ``latent_avg`` is the generator's mean latent, as with the real checkpoints.
    Random weights: the images are meaningless; use only for tests and demos.
    """
    from vidinvert.models import fs_encoder, stylegan2

    gen = stylegan2.tiny(seed)
    enc = fs_encoder.tiny(seed, n_styles=gen.n_latent, style_dim=gen.style_dim,
                          feature_channels=gen.channels[16])
    enc.set_latent_avg(gen.mean_latent(2000, seed=seed))
    return gen.eval(), enc.eval()
