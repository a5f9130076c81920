"""Checkpoints as safetensors files: tensors plus a JSON config in the metadata.

Nothing is ever unpickled. Training state (optimizer moments, RNG states, the step) is flattened
into named tensors plus a JSON skeleton, so a resumable checkpoint is as safe to open as a model.
Every write goes to a temporary file in the same folder and is renamed into place, so an
interrupted write never leaves a truncated checkpoint where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gan_stretch.errors import CheckpointError

META_KEY = "gan_stretch"
PARTIAL = ".partial-"  # marks the temporary files of atomic_write: ``.{stem}.partial-{host}-{pid}-XXXX{suffix}``
HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike):
    """Yields a temporary sibling of ``path`` (same suffix) to write; renames it into place on
    success and removes it on any failure, so ``path`` is either the old file or the whole new one."""
    path = Path(path)
    tmp = partial_path(path)
    try:
        yield tmp
        os.chmod(tmp, target_mode(path))  # a writer may have made the file anew (safetensors does)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def partial_path(path: Path) -> Path:
    """A new empty temporary sibling of ``path`` (same suffix, so formats are still recognised),
    with the permissions the finished file should have: an existing ``path``'s mode (overwriting
    keeps it), else what ``open()`` would give under the process umask. mkstemp makes every file
    0600, and the rename would carry that onto the output. Stale temporary files of ``path``
    that a killed process of this machine left behind are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    mode = target_mode(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}{PARTIAL}{HOST}-{os.getpid()}-", suffix=path.suffix, dir=path.parent
    )
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(tmp)


def target_mode(path: Path) -> int:
    """The permission bits a finished ``path`` gets: those of the file it replaces, else what
    ``open()`` gives a new file under the process umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def remove_stale_partials(path: Path) -> list[Path]:
    """Removes the temporary files of ``path`` (``.{stem}.partial-{host}-{pid}-...{suffix}``) left
    by processes of this machine that no longer run (SIGKILL, a power cut); those of running
    processes, and of other machines sharing the folder, are left alone."""
    pattern = re.compile(re.escape(f".{path.stem}{PARTIAL}{HOST}-") + r"(\d+)-[^/]*" + re.escape(path.suffix) + "$")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m and not _alive(int(m.group(1))):
            stale = path.parent / name
            try:
                stale.unlink()
                removed.append(stale)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # not a process id
    except PermissionError:
        return True  # someone else's process
    return True


def remove_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary files that a process killed mid-write (SIGKILL, power loss) left in
    ``folder`` and below; only the owner of a folder (a resumed training run) should call this."""
    stale = [p for p in Path(folder).rglob(f".*{PARTIAL}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})


def mismatch(error: BaseException) -> str:
    """torch's several-line ``load_state_dict`` error as one phrase: the first tensor whose shape
    differs (the network's size changed), else the first missing or unexpected key."""
    text = str(error)
    m = re.search(
        r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
        r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)",
        text,
    )
    if m:
        more = text.count("size mismatch for") - 1
        return (
            f"the network's size changed: {m.group(1)} is {m.group(2)} in the saved state and {m.group(3)} "
            f"in this recipe" + (f", and {more} more tensor(s) differ" if more > 0 else "")
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[1:2] or lines[:1])[:300]


def load(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        raise CheckpointError(
            f"checkpoint {path} is a folder; give a model file"
            + (f" (it holds {', '.join(found[:5])})" if found else " (.safetensors)")
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({e})") from None
    if raw is None:
        raise CheckpointError(f"checkpoint {path} is a safetensors file but not a gan-stretch checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has corrupt metadata (not a JSON object)")
    return tensors, meta


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> Any:
    """Nested dicts/lists with tensors -> JSON skeleton; tensors go to ``out`` under their path."""
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [flatten(k, f"{prefix}.k{i}", out), flatten(v, f"{prefix}.{i}", out)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, (list, tuple)):
        return {
            "__list__": [flatten(v, f"{prefix}.{i}", out) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {unflatten(k, tensors): unflatten(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten(v, tensors) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
    return skeleton
