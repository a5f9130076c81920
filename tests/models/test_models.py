"""Shapes, initial behaviour and gradients of the four networks."""

from __future__ import annotations

import math

import pytest
import torch

from gan_stretch.models import (
    AutoencoderConfig,
    DiscriminatorConfig,
    FrameAutoencoder,
    GeneratorConfig,
    LatentDiscriminator,
    LatentGenerator,
    MapperConfig,
    StretchMapper,
)

F = 1025
L = 17  # latent 16 + the gain channel


def db_frames(n: int, seed: int = 0, f: int = F) -> torch.Tensor:
    """Structured dB frames relative to 0 dB: harmonic peaks over a sloped noise floor, in [-120, 0]."""
    g = torch.Generator().manual_seed(seed)
    bins = torch.arange(f, dtype=torch.float32)
    f0 = 8 + 40 * torch.rand(n, 1, generator=g)  # fundamental, in bins
    mag = torch.zeros(n, f)
    for h in range(1, 8):
        amp = torch.rand(n, 1, generator=g) / h
        mag += amp * torch.exp(-0.5 * ((bins - h * f0) / 1.5) ** 2)
    mag += 1e-4 * torch.exp(-bins / 300) + 1e-5 * torch.rand(n, f, generator=g)
    db = 20 * torch.log10(mag)
    level = -30 * torch.rand(n, 1, generator=g)  # frames of different loudness
    return (db - db.amax(dim=-1, keepdim=True) + level).clamp(-120, 0)


def assert_all_grads(module: torch.nn.Module, nonzero: bool = True) -> None:
    names = [n for n, _ in module.named_parameters()]
    assert names, "module has no parameters"
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        if nonzero:
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


# --- FrameAutoencoder ---------------------------------------------------------------------------


def test_autoencoder_shapes_and_ranges():
    torch.manual_seed(0)
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=F, hidden=[64, 32], latent=16))
    x = db_frames(6).reshape(2, 3, F)
    z = ae.encode(x)
    assert z.shape == (2, 3, L)
    assert z.abs().max() <= 1
    assert ae.encode(x[0, 0]).shape == (L,)
    y = ae.decode(z)
    assert y.shape == (2, 3, F)
    assert ae(x).shape == (2, 3, F)
    # Whatever the latents, decoded frames stay in [-db_range, 0].
    wild = 5 * torch.randn(4, 7, L)
    out = ae.decode(wild)
    assert out.shape == (4, 7, F)
    assert out.min() >= -120 and out.max() <= 0
    assert torch.isfinite(out).all()


def test_autoencoder_gain_channel_carries_loudness():
    """The last latent channel is 1 + 2 * frame max / db_range; the shape code ignores the level."""
    torch.manual_seed(0)
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=F, hidden=[64, 32], latent=16))
    x = db_frames(5).clamp(-100, 0)  # room to shift by -10 dB without hitting the -120 floor
    z = ae.encode(x)
    torch.testing.assert_close(z[:, -1], 1 + 2 * x.amax(dim=-1) / 120)
    z_quiet = ae.encode(x - 10)
    torch.testing.assert_close(z_quiet[:, :-1], z[:, :-1], atol=1e-6, rtol=0)
    torch.testing.assert_close(z_quiet[:, -1], z[:, -1] - 20 / 120)
    # A louder gain decodes to a louder frame (the gain is added back in dB).
    y, y_quiet = ae.decode(z), ae.decode(z_quiet)
    assert (y_quiet <= y + 1e-4).all()
    assert (y - y_quiet).amax() > 9


def test_autoencoder_gradients():
    torch.manual_seed(0)
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=F, hidden=[64, 32], latent=16))
    x = db_frames(16)
    (ae(x) - x).abs().mean().backward()
    assert_all_grads(ae)


