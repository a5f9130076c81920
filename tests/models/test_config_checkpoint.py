"""Recipes (load_recipe) and checkpoints (save/load, flatten/unflatten, load_model)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from gan_stretch.errors import CheckpointError, ConfigError
from gan_stretch.io import checkpoint
from gan_stretch.models.model_file import load_model, save_model
from gan_stretch.train.recipes import AutoencoderRecipe, GanRecipe, MapperRecipe, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SHIPPED = {"autoencoder.yaml": AutoencoderRecipe, "mapper.yaml": MapperRecipe, "gan.yaml": GanRecipe}


# --- recipes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_recipes_load_with_overrides(name):
    recipe = load_recipe(RECIPES / name)
    assert type(recipe) is SHIPPED[name]
    assert recipe.stage == name.removesuffix(".yaml")
    tuned = load_recipe(RECIPES / name, ["steps=10", "lr=2e-4", "seed=3", "run_dir=/tmp/elsewhere"])
    assert (tuned.steps, tuned.lr, tuned.seed, tuned.run_dir) == (10, 2e-4, 3, "/tmp/elsewhere")
    assert isinstance(tuned.lr, float)
    assert tuned.batch_size == recipe.batch_size  # untouched keys keep the file's values
    # a dict of overrides works too
    assert load_recipe(RECIPES / name, {"steps": 7}).steps == 7


RECIPE_FILES = sorted(
    p.relative_to(RECIPES).as_posix()
    for p in RECIPES.rglob("*.yaml")
    if p.parent.name not in ("accelerate", "grids")  # grids: eval/run.py
)


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_every_recipe_file_loads_and_a_variant_lists_only_its_differences(name, tmp_path):
    """Each recipe file (its base chain resolved) is a valid recipe of the stage its name, or the
    name of a file in its base chain, says; a file with a ``base:`` sets only keys whose values
    differ from its base's."""
    from gan_stretch.train.recipes import read_recipe_file, recipe_dict

    recipe = load_recipe(RECIPES / name, [f"run_dir={tmp_path / 'run'}"])
    chain, path = [], RECIPES / name
    while path is not None:
        chain.append(path)
        base = yaml.safe_load(path.read_text()).get("base")
        path = (path.parent / base).resolve() if base else None
    assert any(recipe.stage in p.stem or recipe.stage == p.parent.name for p in chain), chain
    raw = yaml.safe_load((RECIPES / name).read_text())
    if "base" in raw:
        base = recipe_dict(load_recipe(RECIPES / Path(name).parent / raw["base"], [f"run_dir={tmp_path / 'run'}"]))
        mine = recipe_dict(recipe)
        listed = set(raw) - {"base", "run_dir"}
        assert {k for k in mine if mine[k] != base[k]} == listed, "keys that repeat the base's values"
        assert read_recipe_file(RECIPES / name)["stage"] == recipe.stage  # the stage comes from the base


@pytest.mark.parametrize("kind,file", [("default", "default/finetune.yaml"), ("mapper", "default/mapper.yaml")])
def test_default_recipes_rebuild_the_packaged_models(kind, file):
    """recipes/default/ holds the settings of the packaged models: the recipe file a model names,
    with the path overrides it lists, gives exactly the settings it was trained with (the hash of
    every field), and the network sizes in the file are the model's."""
    from gan_stretch.models.model_file import load_model, resolve_checkpoint
    from gan_stretch.train.recipes import recipe_source

    model = load_model(resolve_checkpoint(kind))
    source = model.meta["recipe"]
    assert source["file"] == f"recipes/{file}"
    paths = {"autoencoder", "init", "run_dir", "eval_pieces", "seed"}
    assert all(o.split("=")[0] in paths for o in source["overrides"])
    refiner = load_recipe(RECIPES.parent / source["file"], source["overrides"])
    assert recipe_source(refiner)["sha256"] == source["sha256"]
    ae = load_recipe(RECIPES / "default/autoencoder.yaml")
    assert (ae.hidden, ae.latent) == (model.autoencoder.cfg.hidden, model.autoencoder.cfg.latent)
    if refiner.stage == "gan":
        sizes = {"channels": refiner.channels, "kernel": refiner.kernel, "dilations": refiner.dilations}
    else:
        sizes = {"hidden": refiner.hidden}
    assert {k: model.refiner.cfg.to_dict()[k] for k in sizes} == sizes


