"""Held-out evaluation during training: benchmark metrics of the model so far on a few held-out
pieces, through the Stretcher users get, logged to TensorBoard with audio and spectrograms."""

from __future__ import annotations

import numpy as np
import torch

from gan_stretch.data.manifest import open_corpora
from gan_stretch.dsp import spectrum
from gan_stretch.models.model_file import Model

EXAMPLE_RATES = (0.5, 2.0)


@torch.no_grad()
def evaluate(run, model: Model, step: int) -> dict:
    """Benchmark metrics of ``model`` on a few held-out pieces, logged to TensorBoard by ``run``
    (a :class:`~gan_stretch.train.common.Run`; only its main process evaluates)."""
    if not run.is_main or run.recipe.eval_pieces == 0:
        return {}
    from gan_stretch.measures import metrics
    from gan_stretch.stretching.stretcher import Stretcher

    sets = open_corpora(run.recipe.data)
    corpus = next((c for c in sets if c.kind == "true-tempo"), sets[0])
    items = corpus.split("heldout")[: run.recipe.eval_pieces]
    if not items:
        return {}
    # the pipeline users get; an autoencoder alone is scored on its own decoding (residual
    # decoding would hide it: with no refiner it is plain interpolation of the input)
    stretcher = Stretcher(model, device=str(run.device), residual=model.kind != "autoencoder")
    sr, scores = corpus.sample_rate, {}
    for k, item in enumerate(items):
        src = corpus.load(item, 1.0)
        for rate in corpus.rates(item):
            out = stretcher.stretch(src, sr, rate)
            truth = corpus.load(item, rate)
            onsets = corpus.onsets(item, rate)
            values = {
                "logmel_db": metrics.log_mel_distance(out, truth, sr),
                "spectral_convergence": metrics.spectral_convergence(out, truth),
                "pitch_cents": metrics.pitch_shift_cents(out, src, sr),
                "oversmoothing_db": metrics.oversmoothing_db(out, truth, sr),
            }
            if onsets is not None:  # both axes: distance above, perception here
                values.update(
                    attack_db=metrics.attack_db(out, truth, sr, onsets),
                    smear_db=metrics.smear_db(out, truth, sr, onsets),
                )
            if run.recipe.eval_visqol:
                values["visqol"] = metrics.visqol(out, truth, sr)
            for name, value in values.items():
                if np.isfinite(value):
                    scores.setdefault(name, {}).setdefault(rate, []).append(value)
            if k == 0 and rate in EXAMPLE_RATES:
                run.writer.add_audio(f"audio/rate_{rate:g}", out[None], step, sample_rate=sr)
                run.writer.add_image(
                    f"spectrogram/rate_{rate:g}",
                    spectrogram_image(out, truth, stretcher.spectral),
                    step,
                    dataformats="HW",
                )
    values = {}
    for name, per_rate in scores.items():
        values.update({f"eval/{name}/rate_{r:g}": float(np.mean(v)) for r, v in per_rate.items()})
        values[f"eval/{name}/mean"] = float(np.mean([np.mean(v) for v in per_rate.values()]))
    run.log(values, step)
    run.print(f"step {step}: held-out log-mel {values['eval/logmel_db/mean']:.2f} dB")
    return values


def spectrogram_image(out: np.ndarray, truth: np.ndarray, cfg) -> np.ndarray:
    """Output (top) over truth (bottom), dB mapped to [0, 1], low frequencies at the bottom: [H, W]."""
    rows = []
    for wave in (out, truth):
        mag = spectrum.stft(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), cfg).abs()
        db = spectrum.magnitude_to_db(mag, spectrum.reference_db(mag), cfg).clamp_min(-80)
        rows.append(torch.flip((db[:512] + 80) / 80, dims=[0]))
    n = min(r.shape[1] for r in rows)
    return torch.cat([r[:, :n] for r in rows], dim=0).numpy()
