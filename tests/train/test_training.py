"""The three training stages on a tiny true-tempo corpus: outputs, resuming, determinism.

Every run is tiny (tens of steps, 16-wide networks) and runs in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_stretch.data.corpus import build_true_tempo
from gan_stretch.data.manifest import Corpus
from gan_stretch.errors import CheckpointError, ConfigError, TrainingError
from gan_stretch.io import checkpoint
from gan_stretch.models.model_file import load_model
from gan_stretch.stretching.stretcher import Stretcher
from gan_stretch.train import run as train
from gan_stretch.train.common import Run
from gan_stretch.train.recipes import load_recipe, recipe_source

from conftest import DEBUG, RECIPES, overrides, partial_files, requires, run_stage, weights


def assert_same_tensors(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def event_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "tb").rglob("events.out.tfevents.*"))


def scalar_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in event_files(run_dir):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


@pytest.fixture(scope="module")
def ae_model(tiny_corpus, tmp_path_factory) -> Path:
    """A 30-step autoencoder: the frozen stage 1 of the mapper and GAN runs."""
    run_dir = tmp_path_factory.mktemp("runs") / "autoencoder"
    run_stage("autoencoder", tiny_corpus, run_dir, 30)
    return run_dir / "model.safetensors"


# --- the corpus --------------------------------------------------------------------------------


def test_corpus_layout(tiny_corpus):
    c = Corpus(tiny_corpus.root)
    assert c.kind == "true-tempo" and c.sample_rate == 22050
    assert len(c.items) == 3
    assert len(c.split("train")) == 2 and len(c.split("heldout")) == 1
    for item in c.items:
        assert c.rates(item) == [0.5, 2.0]
        for rate in (1.0, 0.5, 2.0):
            wave = c.load(item, rate)
            assert wave.dtype == np.float32 and wave.ndim == 1
            assert len(wave) == round(3.0 * 22050 / rate)  # the same notes, truly played faster or slower
            assert np.abs(wave).max() > 1e-3


def test_corpus_rebuild_reuses_renders(tiny_corpus):
    files = sorted(tiny_corpus.root.rglob("audio/*/*"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    again = build_true_tempo(tiny_corpus.root, pieces=3, heldout=0.55, seconds=3.0, rates=(0.5, 2.0))
    assert [it.id for it in again.items] == [it.id for it in tiny_corpus.items]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_corpus_leaves_no_temporary_files(tiny_corpus, ae_model):
    """Renders, manifest and caches (the autoencoder run wrote the frame cache) leave no partial
    file; the pattern is the one atomic writes really use (checked on a fresh one)."""
    assert partial_files(tiny_corpus.root) == []
    probe = checkpoint.partial_path(tiny_corpus.root / "audio" / "probe.flac")
    try:
        assert partial_files(tiny_corpus.root) == [probe]
    finally:
        probe.unlink()


# --- the three stages --------------------------------------------------------------------------


def test_autoencoder_run(ae_model, tiny_corpus):
    run_dir = ae_model.parent
    model = load_model(ae_model)
    assert model.kind == "autoencoder" and model.refiner is None
    assert model.autoencoder.cfg.hidden == [64, 32] and model.autoencoder.cfg.latent == 16
    assert event_files(run_dir)
    assert {"loss/total", "loss/linear_db_l1", "loss/mel_db_l1", "lr"} <= scalar_tags(run_dir)
    assert json.loads((run_dir / "recipe.json").read_text())["steps"] == 30
    # the model file names the recipe file it was trained from and the hash of every setting used
    assert model.meta["recipe"] == recipe_source(
        load_recipe(DEBUG / "autoencoder.yaml", [f"data={tiny_corpus.root}", f"run_dir={run_dir}", "steps=30"])
    )
    assert model.meta["recipe"]["file"] == str(DEBUG / "autoencoder.yaml")
    state = run_dir / "checkpoints" / "last.safetensors"
    assert checkpoint.load(state)[1]["step"] == 30
    with pytest.raises(CheckpointError, match="training-state"):
        load_model(state)
    # the exported model stretches
    y = Stretcher(ae_model, device="cpu", griffin_lim=2).stretch(np.sin(np.arange(22050) * 0.1), 22050, 2.0)
    assert y.shape == (11025,) and np.isfinite(y).all()


def test_autoencoder_learns(tiny_corpus, ae_model):
    """The logged loss at the end is well below the loss at the start."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for f in event_files(ae_model.parent):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if "loss/total" in acc.Tags()["scalars"]:
            values += [(e.step, e.value) for e in acc.Scalars("loss/total")]
    values.sort()
    assert values[0][0] == 5 and values[-1][0] == 30
    assert values[-1][1] < 0.8 * values[0][1]


@pytest.mark.parametrize("stage,refiner", [("mapper", "StretchMapper"), ("gan", "LatentGenerator")])
def test_sequence_stage_run(stage, refiner, tiny_corpus, ae_model, tmp_path):
    run_dir = tmp_path / stage
    run_stage(stage, tiny_corpus, run_dir, 20, ae=ae_model)
    model = load_model(run_dir / "model.safetensors")
    assert model.kind == stage
    assert type(model.refiner).__name__ == refiner
    # the frozen autoencoder is carried over unchanged
    assert_same_tensors(model.autoencoder.state_dict(), load_model(ae_model).autoencoder.state_dict())
    # ... and the refiner has moved away from its identity initialisation
    out = model.refiner.outp if stage == "gan" else model.refiner.net[-1]
    assert out.weight.abs().sum() > 0
    assert event_files(run_dir)
    tags = scalar_tags(run_dir)
    assert {"loss/total", "loss/latent_l1", "loss/mel_db_l1"} <= tags
    if stage == "gan":  # warmup_steps=5: the discriminator has been trained too
        assert {"loss/discriminator", "loss/adversarial", "loss/feature_matching", "g/latent_spread"} <= tags
    y = Stretcher(model, device="cpu", griffin_lim=2).stretch(np.sin(np.arange(22050) * 0.1), 22050, 0.5)
    assert y.shape == (44100,) and np.isfinite(y).all()


