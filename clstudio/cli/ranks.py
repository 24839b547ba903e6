"""`clstudio train` on several processes: ``--nproc N`` starts them through torch's own launcher (what
``torchrun --standalone --nproc-per-node N -m clstudio train ...`` does), and a process started by either
finds its rank, its device and its process group here. The training itself is ``engine/distributed.py``."""

from __future__ import annotations

import os
import signal
import sys

from clstudio.engine.device import resolve_device
from clstudio.engine.distributed import Collective, from_environment, is_peer_failure, launched_by_torchrun

PEER_STOPPED = (
    "another process of this distributed run stopped (killed, out of memory, or its machine went away), so "
    "this one stopped too. The task in training stays untrained; its last epoch checkpoint is kept: run the "
    "same command with --resume (any number of processes) to continue it."
)


RUN_STOPPED = (
    "a process of this distributed run stopped (out of memory, or stopped from outside), so the run stopped. "
    "The task in training stays untrained; its last epoch checkpoint is kept: run the same command with "
    "--resume (any number of processes) to continue it."
)


def without_nproc(argv: list[str]) -> list[str]:
    """The command line minus ``--nproc N`` / ``--nproc=N``: what every launched process runs."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``clstudio <argv>`` as ``nproc`` processes on this machine, under torch's elastic launcher."""
    if launched_by_torchrun():
        return -1  # already one of the processes: train
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    print(f"Starting {nproc} training processes (torch.distributed, {_backend()}).", file=sys.stderr)
    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "clstudio", *without_nproc(argv)])
    except SignalException as e:
        # Ctrl-C (or a kill) reached the launcher, which passed it on to the processes: each cancels at the
        # same step and says so itself.
        return 130 if e.sigval == signal.SIGINT else 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = sorted({f.exitcode for f in e.failures.values()})
        if codes == [130]:
            return 130  # cancelled: each process said so
        killed = sorted((rank, f.signal_name()) for rank, f in e.failures.items() if f.exitcode < 0)
        if killed:
            # Said here, not only by the surviving ranks: the launcher may stop them (SIGTERM) before their
            # next collective notices the missing peer, and then nobody else explains what happened.
            who = ", ".join(f"rank {rank} was killed ({name})" for rank, name in killed)
            print(f"clstudio: error: {who}: {RUN_STOPPED}", file=sys.stderr)
            return 1
        print(
            f"clstudio: error: a training process failed (exit codes {', '.join(map(str, codes))}); see its "
            "message above. The task in training stays untrained; run the same command with --resume to "
            "continue from its last epoch.",
            file=sys.stderr,
        )
        return 1
    return 0


def _backend() -> str:
    import torch

    return "NCCL on CUDA" if torch.cuda.is_available() else "gloo on the CPU"


def join(device: str) -> tuple[Collective, str]:
    """This process's ranks and the device it trains on (cuda:<local rank> on a GPU machine)."""
    resolved = resolve_device(device)
    ranks = from_environment(resolved)
    if ranks.active and resolved.startswith("cuda"):
        resolved = f"cuda:{ranks.local_rank}"
    return ranks, resolved


def explain(ranks: Collective, error: BaseException) -> str | None:
    """A message for an error that is really another rank's failure (None: not one)."""
    if ranks.active and is_peer_failure(error):
        return f"clstudio: rank {ranks.rank}: {PEER_STOPPED}"
    return None


def leave(code: int) -> None:
    """End a distributed process now, skipping the interpreter's teardown: there, gloo's threads abort a
    process now and then ("terminate called without an active exception", exit -6) when the other ranks
    leave at other moments, which the launcher would report as a failed run. Everything is saved and
    flushed by then."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