def test_autoencoder_loss_falls():
    torch.manual_seed(0)
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=F, hidden=[64, 32], latent=16))
    x = db_frames(64, seed=1)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    losses = []
    for _ in range(150):
        loss = (ae(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    with torch.no_grad():
        final = (ae(x) - x).abs().mean().item()
    assert final < 0.5 * losses[0], (losses[0], final)


# --- StretchMapper and LatentGenerator ----------------------------------------------------------


def make_mapper():
    return StretchMapper(MapperConfig(latent_dim=L, hidden=32))


def make_generator():
    return LatentGenerator(GeneratorConfig(latent_dim=L, channels=16, dilations=[1, 2]))


def output_layer(module):
    return module.net[-1] if isinstance(module, StretchMapper) else module.outp


REFINERS = [pytest.param(make_mapper, id="mapper"), pytest.param(make_generator, id="generator")]


def test_generator_with_frame_features_needs_them_and_uses_them():
    """A generator conditioned per frame (local rate, attack mask) refuses to run without its
    features, starts as the identity like the others, and once trained its output depends on them."""
    torch.manual_seed(0)
    gen = LatentGenerator(GeneratorConfig(latent_dim=L, channels=16, dilations=[1, 2], frame_features=2))
    x, rate = torch.rand(2, 20, L) * 2 - 1, torch.tensor([0.5, 2.0])
    feats = torch.zeros(2, 20, 2)
    assert torch.equal(gen(x, rate, feats), x)
    with pytest.raises(ValueError, match="per-frame features"):
        gen(x, rate)
    with pytest.raises(ValueError, match="per-frame features"):
        gen(x, rate, torch.zeros(2, 19, 2))
    torch.nn.init.normal_(gen.outp.weight, std=0.05)
    moved = feats.clone()
    moved[:, 5:8, 1] = 1.0  # three attack frames
    diff = (gen(x, rate, moved) - gen(x, rate, feats)).abs().amax(dim=(0, 2))
    assert diff[5:8].min() > 1e-4  # the frames themselves change ...
    assert diff[8 + gen.context_frames :].max() == 0  # ... and nothing beyond the receptive field
    # a generator without them ignores features (the models trained before them)
    plain = make_generator()
    assert torch.equal(plain(x, rate, moved), plain(x, rate))


@pytest.mark.parametrize("make", REFINERS)
def test_refiner_shape_and_identity_at_init(make):
    torch.manual_seed(0)
    model = make()
    x = torch.rand(3, 20, L) * 2 - 1
    rate = torch.tensor([0.5, 1.0, 2.0])
    y = model(x, rate)
    assert y.shape == x.shape
    assert torch.equal(y, x), "a freshly initialised refiner must be plain interpolation (identity)"
    assert torch.equal(model(x[:1, :5], rate[:1]), x[:1, :5])


@pytest.mark.parametrize("make", REFINERS)
def test_refiner_gradients(make):
    torch.manual_seed(0)
    model = make()
    x = torch.rand(2, 16, L) * 2 - 1
    rate = torch.tensor([0.5, 2.0])
    target = torch.rand(2, 16, L)
    # Fresh: only the zero-initialised output layer can get a non-zero gradient, but every one is defined.
    (model(x, rate) - target).abs().mean().backward()
    assert_all_grads(model, nonzero=False)
    assert output_layer(model).weight.grad.abs().sum() > 0
    # With a non-zero output layer the gradient reaches every parameter, the rate embedding included.
    model.zero_grad()
    with torch.no_grad():
        torch.nn.init.normal_(output_layer(model).weight, std=0.1)
    (model(x, rate) - target).abs().mean().backward()
    assert_all_grads(model)


@pytest.mark.parametrize("make", REFINERS)
def test_refiner_is_conditioned_on_rate(make):
    torch.manual_seed(0)
    model = make()
    with torch.no_grad():
        torch.nn.init.normal_(output_layer(model).weight, std=0.1)
    x = (torch.rand(1, 12, L) * 2 - 1).expand(2, 12, L)
    y = model(x, torch.tensor([0.5, 2.0]))
    assert not torch.allclose(y[0], y[1], atol=1e-5), "the rate must change the refinement"


def test_mapper_is_frame_by_frame_and_generator_has_temporal_context():
    torch.manual_seed(0)
    mapper, gen = make_mapper(), make_generator()
    for m in (mapper, gen):
        with torch.no_grad():
            torch.nn.init.normal_(output_layer(m).weight, std=0.1)
    x = torch.rand(1, 32, L) * 2 - 1
    x2 = x.clone()
    x2[0, 10] += 0.5
    rate = torch.tensor([1.5])
    changed_m = (mapper(x2, rate) - mapper(x, rate)).abs().amax(-1)[0] > 1e-6
    assert changed_m.nonzero().flatten().tolist() == [10]
    changed_g = (gen(x2, rate) - gen(x, rate)).abs().amax(-1)[0] > 1e-6
    idx = changed_g.nonzero().flatten().tolist()
    # kernel 5 with dilations 1 and 2: a receptive field of +-6 frames
    assert 9 in idx and 11 in idx, idx
    assert min(idx) >= 4 and max(idx) <= 16, idx


# --- LatentDiscriminator ------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("layers,t_out", [(2, 16), (3, 8)])
def test_discriminator_shapes(conditional, layers, t_out):
    torch.manual_seed(0)
    d = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=16, layers=layers, conditional=conditional))
    x = torch.rand(4, 32, L) * 2 - 1
    cond = torch.rand(4, 32, L) * 2 - 1 if conditional else None
    rate = torch.tensor([0.5, 0.75, 1.5, 2.0])
    scores, features = d(x, rate, cond)
    assert scores.shape == (4, t_out)
    assert isinstance(features, list) and len(features) == layers
    assert features[0].shape == (4, 16, 32)
    assert features[-1].shape == (4, 16, t_out)
    assert torch.isfinite(scores).all()