@pytest.mark.parametrize("stage", ["mapper", "gan"])
def test_fine_tuning_starts_from_the_init_models_refiner(stage, tiny_corpus, ae_model, tmp_path, capsys):
    first = tmp_path / "first"
    run_stage(stage, tiny_corpus, first, 10, ae=ae_model)
    init = first / "model.safetensors"
    tuned = tmp_path / "tuned"
    run_stage(stage, tiny_corpus, tuned, 1, f"init={init}", "lr=1e-12", ae=ae_model)  # one step that moves nothing
    assert f"starting from the {stage} of {init}" in capsys.readouterr().out
    a, b = load_model(init).refiner.state_dict(), load_model(tuned / "model.safetensors").refiner.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    other = "gan" if stage == "mapper" else "mapper"
    with pytest.raises(ConfigError, match=f"is a {stage} model"):
        run_stage(other, tiny_corpus, tmp_path / "wrong-kind", 1, f"init={init}", ae=ae_model)
    assert not (tmp_path / "wrong-kind").exists()  # refused before the run folder is made


def test_generator_recipe_trains_no_discriminator_and_exports_a_generator(tiny_corpus, ae_model, tmp_path, capsys):
    """Every adversarial weight 0: no discriminator is built, optimized or checkpointed, and the
    model file is of kind generator; a gan run (with discriminators) can start from it, a mapper
    run cannot."""
    run_dir = tmp_path / "generator"
    no_adv = ("adv_weight=0", "fm_weight=0", "spec_adv_weight=0", "spec_fm_weight=0")
    run_stage("gan", tiny_corpus, run_dir, 10, *no_adv, ae=ae_model)
    state, meta = checkpoint.load(run_dir / "checkpoints" / "last.safetensors")
    assert {k.split(".")[1] for k in state} == {"generator", "ema"}
    assert set(meta["optimizers"]) == {"generator"}
    assert not any("discriminator" in t or t.startswith("d/") for t in scalar_tags(run_dir))
    model = load_model(run_dir / "model.safetensors")
    assert model.kind == "generator" and model.meta["kind"] == "generator"
    assert type(model.refiner).__name__ == "LatentGenerator"
    capsys.readouterr()
    tuned = tmp_path / "tuned"
    run_stage("gan", tiny_corpus, tuned, 6, f"init={run_dir / 'model.safetensors'}", ae=ae_model)
    assert "starting from the generator of" in capsys.readouterr().out
    assert load_model(tuned / "model.safetensors").kind == "gan"  # debug gan.yaml: the latent discriminator on
    assert any(k.startswith("module.discriminator.") for k in weights(tuned / "checkpoints" / "last.safetensors"))
    with pytest.raises(ConfigError, match="is a generator model; a mapper run needs a mapper model"):
        run_stage("mapper", tiny_corpus, tmp_path / "mapper", 1, f"init={run_dir / 'model.safetensors'}", ae=ae_model)


def test_fine_tuning_refuses_a_model_of_another_autoencoder(tiny_corpus, ae_model, tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="another autoencoder"):
        run_stage("gan", tiny_corpus, tmp_path / "run", 1, f"init={tiny_model}", ae=ae_model)
    assert not (tmp_path / "run").exists()


def test_evaluation_logs_held_out_scores(tiny_corpus, ae_model, tmp_path):
    run_dir = tmp_path / "eval"
    run_stage("autoencoder", tiny_corpus, run_dir, 2, "eval_pieces=1")  # evaluates at the last step
    tags = scalar_tags(run_dir)
    assert {
        "eval/logmel_db/mean",
        "eval/logmel_db/rate_0.5",
        "eval/logmel_db/rate_2",
        "eval/spectral_convergence/mean",
        "eval/pitch_cents/rate_2",
    } <= tags


# --- resuming and determinism ------------------------------------------------------------------


def crash_at(monkeypatch, crash_step: int):
    """Make Run.optimize raise at ``crash_step``, as if the run had been killed there."""
    original = Run.optimize

    def optimize(self, name, loss, base_lr, step):
        if step == crash_step:
            raise KeyboardInterrupt(f"simulated crash at step {step}")
        return original(self, name, loss, base_lr, step)

    monkeypatch.setattr(Run, "optimize", optimize)


@pytest.mark.parametrize("stage", ["autoencoder", "mapper", "gan"])
def test_resumed_run_continues_from_its_checkpoint(stage, tiny_corpus, ae_model, tmp_path, monkeypatch, capsys):
    """Killed at step 25 (last save at 20), rerun: it resumes at 20 and ends where a run that was
    never interrupted ends, optimizer moments, EMA and discriminator included."""
    ae = None if stage == "autoencoder" else ae_model
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    with monkeypatch.context() as m:
        crash_at(m, 25)
        with pytest.raises(KeyboardInterrupt):
            run_stage(stage, tiny_corpus, interrupted, 40, "save_every=10", ae=ae)
    assert checkpoint.load(interrupted / "checkpoints" / "last.safetensors")[1]["step"] == 20
    capsys.readouterr()

    run_stage(stage, tiny_corpus, interrupted, 40, "save_every=10", ae=ae)
    out = capsys.readouterr().out
    assert "resuming from" in out and "at step 20" in out
    run_stage(stage, tiny_corpus, straight, 40, "save_every=10", ae=ae)
    assert "resuming" not in capsys.readouterr().out

    assert_same_tensors(weights(interrupted / "model.safetensors"), weights(straight / "model.safetensors"))
    assert_same_tensors(
        weights(interrupted / "checkpoints" / "last.safetensors"),
        weights(straight / "checkpoints" / "last.safetensors"),
    )


