"""Runs training recipes one after another in each process that ``accelerate launch`` started
(tests/train/test_distributed.py): one launch, one process group, several runs.

    accelerate launch --config_file recipes/accelerate/cpu-2proc.yaml tests/train/distributed_driver.py PLAN.json LOG

PLAN.json: a list of {"recipe": path, "overrides": ["key=value", ...], "crash_at": step or null}.
A run with ``crash_at`` raises in every process at the first update of step ``crash_at``
(counted from 0: after that many steps), as a kill would stop it there, and the plan goes on with its next run in the same process group (which is
destroyed once, at the end, instead of by every run). Every file a process puts in place (atomic
writes end in ``os.replace``) is appended to LOG/writes-rank<i>.txt, so the test can tell which
process wrote what; LOG/pid-rank<i>.txt holds each process's id (TensorBoard names its files with it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


class SimulatedCrash(Exception):
    pass


def main() -> int:
    plan, log = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    rank = int(os.environ.get("RANK", 0))
    log.mkdir(parents=True, exist_ok=True)
    (log / f"pid-rank{rank}.txt").write_text(str(os.getpid()))
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        with open(log / f"writes-rank{rank}.txt", "a") as f:
            f.write(f"{dst}\n")
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace

    import torch.distributed
    from accelerate.state import PartialState

    from gan_stretch.train import run
    from gan_stretch.train.common import Run

    # every run ends by destroying the process group (Accelerator.end_training); the plan's next
    # run needs it, so it is destroyed once, at the end
    PartialState.destroy_process_group = lambda self, group=None: None
    optimize = Run.optimize
    for entry in plan:
        crash = entry.get("crash_at")

        def crashing(self, name, loss, base_lr, step, crash=crash):
            if step == crash:
                raise SimulatedCrash(f"simulated crash at step {step}")
            return optimize(self, name, loss, base_lr, step)

        Run.optimize = crashing
        try:
            run(entry["recipe"], entry["overrides"])
        except SimulatedCrash:
            assert crash is not None
        else:
            assert crash is None, f"{entry} did not reach step {crash}"
    torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