def test_every_stage_has_the_recipe_load_recipe_reads_and_every_model_kind_loads(tiny_model, tmp_path):
    """recipes.RECIPES (what load_recipe reads, below the stages) and stages.STAGES name the same
    stages and recipe classes; the model kinds the stages export are those the refiner registry
    builds, and load_model reads each."""
    from gan_stretch.models.model_file import KINDS
    from gan_stretch.train.recipes import RECIPES as BY_STAGE
    from gan_stretch.train.stages import MODEL_KINDS, STAGES

    assert {name: stage.recipe for name, stage in STAGES.items()} == BY_STAGE
    assert set(KINDS) == set(MODEL_KINDS) == {"autoencoder", "mapper", "gan", "generator"}
    assert MODEL_KINDS["generator"] == "gan"
    tensors, meta = checkpoint.load(tiny_model)
    as_generator = tmp_path / "generator.safetensors"
    checkpoint.save(as_generator, tensors, {**meta, "kind": "generator"})
    a, b = load_model(tiny_model), load_model(as_generator)
    assert (a.kind, b.kind) == ("gan", "generator") and type(a.refiner) is type(b.refiner)


def test_override_types_follow_yaml():
    r = load_recipe(RECIPES / "gan.yaml", ["dilations=[1, 2]", "d_conditional=false", "real=natural", "lr=1"])
    assert r.dilations == [1, 2] and r.d_conditional is False and r.real == "natural"
    assert r.lr == 1.0 and isinstance(r.lr, float)  # an int is a fine float
    assert load_recipe(RECIPES / "autoencoder.yaml", ["hidden=[64, 32]"]).hidden == [64, 32]


def test_recipe_without_file():
    r = load_recipe(None, ["stage=autoencoder", "data=d", "run_dir=r"])
    assert isinstance(r, AutoencoderRecipe) and r.data == "d"


@pytest.mark.parametrize(
    "recipe,override,key",
    [
        ("autoencoder.yaml", "bogus=1", "bogus"),
        ("autoencoder.yaml", "window=16", "window"),  # a key of another stage
        ("mapper.yaml", "quiet_db=-60", "quiet_db"),
        ("autoencoder.yaml", "steps=abc", "steps"),
        ("autoencoder.yaml", "steps=1.5", "steps"),
        ("autoencoder.yaml", "steps=true", "steps"),
        ("autoencoder.yaml", "hidden=5", "hidden"),
        ("autoencoder.yaml", "hidden=[64, abc]", "hidden"),
        ("autoencoder.yaml", "hidden=[64, 32, 16]", "hidden"),
        ("autoencoder.yaml", "hidden=[64, -1]", "hidden"),
        ("mapper.yaml", "hidden=[5]", "hidden"),
        ("autoencoder.yaml", "lr=-1", "lr"),
        ("autoencoder.yaml", "lr=0", "lr"),
        ("autoencoder.yaml", "lr=fast", "lr"),
        ("autoencoder.yaml", "steps=0", "steps"),
        ("autoencoder.yaml", "batch_size=-4", "batch_size"),
        ("autoencoder.yaml", "seed=-1", "seed"),
        ("autoencoder.yaml", "data=", "data"),
        ("gan.yaml", "autoencoder=", "autoencoder"),
        ("gan.yaml", "d_conditional=maybe", "d_conditional"),
        ("gan.yaml", "kernel=4", "kernel"),
        ("gan.yaml", "window=8", "window"),
        ("gan.yaml", "ema_decay=1", "ema_decay"),
        ("gan.yaml", "real=imagined", "real"),
        ("mapper.yaml", "pairs=some", "pairs"),
        ("autoencoder.yaml", "stage=decoder", "stage"),
    ],
)
def test_bad_recipes_are_rejected_naming_the_key(recipe, override, key):
    with pytest.raises(ConfigError) as e:
        load_recipe(RECIPES / recipe, [override])
    assert key in str(e.value)