def test_rerun_with_more_steps_continues(tiny_corpus, tmp_path, capsys):
    """steps=20, then the same recipe with steps=40: it resumes at 20 and matches a 40-step run.

    With a constant learning rate (lr_min_ratio=1): the cosine schedule is stretched over `steps`,
    so the first 20 steps of a 20-step run and of a 40-step run use different rates by design.
    """
    extra = ("save_every=10", "lr_min_ratio=1.0")
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    run_stage("autoencoder", tiny_corpus, resumed, 20, *extra)
    first = weights(resumed / "model.safetensors")
    capsys.readouterr()
    run_stage("autoencoder", tiny_corpus, resumed, 40, *extra)
    assert "resuming from" in capsys.readouterr().out
    run_stage("autoencoder", tiny_corpus, straight, 40, *extra)
    final = weights(resumed / "model.safetensors")
    assert_same_tensors(final, weights(straight / "model.safetensors"), exact=False)
    assert not all(torch.equal(first[k], final[k]) for k in first)  # it did train on
    assert checkpoint.load(resumed / "checkpoints" / "last.safetensors")[1]["step"] == 40


def test_resume_refuses_a_checkpoint_of_an_edited_recipe(tiny_corpus, tmp_path, capsys):
    """A rerun after a recipe edit (here: lr) does not continue
    the old checkpoint: it stops before writing anything, naming the settings that changed; run-only
    settings (steps, logging) still resume; resume=force continues on purpose."""
    run_dir = tmp_path / "run"
    run_stage("autoencoder", tiny_corpus, run_dir, 10, "save_every=5", "lr=1e-3")
    files = {p: p.read_bytes() for p in [run_dir / "recipe.json", run_dir / "model.safetensors"]}
    with pytest.raises(
        CheckpointError, match=r"other training settings \(lr 0\.001 -> 0\.002\); use a new run_dir"
    ) as e:
        run_stage("autoencoder", tiny_corpus, run_dir, 20, "save_every=5", "lr=2e-3")
    assert "\n" not in str(e.value) and "resume=force" in str(e.value)
    assert {p: p.read_bytes() for p in files} == files  # neither the recipe record nor the model was touched
    assert checkpoint.load(run_dir / "checkpoints" / "last.safetensors")[1]["step"] == 10
    capsys.readouterr()
    run_stage("autoencoder", tiny_corpus, run_dir, 15, "save_every=5", "lr=2e-3", "resume=force")
    out = capsys.readouterr().out
    assert "warning: resume=force" in out and "at step 10" in out
    run_stage("autoencoder", tiny_corpus, run_dir, 20, "save_every=5", "lr=2e-3", "log_every=1", "eval_every=7")
    assert "resuming from" in capsys.readouterr().out  # written with lr=2e-3 by the forced run: same settings


def test_resume_checks_a_checkpoint_from_before_recipe_hashes_on_its_recorded_recipe(tiny_corpus, tmp_path, capsys):
    run_dir = tmp_path / "old"
    run_stage("autoencoder", tiny_corpus, run_dir, 5)
    last = run_dir / "checkpoints" / "last.safetensors"
    tensors, meta = checkpoint.load(last)
    assert len(meta.pop("training_sha256")) == 16
    checkpoint.save(last, tensors, meta)  # as checkpoints were written before they recorded the hash
    with pytest.raises(CheckpointError, match=r"\(latent 16 -> 8; it predates recorded recipe hashes\)"):
        run_stage("autoencoder", tiny_corpus, run_dir, 10, "latent=8")
    capsys.readouterr()
    run_stage("autoencoder", tiny_corpus, run_dir, 10)
    out = capsys.readouterr().out
    assert "predates recorded recipe hashes; the settings it records match" in out and "at step 5" in out
    del meta["recipe"]
    checkpoint.save(last, tensors, meta)
    with pytest.raises(CheckpointError, match="a recipe it does not record"):
        run_stage("autoencoder", tiny_corpus, run_dir, 15)


def test_resume_accepts_a_checkpoint_from_before_a_setting_was_added(tiny_corpus, tmp_path, monkeypatch):
    """A setting added since a checkpoint was written (LATER_SETTINGS, at the value that reproduces
    that run) is absent from its recorded recipe and from the hash it recorded: the run resumes;
    set to another value, it is refused by name."""
    from gan_stretch.train import recipes

    run_dir = tmp_path / "before"
    monkeypatch.setitem(recipes.LATER_SETTINGS, "lr", 2e-3)  # as if lr had been added since, at 2e-3
    run_stage("autoencoder", tiny_corpus, run_dir, 5, "lr=2e-3")
    last = run_dir / "checkpoints" / "last.safetensors"
    tensors, meta = checkpoint.load(last)
    del meta["recipe"]["lr"]  # written before lr existed: neither its recipe nor its hash had it
    meta["training_sha256"] = recipes.settings_hash(
        {k: v for k, v in recipes.training_settings(meta["recipe"]).items() if k != "lr"}
    )
    checkpoint.save(last, tensors, meta)
    with pytest.raises(CheckpointError, match=r"\(lr 0.002 -> 0.001\)"):
        run_stage("autoencoder", tiny_corpus, run_dir, 10, "lr=1e-3")
    run_stage("autoencoder", tiny_corpus, run_dir, 10, "lr=2e-3")
    assert checkpoint.load(last)[1]["step"] == 10


def test_same_seed_same_weights(tiny_corpus, tmp_path):
    for name in ("a", "b"):
        run_stage("autoencoder", tiny_corpus, tmp_path / name, 10, "seed=5")
    run_stage("autoencoder", tiny_corpus, tmp_path / "c", 10, "seed=6")
    a, b, c = (weights(tmp_path / n / "model.safetensors") for n in "abc")
    assert_same_tensors(a, b)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters


