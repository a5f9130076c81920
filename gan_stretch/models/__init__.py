from .autoencoder import AutoencoderConfig, FrameAutoencoder
from .discriminator import (
    DiscriminatorConfig,
    LatentDiscriminator,
    SpectrogramDiscriminator,
    SpectrogramDiscriminatorConfig,
)
from .generator import GeneratorConfig, LatentGenerator
from .mapper import MapperConfig, StretchMapper

__all__ = [
    "AutoencoderConfig",
    "FrameAutoencoder",
    "MapperConfig",
    "StretchMapper",
    "GeneratorConfig",
    "LatentGenerator",
    "DiscriminatorConfig",
    "LatentDiscriminator",
    "SpectrogramDiscriminatorConfig",
    "SpectrogramDiscriminator",
]
