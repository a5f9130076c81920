"""Corpora of (input, truly stretched) audio pairs on disk, described by ``manifest.json``.

Two kinds share one layout (``manifest.py``, which also holds :class:`Corpus`, the reader):
  true-tempo  MIDI rendered at tempo 1 and at each rate (ground truth), in three families:
              classical (music21 pieces, one GM program per item), ensemble (each part of a
              multi-part score on its own program) and groove (generated drums, bass, comping, lead);
              built here (:func:`build_true_tempo`), one item at a time by ``items.py``
  teacher     excerpts of recorded audio, stretched by a classical stretcher (``teacher_corpora.py``)

A rerun reuses every render already on disk: an item's id names its render choices.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from gan_stretch.data.items import (
    DEFAULT_PROGRAMS,
    EFFECTS,
    FAMILIES,
    RenderTask,
    choose_render,
    plan_jobs,
    render_item,
    render_suffix,
)
from gan_stretch.data.manifest import (
    DEFAULT_RATES,
    Corpus,
    check_build,
    is_heldout,
    rate_key,
    read_manifest,
    write_manifest,
)
from gan_stretch.errors import GanStretchError
from gan_stretch.runtime import parallel
from gan_stretch.runtime.parallel import check_jobs


def build_true_tempo(
    out: str | os.PathLike,
    pieces: int = 32,
    heldout: float = 0.25,
    seconds: float = 10.0,
    rates=DEFAULT_RATES,
    programs=DEFAULT_PROGRAMS,
    programs_per_piece: int = 1,
    sample_rate: int = 22050,
    soundfont: str | list | None = None,
    composers=None,
    splits=("train", "heldout"),
    family: str = "classical",
    synth: str = "fluidsynth",
    reverb: str = "off",
    chorus: str = "off",
    level_range: tuple[float, float] | None = None,
    seed: int = 0,
    items: int | None = None,
    jobs: int = 1,
) -> Corpus:
    """Renders ``pieces`` pieces at tempo 1 and each rate; reuses renders already on disk.

    ``family``: ``classical`` (music21 pieces, one GM program for every part, cycled through
    ``programs``), ``ensemble`` (multi-part scores, each part on its own program, drawn per item;
    ``programs_per_piece`` orchestrations of each) or ``groove`` (``pieces`` generated band grooves
    with drums). ``soundfont``: one bank or a list (a comma-separated string too) of which each item
    draws one; ``synth``: fluidsynth (.sf2/.sf3) or timidity (.cfg); ``reverb``/``chorus``: off, on
    or random per item; ``level_range``: (low, high) dBFS of each item's peak, the same gain on
    every rate. ``splits=("heldout",)`` renders only the held-out pieces (an evaluation set, e.g.
    with a soundfont never used in training); ``items`` stops after that many items. ``jobs``:
    items rendered at once, in worker processes (None: one per core); the manifest is the same
    for any number.
    """
    from gan_stretch.data.render import find_soundfont

    level_range = _check_options(
        family, reverb, chorus, level_range, items, seconds, rates, heldout, sample_rate, splits, pieces,
        programs_per_piece, programs,
    )  # fmt: skip
    names = [s.strip() for s in soundfont.split(",")] if isinstance(soundfont, str) else list(soundfont or [None])
    banks = [find_soundfont(n, synth) for n in names]  # every bank checked before anything is written

    root = Path(out)
    manifest = {
        "kind": "true-tempo",
        "family": family,
        "sample_rate": sample_rate,
        "seconds": seconds,
        "rates": [float(r) for r in rates],
        "soundfont": banks[0].name,
        "soundfonts": [b.name for b in banks],
        "synth": synth,
        "reverb": reverb,
        "chorus": chorus,
        "level_range": list(level_range) if level_range else None,
        "seed": seed,
        "items": [],
    }
    done = _items_on_disk(root / "manifest.json")
    all_rates = [1.0] + [float(r) for r in rates]
    todo = plan_jobs(family, pieces, programs, programs_per_piece, composers, seconds, seed)
    tasks = []
    for job in todo:
        split = "heldout" if is_heldout(job.key, heldout) else "train"
        if split not in splits:
            continue
        choice = choose_render(job.seed, banks, reverb, chorus, level_range)
        item = _item_entry(job, split, choice, all_rates, family, synth, seed)
        tasks.append(RenderTask(root, job, item, choice, done.get(item["id"]), all_rates, sample_rate, synth))
    skipped = _render_items(tasks, manifest, root, items, jobs)
    _check_not_empty(manifest["items"], splits, len(todo), skipped, root)
    write_manifest(root, manifest)
    return Corpus(root)


def _check_options(
    family, reverb, chorus, level_range, items, seconds, rates, heldout, sample_rate, splits, pieces,
    programs_per_piece, programs,
) -> tuple[float, float] | None:  # fmt: skip
    """Every option of :func:`build_true_tempo` but the sound banks checked, in that order, before
    anything is written: a one-line error naming the first bad one. -> the level range as floats."""
    if family not in FAMILIES:
        raise GanStretchError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    for name, mode in (("reverb", reverb), ("chorus", chorus)):
        if mode not in EFFECTS:
            raise GanStretchError(f"{name} must be one of {', '.join(EFFECTS)}, not {mode!r}")
    if level_range is not None:
        level_range = (float(level_range[0]), float(level_range[1]))
        if not (level_range[0] <= level_range[1] <= 0):
            raise GanStretchError(
                f"level range must be low <= high <= 0 dBFS, got {level_range[0]:g} {level_range[1]:g}"
            )
    if items is not None and items < 1:
        raise GanStretchError(f"items must be at least 1, got {items}")
    check_build(seconds, rates, heldout, sample_rate, splits)
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise GanStretchError(f"pieces must be at least 1, got {pieces!r}")
    if isinstance(programs_per_piece, bool) or not isinstance(programs_per_piece, int) or programs_per_piece < 1:
        raise GanStretchError(f"programs per piece must be at least 1, got {programs_per_piece!r}")
    bad = [p for p in programs if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 127]
    if bad or not list(programs):
        raise GanStretchError(
            f"programs must be General MIDI program numbers from 0 to 127, got {bad[0] if bad else 'none'}"
        )
    return level_range


def _items_on_disk(manifest: Path) -> dict[str, dict]:
    """The items of the manifest a previous build left (id -> entry), for a rerun to reuse their
    renders; none when there is no manifest or it is corrupt (the corpus is rebuilt)."""
    if not manifest.is_file():
        return {}
    try:
        return {it.get("id"): it for it in read_manifest(manifest)["items"] if isinstance(it, dict)}
    except GanStretchError:
        return {}


def _item_entry(job, split: str, choice: dict, rates: list[float], family: str, synth: str, seed: int) -> dict:
    """An item's manifest entry before it is rendered: its id (the piece and the render choices),
    split, choices and the paths of its audio at each of ``rates``."""
    item_id = job.stem + render_suffix(choice, seed)
    return {
        "id": item_id,
        "split": split,
        "source": job.source,
        "family": family,
        "soundfont": choice["soundfont"].name,
        "synth": synth,
        "reverb": choice["reverb"],
        "chorus": choice["chorus"],
        "effects": choice["effects"],
        "level": choice["level"],
        "seed": job.seed,
        "audio": {rate_key(r): f"audio/{item_id}/r{rate_key(r)}.flac" for r in rates},
    }


def _render_items(tasks: list[RenderTask], manifest: dict, root: Path, items: int | None, jobs) -> dict[str, list[str]]:
    """Renders the tasks (``jobs`` at once), writing the manifest as each one finishes, until the
    first ``items`` items are done; raises if any failed. -> why -> the pieces skipped for it."""
    skipped: dict[str, list[str]] = {}  # why -> pieces
    finished: dict[int, dict | None] = {}  # task index -> its manifest entry (None: skipped or failed)
    failed: list[str] = []
    for i, entry, error in parallel.imap(
        render_item, tasks, check_jobs(jobs), desc=f"rendering true-tempo pairs ({manifest['family']})", unit="item"
    ):
        task, finished[i] = tasks[i], None
        if error is not None:
            failed.append(f"{task.item['id']}: {parallel.describe(error)}")
            tqdm.write(f"failed {task.item['id']}: {parallel.describe(error)}")
        elif "skip" in entry:
            tqdm.write(entry["message"])
            skipped.setdefault(entry["skip"], []).append(task.job.source)
        else:
            finished[i] = entry
        # the manifest lists every finished item, in the order of --jobs 1, as they finish: a rerun
        # after an interruption reuses them
        manifest["items"] = [finished[k] for k in sorted(finished) if finished[k] is not None]
        first = _first_items(finished, items)
        if first is not None:
            manifest["items"] = first
        if finished[i] is not None:  # a build whose every piece is skipped leaves no manifest
            write_manifest(root, manifest)
        if first is not None:
            break
    if failed:
        raise GanStretchError(
            f"{len(failed)} of {len(tasks)} item(s) failed (first: {failed[0]}); the "
            f"{len(manifest['items'])} finished ones are in {root / 'manifest.json'}, a rerun "
            "renders the rest"
        )
    return skipped


def _first_items(finished: dict[int, dict | None], items: int | None) -> list[dict] | None:
    """The first ``items`` items in task order once every task before them has finished, else None."""
    if items is None:
        return None
    out = []
    for k in range(len(finished)):
        if k not in finished:
            return None
        if finished[k] is not None:
            out.append(finished[k])
            if len(out) == items:
                return out
    return None


def _check_not_empty(items: list[dict], splits, n_sources: int, skipped: dict, root: Path) -> None:
    """A corpus with no items, or no training items where training items were asked for, is an
    error that says why (every piece skipped, or all of them held out)."""
    missing = "train" if "train" in splits and not any(it["split"] == "train" for it in items) else None
    if items and missing is None:
        return
    why = "; ".join(f"{len(v)} skipped because {k} (first: {v[0]})" for k, v in skipped.items())
    if not why:
        why = f"all {n_sources} pieces fall in the other split; use more pieces or change the held-out fraction"
    raise GanStretchError(f"corpus {root} would have no {'training ' if items else ''}items: {why}")