def with_autoencoder_state(run_dir: Path, ae_model: Path) -> Path:
    """A run folder whose last checkpoint is the autoencoder run's training state."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.safetensors").write_bytes(
        (ae_model.parent / "checkpoints" / "last.safetensors").read_bytes()
    )
    return run_dir


def test_resume_refuses_another_stages_state(tiny_corpus, ae_model, tmp_path):
    run_dir = with_autoencoder_state(tmp_path / "mixed", ae_model)
    with pytest.raises(CheckpointError, match="not a mapper training state"):
        run_stage("mapper", tiny_corpus, run_dir, 5, ae=ae_model)


def test_resume_refuses_a_different_architecture(tiny_corpus, ae_model, tmp_path):
    run_dir = with_autoencoder_state(tmp_path / "arch", ae_model)
    with pytest.raises(CheckpointError, match=r"other training settings \(latent 16 -> 8\)"):
        run_stage("autoencoder", tiny_corpus, run_dir, 40, "latent=8")
    with pytest.raises(CheckpointError, match="does not match") as e:  # forced: the weights do not fit
        run_stage("autoencoder", tiny_corpus, run_dir, 40, "latent=8", "resume=force")
    assert "\n" not in str(e.value) and "the network's size changed: " in str(e.value)  # one line, not torch's dump


def test_non_finite_loss_stops_training(tiny_corpus, tmp_path, monkeypatch):
    import gan_stretch.train.autoencoder as stage

    real = stage.db_l1
    calls = {"n": 0}

    def db_l1(pred, target):
        calls["n"] += 1
        return real(pred, target) * (float("nan") if calls["n"] > 12 else 1.0)

    monkeypatch.setattr(stage, "db_l1", db_l1)
    run_dir = tmp_path / "nan"
    with pytest.raises(TrainingError, match="nan") as e:
        run_stage("autoencoder", tiny_corpus, run_dir, 20, "save_every=10")
    assert "last.safetensors" in str(e.value)  # it says which good checkpoint is kept
    assert checkpoint.load(run_dir / "checkpoints" / "last.safetensors")[1]["step"] == 10


def test_missing_corpus_and_autoencoder(tmp_path):
    from gan_stretch.errors import GanStretchError

    with pytest.raises(GanStretchError, match="manifest.json"):
        train(RECIPES / "autoencoder.yaml", [f"data={tmp_path / 'nothing'}", f"run_dir={tmp_path / 'r'}", "steps=1"])
    with pytest.raises(CheckpointError, match="not found"):
        train(
            RECIPES / "mapper.yaml",
            [
                f"data={tmp_path}",
                f"run_dir={tmp_path / 'm'}",
                "steps=1",
                f"autoencoder={tmp_path / 'missing.safetensors'}",
            ],
        )
    assert not (tmp_path / "r").exists() and not (tmp_path / "m").exists()  # nothing was started


@pytest.mark.slow
@requires("fluidsynth")
def test_heldout_only_corpus_renders_only_the_evaluation_pieces(tmp_path):
    c = build_true_tempo(tmp_path / "eval", pieces=3, heldout=0.55, seconds=1.0, rates=(2.0,), splits=("heldout",))
    assert [i.split for i in c.items] == ["heldout"]  # bach/bwv1.6 alone, as in the tiny corpus
    assert len(list((tmp_path / "eval" / "audio").iterdir())) == 1


def test_gan_trains_on_teacher_targets(tiny_corpus, ae_model, tmp_path):
    """A teacher corpus made from the training inputs (fresh folder, no cache yet) trains the GAN."""
    from gan_stretch.data.teacher_corpora import teacher_from_corpus

    teacher = teacher_from_corpus(tiny_corpus.root, tmp_path / "wsola-teacher", "wsola")
    run_stage("gan", teacher, tmp_path / "gan", 6, ae=ae_model)
    assert load_model(tmp_path / "gan" / "model.safetensors").kind == "gan"
    run_stage("gan", teacher, tmp_path / "gan2", 6, ae=ae_model)  # the cached latents are read back
    assert torch.equal(
        weights(tmp_path / "gan" / "model.safetensors")["refiner.outp.weight"],
        weights(tmp_path / "gan2" / "model.safetensors")["refiner.outp.weight"],
    )


def test_gan_with_the_spectrogram_discriminator_and_residual_loss(tiny_corpus, ae_model, tmp_path):
    """The spectrogram discriminator (on the residual output users hear) and the residual mel loss
    train, log their terms and gradient norms, and the run resumes exactly with them."""
    run_dir = tmp_path / "gan-spec"
    extra = (
        "adv_weight=0",
        "fm_weight=0",
        "spec_adv_weight=1",
        "spec_fm_weight=2",
        "residual_loss=true",
        "spec_d_batch=2",
        "transients=true",
        "lr_min_ratio=1.0",
    )  # a constant rate: see the test above
    run_stage("gan", tiny_corpus, run_dir, 12, *extra, ae=ae_model)
    tags = scalar_tags(run_dir)
    assert {
        "loss/spec_adversarial",
        "loss/spec_feature_matching",
        "loss/spectrogram_discriminator",
        "grad_norm/generator",
        "grad_norm/spectrogram_discriminator",
    } <= tags
    assert "loss/adversarial" not in tags  # the latent discriminator is off with its weights at 0
    model = load_model(run_dir / "model.safetensors")
    assert model.meta["transients"] is True and Stretcher(model, device="cpu").transients
    # the checkpoint holds the spectrogram discriminator and its optimizer: a rerun to more steps
    # continues from it (same weights as one uninterrupted run)
    whole = tmp_path / "whole"
    run_stage("gan", tiny_corpus, whole, 16, *extra, ae=ae_model)
    run_stage("gan", tiny_corpus, run_dir, 16, *extra, ae=ae_model)
    a, b = load_model(whole / "model.safetensors"), load_model(run_dir / "model.safetensors")
    assert_same_tensors(a.refiner.state_dict(), b.refiner.state_dict(), exact=False)


def test_the_render_spectrogram_discriminator_sees_the_change_plane_when_asked():
    """spec_delta gives the render spectrogram discriminator the recordings one's change plane; at
    its default (0, as the adversarial study ran it) the recipe's settings hash is the one it had."""
    from gan_stretch.dsp.spectrum import SpectralConfig
    from gan_stretch.train.common import State
    from gan_stretch.train.gan import add_discriminators

    spec = SpectralConfig()
    for delta in (0.0, 10.0):
        recipe = load_recipe(RECIPES / "gan.yaml", ["spec_adv_weight=1", f"spec_delta={delta}"])
        state = State({})
        add_discriminators(recipe, state, spec, 16, True)
        assert state.modules["spectrogram_discriminator"].cfg.delta == delta
    plain = recipe_source(load_recipe(RECIPES / "gan.yaml", ["spec_adv_weight=1"]))["sha256"]
    assert recipe_source(load_recipe(RECIPES / "gan.yaml", ["spec_adv_weight=1", "spec_delta=0"]))["sha256"] == plain
    assert recipe_source(load_recipe(RECIPES / "gan.yaml", ["spec_adv_weight=1", "spec_delta=10"]))["sha256"] != plain


