"""--jobs: corpus rendering, the benchmark and folder stretching in worker processes give what one
process gives (same manifest, same results.csv, same files); a failed job is reported and the
others' work is kept; Ctrl-C and SIGTERM leave no partial file behind."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli import main as cli
from gan_stretch.errors import GanStretchError
from gan_stretch.runtime import parallel

from conftest import music_like, requires, start_stretch, wait_until

ROOT = Path(__file__).resolve().parents[2]
SR = 22050


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the pool ----------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_imap_yields_every_result_and_each_failure_with_its_index(jobs):
    got = {i: (result, error) for i, result, error in parallel.imap(float, ["1.5", "x", "3", "4e0"], jobs)}
    assert {i: r for i, (r, e) in got.items() if e is None} == {0: 1.5, 2: 3.0, 3: 4.0}
    assert isinstance(got[1][1], ValueError) and got[1][0] is None
    assert parallel.describe(got[1][1]).startswith("ValueError: could not convert string to float")


PROBE = """
import sys
from gan_stretch.runtime import parallel


def where(_):
    import gan_stretch

    return gan_stretch.__file__


if __name__ == "__main__":
    import gan_stretch

    print(gan_stretch.__file__)
    for _, result, error in parallel.imap(where, [0, 1], 2):
        print(error or result)
