"""What every training stage shares: the :class:`Run` (accelerate setup, resumable checkpoints,
logging, the step loop) and the :class:`State` it trains. Held-out evaluation is in
``evaluation.py``; the start and loss terms of the stage-2 runs (mapper, GAN) in ``sequence.py``."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed

from gan_stretch.data.manifest import Corpus, open_corpora
from gan_stretch.errors import CheckpointError, TrainingError
from gan_stretch.io import checkpoint
from gan_stretch.models.model_file import Model, save_model
from gan_stretch.train import evaluation
from gan_stretch.train.recipes import Recipe, changed_settings, recipe_dict, settings_hash, training_settings
from gan_stretch.train.scalars import Scalars


def corpora(recipe: Recipe) -> list[Corpus]:
    return open_corpora(recipe.data)


@dataclass
class State:
    """Everything one stage trains, declared once: :meth:`Run.register` resumes, prepares and
    saves from it.

    modules: every module the checkpoint holds (``module.<name>.*``); optimizers: keyed by the
    module they update (``optim.<name>``), which is prepared with its optimizer for the
    accelerator; ema: ``{ema module: the module whose weights it averages}``, EMA copies that are
    saved and moved to the device but never prepared. After :meth:`Run.register` the dicts hold
    the prepared objects, the ones a stage steps.
    """

    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    ema: dict[str, str] = field(default_factory=dict)


class Run:
    """One training run in ``recipe.run_dir``: checkpoints/last.safetensors, tb/, model.safetensors."""

    def __init__(self, recipe: Recipe):
        self._t0 = time.time()
        self.recipe = recipe
        self.dir = Path(recipe.run_dir)
        # cpu=True without a GPU: processes started by a multi-process launcher (accelerate launch
        # --multi_gpu, torchrun) then form one group over gloo; accelerate would otherwise run each
        # as a separate single-process run on the same data.
        # broadcast_buffers=False: DDP would copy rank 0's buffers into every module in place at each
        # forward, which breaks the backward of a graph that read them (the spectrogram
        # discriminator's mel filters, read by the generator's loss, are overwritten by the no-grad
        # forward on the real frames). No module here has batch statistics: the buffers (mel
        # filters, spectral-norm vectors) evolve identically in every process.
        self.accelerator = Accelerator(
            log_with="tensorboard",
            project_dir=str(self.dir),
            cpu=not torch.accelerator.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        )
        set_seed(recipe.seed)
        self.device = self.accelerator.device
        self.last = self.dir / "checkpoints" / "last.safetensors"
        self.model_path = self.dir / "model.safetensors"
        # the checkpoint to resume from, checked before anything in run_dir is written
        self._checkpoint = self._read_checkpoint()
        if self.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            for stale in checkpoint.remove_partial_files(self.dir):
                print(f"removed {stale}, a partial file left by an interrupted run")
            (self.dir / "recipe.json").write_text(json.dumps(recipe_dict(recipe), indent=1))
        self.accelerator.init_trackers(
            "tb",
            config={
                k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in recipe_dict(recipe).items()
            },
        )
        self.writer = self.accelerator.get_tracker("tensorboard", unwrap=True) if self.is_main else None
        self.state: State | None = None
        self.scalars = Scalars()
        self._trace = os.environ.get("GAN_STRETCH_TRACE")  # a folder: per step, hashes of batch and weights
        self._drawn: list[np.ndarray] = []
        if self.processes == 1 and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ:
            self.print(
                "warning: a multi-process launch started this one process only (accelerate launch --cpu "
                "starts one without mpirun); on the CPU use --multi_gpu or recipes/accelerate/cpu-2proc.yaml"
            )
        if self.processes > 1:
            self.print(
                f"{self.processes} processes: batch_size={recipe.batch_size} per process, "
                f"global batch {recipe.batch_size * self.processes}"
            )

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes

    def rng(self, step: int) -> np.random.Generator:
        """Batches depend only on (seed, step): a resumed run sees exactly the data it would have.

        Every process gets the same stream; each draws the step's global batch (``batch_size``
        x processes) and keeps its own part (:meth:`local`), so a run at batch_size B on 2
        processes sees the data of a 1-process run at 2B. (The trailing 0 keeps the streams of
        1-process runs as they were when each process drew from a stream of its own.)"""
        return np.random.default_rng([self.recipe.seed, step, 0])

    def local(self, batch):
        """This process's part of a global batch (its first dimension: ``batch_size`` x processes)."""
        n = len(batch) // self.processes
        mine = batch[self.accelerator.process_index * n : (self.accelerator.process_index + 1) * n]
        if self._trace:
            self._drawn.append(np.asarray(mine))
        return mine

    def sample_rows(self, pairs, rng: np.random.Generator, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's windows of the step's global batch: (rows [B, W] into ``pairs``, rate [B])."""
        rows, rate = pairs.sample_rows(rng, self.recipe.batch_size * self.processes, window)
        return self.local(rows), self.local(rate)

    def lr(self, base: float, step: int) -> float:
        """Cosine decay from ``base`` to ``base * lr_min_ratio`` over the run."""
        t = min(step / max(self.recipe.steps, 1), 1.0)
        floor = self.recipe.lr_min_ratio
        return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))

    @staticmethod
    def set_lr(optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    # --- checkpoints -------------------------------------------------------------------------
    def register(self, state: State) -> int:
        """Makes ``state`` what this run trains: loads checkpoints/last.safetensors into it when
        there is one, prepares each optimized module with its optimizer, moves the rest to the
        device. Returns the step to continue from."""
        start = self._resume(state)
        for name, optimizer in state.optimizers.items():
            state.modules[name], state.optimizers[name] = self.accelerator.prepare(state.modules[name], optimizer)
        for name, module in state.modules.items():
            if name not in state.optimizers:
                module.to(self.device)
        self.state = state
        return start

    def save(self, step: int) -> None:
        self.accelerator.wait_for_everyone()
        if not self.is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        for name, m in self.state.modules.items():
            tensors.update(checkpoint.prefixed(f"module.{name}", self.accelerator.unwrap_model(m).state_dict()))
        skeleton = {
            name: checkpoint.flatten(opt.state_dict(), f"optim.{name}", tensors)
            for name, opt in self.state.optimizers.items()
        }
        checkpoint.save(
            self.last,
            tensors,
            {
                "kind": "training-state",
                "stage": self.recipe.stage,
                "step": step,
                "recipe": recipe_dict(self.recipe),
                "training_sha256": settings_hash(training_settings(self.recipe)),
                "optimizers": skeleton,
            },
        )

    def _read_checkpoint(self) -> tuple[dict, dict] | None:
        """checkpoints/last.safetensors (tensors, metadata) when there is one, checked: a training
        state of this stage, written with this recipe's training settings (:meth:`_check_recipe`)."""
        if not self.last.exists():
            return None
        tensors, meta = checkpoint.load(self.last)
        if meta.get("kind") != "training-state" or meta.get("stage") != self.recipe.stage:
            raise CheckpointError(
                f"{self.last} is not a {self.recipe.stage} training state; use another run_dir or remove it"
            )
        self._check_recipe(meta)
        return tensors, meta

    def _resume(self, state: State) -> int:
        """Loads checkpoints/last.safetensors into ``state`` when there is one; returns the step to continue from."""
        if self._checkpoint is None:
            return 0
        (tensors, meta), self._checkpoint = self._checkpoint, None
        try:
            for name, m in state.modules.items():
                self.accelerator.unwrap_model(m).load_state_dict(checkpoint.unprefixed(f"module.{name}", tensors))
            for name, opt in state.optimizers.items():
                opt.load_state_dict(checkpoint.unflatten(meta["optimizers"][name], tensors))
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(
                f"{self.last} does not match this recipe ({checkpoint.mismatch(e)}); use another run_dir or remove it"
            ) from None
        self.print(f"resuming from {self.last} at step {meta['step']}")
        return int(meta["step"])

    def _check_recipe(self, meta: dict) -> None:
        """Refuses a checkpoint written with other training settings than this recipe's (a rerun
        after a recipe edit would otherwise continue the old run and export it under the new
        recipe's hash), unless the recipe says ``resume=force``. A checkpoint from before
        checkpoints recorded that hash is checked on the recipe it recorded."""
        now = training_settings(self.recipe)
        recorded = meta.get("recipe")
        hashed = "training_sha256" in meta
        if hashed and meta["training_sha256"] == settings_hash(now):
            return
        # the recipe it records, with any setting added since (LATER_SETTINGS) at the value that
        # reproduces that run: a hash taken before such a setting existed lacks it, so this decides
        changed = changed_settings(training_settings(recorded), now) if isinstance(recorded, dict) else None
        if changed == []:
            if not hashed:
                self.print(f"{self.last} predates recorded recipe hashes; the settings it records match this recipe")
            return
        if hashed:
            what = f"other training settings ({'; '.join(changed)})" if changed else "other training settings"
        elif changed is not None:
            what = f"other training settings ({'; '.join(changed)}; it predates recorded recipe hashes)"
        else:
            what = "a recipe it does not record (it predates recorded recipe hashes)"
        if self.recipe.resume == "force":
            self.print(f"warning: resume=force: continuing {self.last}, written with {what}")
            return
        raise CheckpointError(
            f"{self.last} was written with {what}; use a new run_dir (or remove this one) to train this "
            "recipe, or resume=force to continue that run with these settings"
        )

    def export(self, model: Model) -> None:
        if self.is_main:
            save_model(self.model_path, model)

    def trace(self, step: int) -> None:
        """Debugging multi-process runs (GAN_STRETCH_TRACE=DIR): each process appends to
        DIR/rank<i>.jsonl a hash of the batch it drew this step and of every module's weights,
        so runs can be checked for processes that see the same data or drift apart."""
        weights = hashlib.sha1()
        for name, m in self.state.modules.items():
            for key, t in self.accelerator.unwrap_model(m).state_dict().items():
                weights.update(name.encode() + key.encode() + t.detach().cpu().contiguous().numpy().tobytes())
        batch = hashlib.sha1(b"".join(np.ascontiguousarray(x).tobytes() for x in self._drawn))
        self._drawn = []
        path = Path(self._trace) / f"rank{self.accelerator.process_index}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            record = {"run": str(self.dir), "step": step, "batch": batch.hexdigest(), "weights": weights.hexdigest()}
            f.write(json.dumps(record) + "\n")

    # --- logging -----------------------------------------------------------------------------
    def print(self, msg: str) -> None:
        if self.is_main:
            print(f"[{self.recipe.stage} {time.time() - self._t0:7.1f}s] {msg}", flush=True)

    def log(self, values: dict, step: int) -> None:
        self.accelerator.log(values, step=step)

    def mean_over_processes(self, scalars: dict) -> dict:
        """Logged values are means over the processes (each saw its part of the global batch)."""
        if self.processes == 1:
            return scalars
        t = torch.tensor([float(v) for v in scalars.values()], dtype=torch.float64, device=self.device)
        return dict(zip(scalars, self.accelerator.reduce(t, "mean").tolist()))

    def check_finite(self, step: int, **losses: torch.Tensor) -> None:
        """Watches losses for NaN or Inf: checked at the next log point or save (without waiting
        for the device now), before anything is written, and reported with the step it happened."""
        for name, value in losses.items():
            self.scalars.watch(step, name, value)

    def _read_scalars(self, averages: bool) -> dict[str, float]:
        means, bad = self.scalars.read(averages)
        if bad is not None:
            step, name, value = bad
            kept = f"; the last good checkpoint {self.last} is kept" if self.last.exists() else ""
            raise TrainingError(
                f"{name} loss became {value} at step {step}{kept}. Lower lr= or grad_clip=, or check the data"
            )
        return means

    def optimize(self, name: str, loss: torch.Tensor, base_lr: float, step: int) -> tuple[float, torch.Tensor | float]:
        """One update of the module ``name`` of the registered state with the scheduled learning
        rate and gradient clipping; returns the lr used and the gradient norm before clipping (a
        tensor on the device; NaN without clipping)."""
        optimizer = self.state.optimizers[name]
        lr = self.lr(base_lr, step)
        self.set_lr(optimizer, lr)
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        norm = float("nan")
        if self.recipe.grad_clip > 0:
            norm = self.accelerator.clip_grad_norm_(self.state.modules[name].parameters(), self.recipe.grad_clip)
        optimizer.step()
        return lr, norm

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """Moves each EMA copy of the state toward the module it follows."""
        for ema, name in self.state.ema.items():
            followed = self.accelerator.unwrap_model(self.state.modules[name])
            for p_ema, p in zip(self.state.modules[ema].parameters(), followed.parameters()):
                p_ema.lerp_(p, 1 - decay)

    def loop(self, start: int, train_step, export) -> None:
        """Runs ``train_step(step) -> scalars`` from ``start`` on the registered state; logs the
        scalars averaged since the last log point, saves, evaluates, exports the model."""
        r, modules = self.recipe, self.state.modules.values()
        for step in range(start, r.steps):
            for m in modules:
                m.train()
            self.scalars.add(train_step(step))
            done = step + 1
            if self._trace:
                self.trace(done)
            log = done % r.log_every == 0 or done == r.steps
            save = done % r.save_every == 0 or done == r.steps
            evaluate = done % r.eval_every == 0 or done == r.steps
            if log or save or evaluate:  # nothing is logged or written after a non-finite loss
                scalars = self._read_scalars(averages=log)
            if log:
                scalars = self.mean_over_processes(scalars)
                self.log(scalars, done)
                self.print(
                    f"step {done}/{r.steps} "
                    + " ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in scalars.items() if k.startswith("loss/"))
                )
            if save:
                self.save(done)
                if done < r.steps:  # a usable model at every save; the last one is exported below
                    self.export(export())
            if evaluate:
                for m in modules:
                    m.eval()
                self.evaluate(export(), done)
        self.export(export())
        # every process returns once the model file is whole (a script that starts the next stage
        # in the same processes must not read a half-written or older export)
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()

    # --- evaluation on held-out pieces -------------------------------------------------------
    def evaluate(self, model: Model, step: int) -> dict:
        """Benchmark metrics of ``model`` on a few held-out pieces, logged to TensorBoard
        (:func:`gan_stretch.train.evaluation.evaluate`)."""
        return evaluation.evaluate(self, model, step)