def test_logged_scalars_are_averages_since_the_last_log_point():
    """Tensors are averaged over the steps that reported them (read back in one transfer), plain
    numbers (the learning rate) are logged as they are at the log step, and a non-finite watched
    loss is reported with the step it happened at, even after finite ones."""
    from gan_stretch.train.scalars import Scalars

    s = Scalars()
    for step, (loss, lr) in enumerate([(1.0, 0.3), (2.0, 0.2), (6.0, 0.1)]):
        values = {"loss/total": torch.tensor(loss), "lr": lr}
        if step > 0:
            values["loss/adversarial"] = torch.tensor(10.0 * step)  # after a warm-up step
        s.add(values)
        s.watch(step, "generator", torch.tensor(loss))
    means, bad = s.read(averages=True)
    assert means == {"loss/total": 3.0, "loss/adversarial": 15.0, "lr": 0.1} and bad is None
    s.add({"loss/total": torch.tensor(4.0)})
    for step, loss in ((3, 1.0), (4, float("inf")), (5, float("nan"))):
        s.watch(step, "generator", torch.tensor(loss))
    means, bad = s.read(averages=False)  # a save between log points: only the losses are checked
    assert means == {} and bad == (4, "generator", float("inf"))
    assert s.read(averages=True)[0] == {"loss/total": 4.0}  # the sums wait for the log point


def test_generator_conditioned_per_frame_trains_on_the_stretchers_plan(tiny_corpus, ae_model, tmp_path):
    """frame_features=true: the cached pairs carry each frame's local rate and attack mask as the
    Stretcher computes them (the same plan, here with attack_span [2, 2]), the generator trains on
    them, and its model file records both; the Stretcher gives it the features."""
    from gan_stretch.data.cache import file_digest, latent_cache
    from gan_stretch.dsp import onset_detection, timemap

    extra = ("adv_weight=0", "fm_weight=0", "transients=true", "frame_features=true", "attack_span=[2, 2]")
    run_dir = tmp_path / "frames"
    run_stage("gan", tiny_corpus, run_dir, 10, *extra, ae=ae_model)
    model = load_model(run_dir / "model.safetensors")
    assert model.refiner.cfg.frame_features == timemap.FRAME_FEATURES
    assert model.meta["attack_span_in_training"] == [2, 2]
    assert model.refiner.frame_inp.weight.abs().sum() > 0

    # the cache's features are the plan's: one pair recomputed
    ae = load_model(ae_model)

    pairs = latent_cache(tiny_corpus, ae, file_digest(ae_model), transients=True, span=(2, 2), features=True)
    three = latent_cache(tiny_corpus, ae, file_digest(ae_model), transients=True, features=True)
    assert pairs.features.shape == (pairs.source.shape[0], timemap.FRAME_FEATURES)
    assert pairs.features[:, 1].sum() < three.features[:, 1].sum()  # fewer attack frames with 2 each side
    cfg = ae.spectral
    item = tiny_corpus.split("train")[0]
    wave, truth = tiny_corpus.load(item, 1.0), tiny_corpus.load(item, float(pairs.rates[0]))
    onsets = onset_detection.onsets_of(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), cfg)
    tmap = timemap.TimeMap(np.array([0.0, len(wave)]), np.array([0.0, len(truth)]))
    plan = timemap.frame_plan(tmap, cfg, cfg.n_frames(len(wave)), onsets, span=(2, 2))
    want = timemap.frame_features(plan.positions, plan.attacks)
    assert torch.equal(pairs.features[: pairs.lengths[0]], want[: pairs.lengths[0]])

    y = Stretcher(model, device="cpu").stretch(np.sin(np.arange(22050) * 0.1), 22050, 0.5)
    assert y.shape == (44100,) and np.isfinite(y).all()


def test_fine_tuning_adds_per_frame_features_at_zero(tiny_corpus, ae_model, tmp_path, capsys):
    """init= a generator without per-frame features, frame_features=true: every shared weight comes
    from the init and the new input starts at zero, so the tuned generator's first outputs are the
    init's whatever the features say."""
    extra = ("adv_weight=0", "fm_weight=0", "transients=true")
    first = tmp_path / "first"
    run_stage("gan", tiny_corpus, first, 10, *extra, ae=ae_model)
    init = first / "model.safetensors"
    tuned = tmp_path / "tuned"
    run_stage("gan", tiny_corpus, tuned, 1, *extra, "frame_features=true", f"init={init}", "lr=1e-12", ae=ae_model)
    assert "its per-frame feature input added at zero" in capsys.readouterr().out
    a, b = load_model(init).refiner, load_model(tuned / "model.safetensors").refiner
    assert b.cfg.frame_features and not a.cfg.frame_features
    assert b.frame_inp.weight.abs().max() < 1e-6
    torch.manual_seed(0)
    latents, rate = torch.rand(2, 40, a.cfg.latent_dim) * 2 - 1, torch.tensor([0.5, 2.0])
    features = torch.randn(2, 40, b.cfg.frame_features)
    with torch.no_grad():
        torch.testing.assert_close(b(latents, rate, features), a(latents, rate), atol=1e-5, rtol=0)