@pytest.mark.parametrize("override", ["lr=.nan", "lr=.inf", "grad_clip=.nan", "d_lr=.inf"])
def test_non_finite_numbers_are_rejected(override):
    with pytest.raises(ConfigError):
        load_recipe(RECIPES / "gan.yaml", [override])


def test_recipe_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- stage\n- autoencoder\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("stage: [autoencoder\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_recipe(tmp_path / "broken.yaml")
    (tmp_path / "nostage.yaml").write_text("data: x\nrun_dir: y\n")
    with pytest.raises(ConfigError, match="stage"):
        load_recipe(tmp_path / "nostage.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe(RECIPES / "autoencoder.yaml", ["steps"])


# --- checkpoint files ---------------------------------------------------------------------------


def sample_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(64, 33, generator=g),
        "a.bias": torch.randn(64, generator=g),
        "step": torch.tensor(7),
        "half": torch.randn(5, generator=g).half(),
        "flags": torch.tensor([True, False]),
    }


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "ck.safetensors"
    tensors = sample_tensors()
    meta = {"kind": "gan", "nested": {"list": [1, 2.5, "x", None, True]}, "unicode": "é"}
    checkpoint.save(path, tensors, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta == meta
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype
        assert torch.equal(loaded[k], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]  # no temporary file left


def test_save_overwrites_and_a_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "ck.safetensors"
    checkpoint.save(path, {"x": torch.zeros(3)}, {"v": 1})
    checkpoint.save(path, {"x": torch.ones(3)}, {"v": 2})
    tensors, meta = checkpoint.load(path)
    assert meta == {"v": 2} and torch.equal(tensors["x"], torch.ones(3))
    with pytest.raises(AttributeError):  # safetensors asks the value for its dtype
        checkpoint.save(path, {"x": "not a tensor"}, {"v": 3})
    with pytest.raises(TypeError):
        checkpoint.save(path, {"x": torch.ones(3)}, {"v": object()})  # meta that is not JSON
    tensors, meta = checkpoint.load(path)
    assert meta == {"v": 2} and torch.equal(tensors["x"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]


def test_partial_files_of_a_killed_write_are_found_and_only_they_are_removed(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    keep = [run / "model.safetensors", run / ".hidden-user-file", run / "checkpoints" / "last.safetensors"]
    for p in keep:
        p.write_bytes(b"x")
    with checkpoint.atomic_write(run / "model.safetensors") as tmp:  # what a SIGKILL mid-write leaves
        stale = [tmp.with_name(tmp.name + ".copy"), run / "checkpoints" / tmp.name.replace("model", "last")]
    for p in stale:
        p.write_bytes(b"partial")
    assert sorted(checkpoint.remove_partial_files(run)) == sorted(stale)
    assert sorted(p for p in run.rglob("*") if p.is_file()) == sorted(keep)


def _corrupt_files(folder: Path) -> dict[str, Path]:
    good = folder / "good.safetensors"
    checkpoint.save(good, sample_tensors(), {"kind": "gan"})
    data = good.read_bytes()
    files = {}
    files["truncated to half"] = folder / "half.safetensors"
    files["truncated to half"].write_bytes(data[: len(data) // 2])
    files["last byte missing"] = folder / "short.safetensors"
    files["last byte missing"].write_bytes(data[:-1])
    files["random bytes"] = folder / "random.safetensors"
    files["random bytes"].write_bytes(os.urandom(4096))
    files["empty file"] = folder / "empty.safetensors"
    files["empty file"].write_bytes(b"")
    files["header not utf-8"] = folder / "utf8.safetensors"
    files["header not utf-8"].write_bytes(struct.pack("<Q", 10) + b"\xff" * 10)
    files["a text file"] = folder / "notes.safetensors"
    files["a text file"].write_text("just some text, not a checkpoint at all\n" * 20)
    return files


@pytest.mark.parametrize(
    "case", ["truncated to half", "last byte missing", "random bytes", "empty file", "header not utf-8", "a text file"]
)
def test_load_rejects_corrupt_files(tmp_path, case):
    path = _corrupt_files(tmp_path)[case]
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)
    assert "truncated or corrupt" in str(e.value)
    with pytest.raises(CheckpointError):
        load_model(path)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_load_model_rejects_a_truncated_model_file(tiny_model, tmp_path, keep):
    data = tiny_model.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(cut)


def test_load_missing_path_and_folder(tmp_path):
    for path, words in ((tmp_path / "missing.safetensors", "not found"), (tmp_path, "is a folder; give a model file")):
        with pytest.raises(CheckpointError, match=words):
            checkpoint.load(path)
        with pytest.raises(CheckpointError, match=words):
            load_model(path)


def test_load_rejects_foreign_safetensors(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"format": "pt"})
    for path in (plain, other):
        with pytest.raises(CheckpointError, match="not a gan-stretch checkpoint"):
            checkpoint.load(path)


def test_load_rejects_corrupt_metadata(tmp_path):
    header = json.dumps(
        {
            "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "__metadata__": {checkpoint.META_KEY: "{not json"},
        }
    ).encode()
    path = tmp_path / "meta.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="metadata"):
        checkpoint.load(path)


def test_load_model_rejects_non_object_metadata(tmp_path):
    path = tmp_path / "list.safetensors"
    checkpoint.save(path, {"w": torch.zeros(3)}, [1, 2])
    with pytest.raises(CheckpointError):
        load_model(path)


# --- model files --------------------------------------------------------------------------------


def test_model_round_trip(tiny_model, tmp_path):
    model = load_model(tiny_model)
    assert model.kind == "gan"
    assert model.autoencoder.cfg.latent == 16 and model.refiner.cfg.channels == 16
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    assert not model.autoencoder.training and not model.refiner.training
    copy = tmp_path / "copy.safetensors"
    save_model(copy, model)
    again = load_model(copy)
    for a, b in ((model.autoencoder, again.autoencoder), (model.refiner, again.refiner)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert again.meta == model.meta
    assert again.spectral == model.spectral


def test_load_model_rejects_training_state(tmp_path):
    """What train.common.Run.save writes: a resumable training state, which is no model."""
    path = tmp_path / "last.safetensors"
    tensors = {}
    opt_state = checkpoint.flatten(
        {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}, "optim.autoencoder", tensors
    )
    tensors["module.autoencoder.encoder.0.weight"] = torch.zeros(2, 2)
    checkpoint.save(
        path,
        tensors,
        {"kind": "training-state", "stage": "autoencoder", "step": 10, "optimizers": {"autoencoder": opt_state}},
    )
    with pytest.raises(CheckpointError, match="training-state"):
        load_model(path)


def test_load_model_rejects_mismatched_config(tiny_model, tmp_path):
    tensors, meta = checkpoint.load(tiny_model)
    wrong = tmp_path / "wrong.safetensors"
    checkpoint.save(wrong, tensors, {**meta, "autoencoder": {**meta["autoencoder"], "latent": 32}})
    with pytest.raises(CheckpointError, match="does not match its config .the network's size changed: ") as e:
        load_model(wrong)
    assert "\n" not in str(e.value)
    missing = tmp_path / "missing.safetensors"
    checkpoint.save(missing, {k: v for k, v in tensors.items() if not k.startswith("refiner.")}, meta)
    with pytest.raises(CheckpointError, match="does not match") as e:
        load_model(missing)
    assert "\n" not in str(e.value) and "Missing key" in str(e.value)
    no_spectral = tmp_path / "nospec.safetensors"
    checkpoint.save(no_spectral, tensors, {k: v for k, v in meta.items() if k != "spectral"})
    with pytest.raises(CheckpointError):
        load_model(no_spectral)
    unknown = tmp_path / "unknown.safetensors"
    checkpoint.save(unknown, tensors, {**meta, "kind": "vocoder"})
    with pytest.raises(CheckpointError, match="not a stretch model"):
        load_model(unknown)


@pytest.mark.parametrize(
    "part,key,value,words",
    [
        ("autoencoder", "latent", 0, "latent must be in [1, 4096], got 0"),
        ("autoencoder", "hidden", [64], "hidden needs at least 2 value(s)"),
        ("refiner", "kernel", 4, "kernel must be odd"),
        ("refiner", "dilations", [1, -2], "every value of dilations must be in [1, 1024]"),
        ("spectral", "hop", 0, "hop must be in [1, 262144], got 0"),
        ("spectral", "db_range", "loud", "db_range must be a number"),
    ],
)
def test_impossible_model_configs_give_the_same_config_error_everywhere(tiny_model, tmp_path, part, key, value, words):
    """A model file whose config cannot describe a network (its sizes checked where they are
    declared, as a recipe's are) gives one ConfigError naming the file and the field, from
    load_model and from the Stretcher alike; the configs built directly raise the same."""
    from gan_stretch import Stretcher
    from gan_stretch.dsp.spectrum import SpectralConfig
    from gan_stretch.models import AutoencoderConfig, GeneratorConfig

    tensors, meta = checkpoint.load(tiny_model)
    bad = tmp_path / "bad.safetensors"
    checkpoint.save(bad, tensors, {**meta, part: {**meta[part], key: value}})
    for load in (load_model, lambda p: Stretcher(p, device="cpu")):
        with pytest.raises(ConfigError) as e:
            load(bad)
        assert str(bad) in str(e.value) and words in str(e.value)
    config = {"autoencoder": AutoencoderConfig, "refiner": GeneratorConfig, "spectral": SpectralConfig}[part]
    with pytest.raises(ConfigError, match=key):
        config(**{**meta[part], key: value})


# --- optimizer state through flatten/unflatten --------------------------------------------------


def _model_and_adam(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.99))


def _step(model, opt, seed: int):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 6, generator=g), torch.randn(16, 3, generator=g)
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()


def test_flatten_unflatten_plain_structures():
    obj = {"a": [1, 2.5, None, True, "s"], 3: (torch.arange(3), {"deep": torch.ones(2)}), "t": (1, 2)}
    tensors = {}
    skeleton = checkpoint.flatten(obj, "p", tensors)
    json.dumps(skeleton)  # the skeleton is plain JSON
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and len(tensors) == 2
    back = checkpoint.unflatten(json.loads(json.dumps(skeleton)), tensors)
    assert back["a"] == [1, 2.5, None, True, "s"]
    assert isinstance(back[3], tuple) and torch.equal(back[3][0], torch.arange(3))
    assert torch.equal(back[3][1]["deep"], torch.ones(2))
    assert back["t"] == (1, 2) and 3 in back  # int keys and tuples survive
    with pytest.raises(TypeError):
        checkpoint.flatten({"x": object()}, "p", {})


def test_adam_state_round_trips_through_a_checkpoint_file(tmp_path):
    model, opt = _model_and_adam()
    for s in range(3):
        _step(model, opt, s)
    tensors = checkpoint.prefixed("model", model.state_dict())
    skeleton = checkpoint.flatten(opt.state_dict(), "optim", tensors)
    checkpoint.save(tmp_path / "state.safetensors", tensors, {"optim": skeleton})

    loaded, meta = checkpoint.load(tmp_path / "state.safetensors")
    model2, opt2 = _model_and_adam(seed=1)  # different initial weights: all must come from the file
    model2.load_state_dict(checkpoint.unprefixed("model", loaded))
    opt2.load_state_dict(checkpoint.unflatten(meta["optim"], loaded))
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]

    _step(model, opt, 99)
    _step(model2, opt2, 99)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    # and the moments did matter: a fresh optimizer would have stepped differently
    model3, opt3 = _model_and_adam(seed=1)
    model3.load_state_dict(checkpoint.unprefixed("model", loaded))
    _step(model3, opt3, 99)
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), model3.parameters()))