def test_discriminator_uses_condition_and_rate():
    torch.manual_seed(0)
    d = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=16, layers=2, conditional=True)).eval()
    x = torch.rand(2, 16, L) * 2 - 1
    c = torch.rand(2, 16, L) * 2 - 1
    rate = torch.tensor([0.5, 2.0])
    s, _ = d(x, rate, c)
    s_other_cond, _ = d(x, rate, torch.rand(2, 16, L) * 2 - 1)
    s_other_rate, _ = d(x, torch.tensor([2.0, 0.5]), c)
    assert not torch.allclose(s, s_other_cond)
    assert not torch.allclose(s, s_other_rate)


@pytest.mark.parametrize("conditional", [True, False])
def test_discriminator_gradients_include_spectral_norm(conditional):
    torch.manual_seed(0)
    d = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=16, layers=3, conditional=conditional))
    names = [n for n, _ in d.named_parameters()]
    sn = [n for n in names if "parametrizations.weight.original" in n]
    assert len(sn) == 4, names  # three convs and the head, all spectrally normalised
    x = torch.rand(2, 32, L, requires_grad=True)
    cond = torch.rand(2, 32, L) if conditional else None
    scores, features = d(x, torch.tensor([0.5, 2.0]), cond)
    (((scores - 1) ** 2).mean() + sum(f.abs().mean() for f in features)).backward()
    assert_all_grads(d)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_discriminator_spectral_norm_bounds_weights():
    """Spectral norm keeps every conv's largest singular value near 1 whatever the raw weights are."""
    torch.manual_seed(0)
    d = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=16, layers=2, conditional=False))
    with torch.no_grad():
        for conv in list(d.convs) + [d.head]:
            conv.parametrizations.weight.original.mul_(50)
    d.train()
    for _ in range(30):  # power iterations run on each training-mode forward
        d(torch.rand(1, 16, L), torch.tensor([1.0]))
    for conv in list(d.convs) + [d.head]:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("relative", [False, True])
def test_a_relative_spectrogram_discriminator_does_not_see_the_level(relative):
    """relative: each view is read against its own mean over the window, so a window played a few
    dB louder or quieter scores the same (a stretch's level change is no cue); without it, it does
    not. (Bands at the floor stay there at any level: the frames here are well above it.)"""
    from gan_stretch.models import SpectrogramDiscriminator, SpectrogramDiscriminatorConfig

    torch.manual_seed(0)
    cfg = SpectrogramDiscriminatorConfig(n_freq=257, channels=8, delta=10.0, relative=relative)
    d = SpectrogramDiscriminator(cfg).eval()
    db = -50 + 10 * torch.randn(2, 32, 257)
    rate = torch.tensor([0.5, 2.0])
    scores = lambda x: torch.cat(d(x, rate, db - 3.0)[0], 1)  # noqa: E731
    moved = lambda x: float((scores(x) - scores(db)).abs().max())  # noqa: E731
    louder = moved(db + 4.0)
    assert louder < 1e-5 if relative else louder > 5e-3, louder  # an untrained stack answers little: 1e-2
    assert moved(db + 4.0 * torch.linspace(-1, 1, 32)[None, :, None]) > 5e-3  # a level that moves in time is seen


def test_spectrogram_discriminator_with_the_change_plane_tells_texture_from_its_smoothed_self():
    """Frames whose levels flicker from one frame to the next (real) against the same frames
    averaged with their neighbours in time (what a slowed stretch's interpolation does): with the
    frame-to-frame change plane a short training tells them apart on held-out windows; the plain
    view, scaled for levels, learns nothing in the same steps (why the recordings discriminator has it)."""
    from gan_stretch.models import SpectrogramDiscriminator, SpectrogramDiscriminatorConfig
    from gan_stretch.train import losses

    f = 129

    def draw(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        level = -40 - 20 * torch.rand(n, 1, f, generator=g)  # each window's spectrum
        rough = (level + 4 * torch.randn(n, 33, f, generator=g)).clamp(-120, 0)
        smooth = 0.5 * (rough[:, 1:] + rough[:, :-1])  # halfway between frames: half as many changes
        return rough[:, :32], smooth[torch.randperm(n, generator=g)]  # unpaired: other windows

    def held_out_accuracy(delta: float) -> float:
        torch.manual_seed(0)
        cfg = SpectrogramDiscriminatorConfig(n_freq=f, sample_rate=22050, channels=8, conditional=False, delta=delta)
        d = SpectrogramDiscriminator(cfg)
        opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.8, 0.99))
        g, rate = torch.Generator().manual_seed(1), torch.full((16,), 0.5)
        for _ in range(60):
            real, fake = draw(g, 16)
            loss = sum(losses.discriminator_loss(a, b) for a, b in zip(d(real, rate)[0], d(fake, rate)[0]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            real, fake = draw(torch.Generator().manual_seed(2), 64)
            score = lambda x: sum(s.mean(1) for s in d(x, torch.full((64,), 0.5))[0]) / 2  # noqa: E731
            return float(((score(real) > 0.5).float().mean() + (score(fake) < 0.5).float().mean()) / 2)

    assert held_out_accuracy(10.0) > 0.9
    assert held_out_accuracy(0.0) < 0.7