def test_init_blend_exports_the_weight_average_of_the_tuned_and_init_refiners(tiny_corpus, ae_model, tmp_path):
    """init_blend=0.3: the model file's refiner is 0.3 of the init's and 0.7 of what the same run
    trains without the blend, weight by weight; the per-frame input the init lacks counts as zero."""
    extra = ("adv_weight=0", "fm_weight=0", "transients=true")
    first = tmp_path / "first"
    run_stage("gan", tiny_corpus, first, 10, *extra, ae=ae_model)
    init = first / "model.safetensors"
    tuned = ("frame_features=true", f"init={init}")
    run_stage("gan", tiny_corpus, tmp_path / "plain", 5, *extra, *tuned, ae=ae_model)
    run_stage("gan", tiny_corpus, tmp_path / "blend", 5, *extra, *tuned, "init_blend=0.3", ae=ae_model)
    a = load_model(init).refiner.state_dict()
    plain = load_model(tmp_path / "plain" / "model.safetensors")
    blend = load_model(tmp_path / "blend" / "model.safetensors")
    assert blend.meta["init_blend"] == 0.3 and blend.meta["init"] == str(init)
    assert "init_blend" not in plain.meta
    p, b = plain.refiner.state_dict(), blend.refiner.state_dict()
    assert not torch.allclose(p["outp.weight"], a["outp.weight"])  # the run moved away from the init
    for k in p:
        want = 0.7 * p[k] + 0.3 * (a[k] if k in a else 0)
        torch.testing.assert_close(b[k], want, atol=1e-6, rtol=1e-5)
    with pytest.raises(ConfigError, match="init_blend=0.5 needs init"):
        run_stage("gan", tiny_corpus, tmp_path / "no-init", 1, "init_blend=0.5", ae=ae_model)


def test_frame_features_and_attack_span_are_checked(tiny_corpus, ae_model, tmp_path):
    with pytest.raises(ConfigError, match="frame_features=true needs transients=true"):
        run_stage("gan", tiny_corpus, tmp_path / "a", 1, "frame_features=true", ae=ae_model)
    with pytest.raises(ConfigError, match="attack_span must be two frame counts"):
        run_stage("gan", tiny_corpus, tmp_path / "b", 1, "transients=true", "attack_span=[2, 2, 2]", ae=ae_model)
    with pytest.raises(ConfigError, match="attack_span must be in"):
        run_stage("gan", tiny_corpus, tmp_path / "c", 1, "transients=true", "attack_span=[2, 9]", ae=ae_model)
    assert not any((tmp_path / n).exists() for n in "abc")


# --- unpaired adversarial training on recordings ----------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Corpus:
    """A recordings corpus in the layout of ``gan-stretch data recordings``: stereo FLAC at mixed
    sample rates, 4 training recordings (one of two excerpts) and 3 held-out ones, 3 s each."""
    from gan_stretch.data.manifest import write_audio, write_manifest

    from conftest import music_like

    root = tmp_path_factory.mktemp("recordings")
    plan = [("a", 0, "train", 44100), ("a", 1, "train", 44100), ("b", 0, "train", 22050), ("c", 0, "train", 48000)]
    plan += [
        ("d", 0, "train", 44100),
        ("e", 0, "heldout", 44100),
        ("f", 0, "heldout", 22050),
        ("g", 0, "heldout", 48000),
    ]
    items = []
    for k, (name, x, split, sr) in enumerate(plan):
        item_id = f"pkg-{name}-x{x}"
        path = f"audio/{item_id}/r1.000.flac"
        (root / path).parent.mkdir(parents=True)
        write_audio(root / path, music_like(3 * sr, sr, seed=k, channels=2).T, sr)
        items.append(
            {"id": item_id, "split": split, "source": f"test:{name}", "audio": {"1.000": path}, "family": "recording",
             "recording": f"pkg/{name}", "sample_rate": sr, "channels": 2, "style": "test"}
        )  # fmt: skip
    write_manifest(root, {"kind": "recordings", "sample_rate": 44100, "seconds": 3.0, "rates": [1.0], "items": items})
    return Corpus(root)


def loads_of(monkeypatch) -> list[tuple[str, str]]:
    """Records (corpus folder, split) of every excerpt a Corpus reads from now on."""
    seen, original = [], Corpus.load

    def load(self, item, rate, mono=True):
        seen.append((str(self.root), item.split))
        return original(self, item, rate, mono)

    monkeypatch.setattr(Corpus, "load", load)
    return seen


