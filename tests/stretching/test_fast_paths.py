"""The CPU inference paths taken for speed give what the plain modules give.

Without gradients the autoencoder's layers run as oneDNN products with the activation fused, in
row pieces (gan_stretch.models.autoencoder._layers); with gradients (training) the plain
Sequential runs, unchanged."""

from __future__ import annotations

import pytest
import torch

from gan_stretch.models import AutoencoderConfig, FrameAutoencoder
from gan_stretch.models.autoencoder import FUSED_ROWS


@pytest.fixture(scope="module")
def ae():
    torch.manual_seed(0)
    return FrameAutoencoder(AutoencoderConfig(n_freq=257, hidden=[96, 48], latent=16)).eval()


@pytest.mark.parametrize("rows", [1, 7, 128, FUSED_ROWS, FUSED_ROWS + 1, 2 * FUSED_ROWS + 300])
def test_fused_layers_match_the_modules(ae, rows):
    torch.manual_seed(rows)
    db = -120 * torch.rand(2, rows, 257)
    with torch.enable_grad():  # the plain modules, as training runs them
        want_lat = ae.encode(db).detach()
        want = ae.decode(want_lat).detach()
    with torch.no_grad():
        lat = ae.encode(db)
        got = ae.decode(lat)
    assert lat.shape == want_lat.shape and got.shape == want.shape
    assert torch.allclose(lat, want_lat, atol=1e-5)
    assert torch.allclose(got, want, atol=1e-3)  # dB on a 120 dB scale
    assert float(got.max()) <= 0 and float(got.min()) >= -120


def test_training_keeps_gradients(ae):
    x = (-120 * torch.rand(3, 257)).requires_grad_(True)
    ae(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch's flags() says it on every CPU
def test_onednn_turned_off_runs_the_modules(ae):
    db = -120 * torch.rand(5, 257)
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        got = ae.encode(db)
        want = torch.cat(
            [ae.encoder(1 + 2 * (db - db.amax(-1, keepdim=True)) / 120), 1 + 2 * db.amax(-1, keepdim=True) / 120], -1
        )
    assert torch.equal(got, want)
