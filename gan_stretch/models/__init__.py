from gan_stretch.models.autoencoder import AutoencoderConfig, FrameAutoencoder
from gan_stretch.models.discriminator import (
    DiscriminatorConfig,
    LatentDiscriminator,
    SpectrogramDiscriminator,
    SpectrogramDiscriminatorConfig,
)
from gan_stretch.models.generator import GeneratorConfig, LatentGenerator
from gan_stretch.models.mapper import MapperConfig, StretchMapper

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