def scalar_values(run_dir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = []
    for f in event_files(run_dir):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            out += [(e.step, e.value) for e in acc.Scalars(tag)]
    return [v for _, v in sorted(out)]


def sides(recs, real, fake) -> tuple[set[int], set[int]]:
    """The recordings a step's real and fake windows (rows of RecordingLatents.sample) come from."""

    def groups(rows, offsets, of):
        return {int(of[np.searchsorted(offsets, r, side="right") - 1]) for r in rows[:, 0].tolist()}

    return groups(real, recs.real_offsets, recs.real_groups), groups(fake, recs.offsets, recs.groups)


def test_recordings_cache_reads_the_training_split_only_and_draws_real_and_fake_apart(
    recordings, ae_model, monkeypatch
):
    from gan_stretch.data.cache import file_digest, recording_cache

    seen = loads_of(monkeypatch)
    model = load_model(ae_model)
    recs = recording_cache(recordings, model, file_digest(ae_model), [0.5, 2.0], transients=True, features=True)
    train_ids = [it.id for it in recordings.split("train")]
    assert seen and {split for _, split in seen} == {"train"}
    assert recs.items == train_ids and recs.recordings == ["pkg/a", "pkg/b", "pkg/c", "pkg/d"]
    assert sorted(set(recs.rates.tolist())) == [0.5, 2.0]
    # at rate r the generator's input is the excerpt's latents read r frames per output frame
    assert np.allclose(recs.lengths[recs.rates == 0.5] / recs.real_lengths, 2.0, atol=0.02)
    assert np.allclose(recs.lengths[recs.rates == 2.0] / recs.real_lengths, 0.5, atol=0.02)
    assert recs.features.shape == (recs.source.shape[0], 2)
    for step in range(20):
        real, fake, rate = recs.sample(np.random.default_rng(step), 6, 16)
        a, b = sides(recs, real, fake)
        assert a and b and not a & b  # never the same recording on both sides of a step
        assert set(rate.tolist()) <= {0.5, 2.0}
    seen.clear()  # a second call reads the cache, not the audio
    again = recording_cache(recordings, model, file_digest(ae_model), [0.5, 2.0], transients=True, features=True)
    assert not seen and torch.equal(again.source, recs.source) and torch.equal(again.real, recs.real)
    assert recs.real_db is None and recs.source_db is None  # frames only when asked for


def test_a_true_tempo_corpus_serves_as_unlabeled_music_its_tempo_1_renders_alone(tiny_corpus, ae_model, monkeypatch):
    """Domain adaptation: a true-tempo corpus of one sound bank in the recordings' place gives the
    discriminator its training pieces' tempo-1 renders only (never a stretched render: that would be
    paired truth), one recording per piece, and a piece is never on both sides of a step."""
    from gan_stretch.data.cache import file_digest, recording_cache

    read, original = [], Corpus.load

    def load(self, item, rate, mono=True):
        read.append((item.split, rate))
        return original(self, item, rate, mono)

    monkeypatch.setattr(Corpus, "load", load)
    model = load_model(ae_model)
    recs = recording_cache(tiny_corpus, model, file_digest(ae_model), [0.5, 2.0], transients=True)
    train_items = tiny_corpus.split("train")
    assert read == [("train", 1.0)] * len(train_items)
    assert recs.recordings == sorted({it.source for it in train_items}) and len(recs.recordings) == 2
    assert [tiny_corpus.recording(it) for it in train_items] == [it.source for it in train_items]
    for step in range(10):
        a, b = sides(recs, *recs.sample(np.random.default_rng(step), 4, 8)[:2])
        assert a and b and not a & b


def test_recordings_cache_keeps_the_frames_a_spectrogram_discriminator_reads(recordings, ae_model):
    """With frames: each excerpt's own dB frames (what the discriminator learns is real) and, per
    rate, the time-scaled frames the residual decoding starts from, row for row with the latents;
    with the decays, those carry the Stretcher's level change and nothing else differs."""
    from gan_stretch.data.cache import db_frames, file_digest, recording_cache, to_sample_rate

    model, digest = load_model(ae_model), file_digest(ae_model)
    cfg = model.spectral
    plain = recording_cache(recordings, model, digest, [0.5, 2.0], transients=True)
    flat = recording_cache(recordings, model, digest, [0.5, 2.0], transients=True, frames=True)
    dec = recording_cache(recordings, model, digest, [0.5, 2.0], transients=True, frames=True, decays=True)
    assert torch.equal(flat.real, plain.real) and torch.equal(flat.source, plain.source)  # latents unchanged
    assert flat.real_db.shape == (plain.real.shape[0], cfg.n_freq)
    assert flat.source_db.shape == (plain.source.shape[0], cfg.n_freq)
    item = recordings.split("train")[2]  # 22.05 kHz: read as is
    first = recordings.split("train").index(item)
    own = db_frames(to_sample_rate(recordings.load(item, 1.0), 22050, cfg.sample_rate), cfg)[0]
    at = slice(flat.real_offsets[first], flat.real_offsets[first] + flat.real_lengths[first])
    assert torch.allclose(flat.real_db[at].float(), own, atol=0.05)  # float16 of the excerpt's own frames
    for seg in np.flatnonzero(np.asarray(flat.groups) == flat.real_groups[first])[:2]:
        rows = slice(flat.offsets[seg], flat.offsets[seg] + flat.lengths[seg])
        src = flat.source_db[rows].float()
        # time-scaled: every frame lies between the excerpt's quietest and loudest frame, bin by bin
        assert (src >= own.min(0).values - 0.05).all() and (src <= own.max(0).values + 0.05).all()
        assert abs(src.mean() - own.mean()) < 1.5
    assert torch.equal(dec.real_db, flat.real_db)
    assert not torch.equal(dec.source_db, flat.source_db)  # the decays move the time-scaled level


def test_gan_on_recordings_trains_logs_and_resumes(tiny_corpus, recordings, ae_model, tmp_path, monkeypatch):
    """The debug recipe with the unpaired discriminator: it logs D(real)/D(fake) on recordings and
    held-out naturalness; held-out recordings are read by that monitor only (never with it off); the
    checkpoint holds the recordings discriminator and a rerun to more steps continues from it."""
    seen = loads_of(monkeypatch)
    recipe = RECIPES / "debug" / "gan-recorded.yaml"
    extra = [f"recordings={recordings.root}", "lr_min_ratio=1.0"]
    run_dir = tmp_path / "rec"
    train(recipe, overrides("gan", tiny_corpus, run_dir, 12, *extra, "naturalness_every=0", ae=ae_model))
    assert not [s for root, s in seen if root == str(recordings.root) and s != "train"]
    tags = scalar_tags(run_dir)
    assert {
        "loss/rec_adversarial",
        "loss/rec_feature_matching",
        "loss/recordings_discriminator",
        "grad_norm/recordings_discriminator",
        "d/rec_real",
        "d/rec_fake",
        "loss/adversarial",  # the latent discriminator on renders stays
    } <= tags
    assert not any(t.startswith("naturalness/") for t in tags)
    state = weights(run_dir / "checkpoints" / "last.safetensors")
    assert any(k.startswith("module.recordings_discriminator.") for k in state)
    model = load_model(run_dir / "model.safetensors")
    x = np.sin(np.arange(22050) * 0.1)
    assert np.isfinite(Stretcher(model, device="cpu", griffin_lim=2).stretch(x, 22050, 0.5)).all()
    whole = tmp_path / "whole"
    train(recipe, overrides("gan", tiny_corpus, whole, 20, *extra, ae=ae_model))
    seen.clear()
    train(recipe, overrides("gan", tiny_corpus, run_dir, 20, *extra, ae=ae_model))  # resumes at 12
    a, b = load_model(whole / "model.safetensors"), load_model(run_dir / "model.safetensors")
    assert_same_tensors(a.refiner.state_dict(), b.refiner.state_dict(), exact=False)
    # naturalness_every=10: logged at 20 (the resumed run's only multiple of 10), on held-out excerpts
    assert {root for root, s in seen if s == "heldout"} == {str(recordings.root)}
    assert len(scalar_values(run_dir, "naturalness/mean")) == 1
    assert {"naturalness/rate_0.5", "naturalness/rate_2"} <= scalar_tags(run_dir)
    nat = scalar_values(whole, "naturalness/mean")
    assert len(nat) == 2 and all(0 <= v <= 1 for v in nat)


@pytest.mark.parametrize("view", ["latent", "spectrogram"])
def test_generator_learns_from_the_recordings_discriminator_alone(tiny_corpus, recordings, ae_model, tmp_path, view):
    """With every other term off and the recordings discriminator held still (d_lr ~ 0), the
    generator's adversarial loss on recordings goes down: its gradient reaches the generator through
    the stretch of recordings (for the spectrogram view, through the residual decoding), in the
    direction that makes the discriminator call them real."""
    run_dir = tmp_path / "g-only"
    off = ("latent_weight=0", "spec_weight=0", "adv_weight=0", "fm_weight=0", "rec_fm_weight=0")
    plan = ("transients=true", "frame_features=true")  # the packaged default's generator sees the plan per frame
    extra = (
        f"recordings={recordings.root}",
        "naturalness_every=0",
        "d_lr=1e-12",
        "lr=2e-3",
        "warmup_steps=0",
        f"rec_view={view}",
        *off,
        *plan,
    )
    train(RECIPES / "debug" / "gan-recorded.yaml", overrides("gan", tiny_corpus, run_dir, 40, *extra, ae=ae_model))
    state = weights(run_dir / "checkpoints" / "last.safetensors")
    convs = [k for k in state if k.startswith("module.recordings_discriminator.views.")]
    assert bool(convs) == (view == "spectrogram")  # the spectrogram discriminator's 2-D stacks
    adv = scalar_values(run_dir, "loss/rec_adversarial")
    fake = scalar_values(run_dir, "d/rec_fake")  # the (still) discriminator calls the stretches real (1)
    assert len(adv) == 8 and min(scalar_values(run_dir, "grad_norm/generator")) > 0
    if view == "latent":
        assert adv[-1] < 0.5 * adv[0], adv
        assert fake[-1] > fake[0] + 0.3, fake
    else:  # an untrained 2-D convolution stack with spectral norms answers little to its input: a smaller move
        assert adv[-1] < adv[0] - 0.02, adv
        assert fake[-1] > fake[0] + 0.005, fake
    assert "loss/adversarial" not in scalar_tags(run_dir)  # the render discriminator is off


def test_recordings_must_be_a_recordings_corpus_with_enough_recordings(tiny_corpus, recordings, ae_model, tmp_path):
    from gan_stretch.errors import GanStretchError

    recipe = RECIPES / "debug" / "gan-recorded.yaml"
    teacher = tmp_path / "teacher"  # a corpus whose tempo-1 audio is not what it stands for
    manifest = json.loads((tiny_corpus.root / "manifest.json").read_text())
    teacher.mkdir()
    (teacher / "manifest.json").write_text(json.dumps({**manifest, "kind": "teacher"}))
    (teacher / "audio").symlink_to(tiny_corpus.root / "audio")
    with pytest.raises(GanStretchError, match="is a teacher corpus"):
        train(recipe, overrides("gan", tiny_corpus, tmp_path / "a", 1, f"recordings={teacher}", ae=ae_model))
    one = tmp_path / "one-heldout"  # a copy with a single held-out recording
    manifest = json.loads((recordings.root / "manifest.json").read_text())
    manifest["items"] = [it for it in manifest["items"] if it["split"] == "train" or it["recording"] == "pkg/e"]
    one.mkdir()
    (one / "manifest.json").write_text(json.dumps(manifest))
    (one / "audio").symlink_to(recordings.root / "audio")
    with pytest.raises(GanStretchError, match="1 heldout recording.*naturalness monitor"):
        train(recipe, overrides("gan", tiny_corpus, tmp_path / "b", 1, f"recordings={one}", ae=ae_model))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before the run folder is made


def test_recordings_settings_need_a_corpus(tiny_corpus, ae_model, tmp_path):
    with pytest.raises(ConfigError, match="rec_adv_weight=1.0 needs recordings="):
        run_stage("gan", tiny_corpus, tmp_path / "run", 1, "rec_adv_weight=1", ae=ae_model)
    with pytest.raises(ConfigError, match="naturalness_every=5 needs recordings="):
        run_stage("gan", tiny_corpus, tmp_path / "run", 1, "naturalness_every=5", ae=ae_model)