"""


@pytest.mark.slow  # a fresh process and fork server: imports torch twice
def test_workers_import_the_package_this_process_imported(tmp_path):
    """A script started from a folder that holds another ``gan_stretch`` (a checkout's root, while
    the script belongs to another checkout) gets workers running its own package, not that folder's."""
    decoy = tmp_path / "cwd" / "gan_stretch"  # a working copy of the package, elsewhere
    shutil.copytree(ROOT / "gan_stretch", decoy, ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    script = tmp_path / "scripts" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=decoy.parent, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split()
    assert lines[0] == str(ROOT / "gan_stretch" / "__init__.py")
    assert lines[1:] == [lines[0]] * 2, proc.stdout


def test_jobs_must_be_positive(capsys):
    with pytest.raises(GanStretchError, match="at least 1"):
        parallel.check_jobs(0)
    assert parallel.check_jobs(None) == parallel.default_jobs() >= 1
    assert cli(["stretch", "in.wav", "out.wav", "--rate", "2", "--jobs", "0"]) == 1
    assert capsys.readouterr().err.strip() == "gan-stretch: error: --jobs must be at least 1, got 0"


# --- corpus rendering --------------------------------------------------------------------------


@pytest.mark.slow
@requires("fluidsynth")
def test_corpus_is_the_same_at_one_and_two_jobs_and_a_failed_item_is_rendered_by_a_rerun(tiny_corpus, tmp_path):
    """The tiny corpus (rendered with jobs=1) again with 2 workers. One item cannot be written
    (a folder stands where its rate-2 render goes): the build names it and fails, the manifest lists
    the other items in their order; once the way is clear, a rerun renders that item alone."""
    from gan_stretch.data.corpus import build_true_tempo

    settings = dict(pieces=3, heldout=0.55, seconds=3.0, rates=(0.5, 2.0))
    out = tmp_path / "two"
    blocked = out / tiny_corpus.items[1].audio["2.000"]
    blocked.mkdir(parents=True)
    with pytest.raises(GanStretchError, match=f"1 of 3 item.*{tiny_corpus.items[1].id}"):
        build_true_tempo(out, jobs=2, **settings)
    listed = json.loads((out / "manifest.json").read_text())["items"]
    assert [it["id"] for it in listed] == [tiny_corpus.items[0].id, tiny_corpus.items[2].id]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.flac") if p.is_file()}
    assert len(stamps) == 8  # every render but the blocked one
    blocked.rmdir()
    build_true_tempo(out, jobs=2, **settings)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished renders were reused
    assert (out / "manifest.json").read_bytes() == (tiny_corpus.root / "manifest.json").read_bytes()
    audio = files(tiny_corpus.root / "audio")
    assert files(out / "audio") == audio and len(audio) == 9


# --- the benchmark -----------------------------------------------------------------------------


def benchmark(*args: str) -> int:
    """eval/benchmark.py's main in this process (the workers import it as eval.benchmark)."""
    from eval import benchmark as bench

    return bench.main(list(args))


def rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_benchmark_gives_the_same_results_at_one_and_two_jobs(tiny_corpus, tiny_model, tmp_path, capsys):
    """Every measure (ViSQOL and the two-sample test included) equal to the last digit, rows in
    the same order; realtime_factor is a timing and differs. A pair that fails (a corrupt render)
    is reported and left out, the other pairs are scored, and the exit status says so."""
    data = tmp_path / "corpus"  # every item held out: 6 pairs, and the two-sample test runs
    shutil.copytree(tiny_corpus.root, data, ignore=shutil.ignore_patterns("cache"))
    manifest = json.loads((data / "manifest.json").read_text())
    for item in manifest["items"]:
        item["split"] = "heldout"
    (data / "manifest.json").write_text(json.dumps(manifest))
    common = ["--data", str(data), "--pieces", "3", "--rates", "2", "--model", f"tiny={tiny_model}", "--methods"]
    assert benchmark(*common, "--out", str(tmp_path / "one"), "--jobs", "1") == 0
    assert benchmark(*common, "--out", str(tmp_path / "two"), "--jobs", "2") == 0
    one, two = rows(tmp_path / "one" / "results.csv"), rows(tmp_path / "two" / "results.csv")
    assert len(one) == 3 and "visqol" in one[0] and "two_sample_accuracy" in one[0]
    assert [r.keys() for r in two] == [r.keys() for r in one]
    for a, b in zip(one, two):
        assert {k: v for k, v in a.items() if k != "realtime_factor"} == {
            k: v for k, v in b.items() if k != "realtime_factor"
        }
    assert float(one[0]["visqol"]) > 1  # measured, not NaN

    bad = data / manifest["items"][1]["audio"]["2.000"]
    bad.write_bytes(bad.read_bytes()[:200])  # a truncated FLAC
    capsys.readouterr()
    assert benchmark(*common, "--out", str(tmp_path / "broken"), "--jobs", "2", "--no-visqol", "--no-two-sample") == 1
    err = capsys.readouterr().err
    assert f"{manifest['items'][1]['id']} at rate 2" in err and "1 of 3 pair(s) failed" in err
    kept = rows(tmp_path / "broken" / "results.csv")
    assert [r["piece"] for r in kept] == [manifest["items"][k]["id"] for k in (0, 2)]


# --- folder stretching -------------------------------------------------------------------------


def album(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    for k in range(4):
        sf.write(str(folder / f"{k}.wav"), music_like(SR, seed=k), SR)
    sf.write(str(folder / "sub" / "s.flac"), music_like(SR, seed=9, channels=2).T, SR)
    sf.write(str(folder / "silent.wav"), np.zeros(SR, np.float32), SR)  # fails
    sf.write(str(folder / "._0.wav"), music_like(SR), SR)  # hidden: never input
    return folder


def test_folder_stretching_is_the_same_at_one_and_two_jobs(tiny_model, tmp_path, capsys):
    src = album(tmp_path / "album")
    outs = {}
    for jobs in ("1", "2"):
        dst = tmp_path / f"out{jobs}"
        assert (
            cli(["stretch", str(src), str(dst), "--rate", "0.8", "--checkpoint", str(tiny_model), "--jobs", jobs]) == 1
        )
        out, err = capsys.readouterr()
        assert f"5 stretched into {dst}, 1 failed: silent.wav" in out
        assert f"gan-stretch: error: audio file {src / 'silent.wav'} is silent" in err
        outs[jobs] = files(dst)
    assert sorted(outs["1"]) == ["0.wav", "1.wav", "2.wav", "3.wav", "sub/s.flac"]
    assert outs["2"] == outs["1"]  # the same bytes
    # --no-clobber with workers: what is there is kept, the rest is done
    (tmp_path / "out2" / "1.wav").unlink()
    (tmp_path / "out2" / "2.wav").write_bytes(b"kept")
    assert (
        cli(
            [
                "stretch",
                str(src),
                str(tmp_path / "out2"),
                "--rate",
                "0.8",
                "--checkpoint",
                str(tiny_model),
                "--jobs",
                "2",
                "--no-clobber",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "1 stretched" in out and "4 already there (--no-clobber)" in out and "1 failed: silent.wav" in out
    assert (tmp_path / "out2" / "1.wav").read_bytes() == outs["1"]["1.wav"]
    assert (tmp_path / "out2" / "2.wav").read_bytes() == b"kept"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_parallel_folder_leaves_no_partial_file(sig, tiny_model, tmp_path):
    """SIGTERM to gan-stretch, or Ctrl-C (SIGINT to the whole process group): the workers unwind
    their files and exit, and the command exits as the one-process command does."""
    # its own session, SIGINT at default: Ctrl-C reaches the whole group as from a terminal
    proc, dst = folder_stretch_under_way(tmp_path, tiny_model, signal.SIG_DFL)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what Ctrl-C in a terminal does
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "Error" not in err and "leaked" not in err, err
    assert list(dst.iterdir()) == []
    for _ in range(100):  # the fork server and the workers end with the command
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"processes {left} outlived the command"


@pytest.mark.slow
def test_teacher_corpora_are_the_same_at_one_and_two_jobs(tiny_corpus, tmp_path):
    from gan_stretch.data.teacher_corpora import build_teacher, teacher_from_corpus

    music = tmp_path / "music"
    (music / "sub").mkdir(parents=True)
    for k, name in enumerate(["a.wav", "sub/b.flac", "c.ogg"]):
        sf.write(str(music / name), music_like(int(1.5 * SR), seed=k), SR)
    for jobs in (1, 2):
        build_teacher(
            music, tmp_path / f"rec{jobs}", teacher="pv", rates=(0.5, 2.0), seconds=1.0, excerpts=2, jobs=jobs
        )
        teacher_from_corpus(tiny_corpus.root, tmp_path / f"from{jobs}", "wsola", jobs=jobs)
    for kind in ("rec", "from"):
        one, two = files(tmp_path / f"{kind}1"), files(tmp_path / f"{kind}2")
        assert one == two and "manifest.json" in one and len(one) > 6


# A stand-in for the shell or service manager that runs gan-stretch: it adopts the orphans of what
# it starts (a child subreaper, as systemd --user is; without one they would go to this machine's
# init, which may end them itself), kill -9s the command once both workers are writing, and prints
# how many of its descendants are alive SECONDS later, and the files left in the output folder.
REAPER = r"""
import ctypes, os, subprocess, sys, time
from pathlib import Path
dst, seconds, cmd = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t0 = time.time()
while time.time() - t0 < 180 and not (dst.is_dir() and len([p for p in dst.iterdir() if ".partial-" in p.name]) == 2):
    time.sleep(0.05)
proc.kill()
proc.wait()

def alive():  # every descendant still running (the fork server's workers are grandchildren)
    parents = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(d)] = int(fields[1])
    mine, grew = {os.getpid()}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return sorted(mine - {os.getpid()})

t1 = time.time()
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    left = alive()
    if not left or time.time() - t1 > seconds:
        break
    time.sleep(0.1)
print(len(left), sorted(p.name for p in dst.iterdir()))
for pid in left:
    os.kill(pid, 9)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux's child subreaper")
def test_workers_end_when_the_command_is_killed(tiny_model, tmp_path):
    """kill -9 of gan-stretch during a folder run with --jobs 2: its workers stop within seconds
    (their partial files removed), instead of finishing the batch and then waiting for ever."""
    src = long_album(tmp_path)
    dst = tmp_path / "out"
    command = [sys.executable, "-m", "gan_stretch.cli", "stretch", str(src), str(dst), "--rate", "0.5"]
    command += ["--checkpoint", str(tiny_model), "--griffin-lim", "8", "--jobs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", REAPER, str(dst), "10", *command], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 []", proc.stdout  # nobody left, no partial file


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_folder_even_where_sigint_was_ignored(tiny_model, tmp_path):
    """A parent that ignores SIGINT hands that on (a script's background job); Ctrl-C still
    stops the workers, so the command must stop with them: "interrupted", exit 130, not "a worker
    process died" for every file, and no leaked-semaphore warning from the workers' exit."""
    proc, dst = folder_stretch_under_way(tmp_path, tiny_model, signal.SIG_IGN)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "gan-stretch: interrupted" in err, err
    assert "worker process died" not in err and "leaked" not in err and "Traceback" not in err, err
    assert list(dst.iterdir()) == []


def folder_stretch_under_way(tmp_path: Path, model, sigint) -> tuple[subprocess.Popen, Path]:
    """gan-stretch --jobs 2 on a long album, in a session of its own with SIGINT handled as
    ``sigint``, once both workers are writing their partial files: (the process, its output folder)."""
    dst = tmp_path / "out"
    proc = start_stretch(
        long_album(tmp_path),
        dst,
        model,
        "--jobs",
        "2",
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    wait_until(proc, lambda: dst.is_dir() and len([p for p in dst.iterdir() if ".partial-" in p.name]) == 2, 180)
    return proc, dst


def long_album(tmp_path: Path) -> Path:
    """A folder of three 40 s stereo files: long enough for a signal to arrive while they stretch."""
    src = tmp_path / "album"
    src.mkdir()
    for k in range(3):
        sf.write(str(src / f"{k}.wav"), music_like(40 * SR, seed=k, channels=2).T, SR)
    return src
