"""Training in more than one process, on torch.distributed: what train.py needs of it.

    torchrun --nproc_per_node=2 -m src.train      # or train.processes: 2 in params.yaml

torchrun starts N copies of the train stage and tells each its RANK (0 to N-1) and the
WORLD_SIZE, N. Every copy builds the same global batches (same seed) and trains on its own
share of each batch's rows, batch_size / N of them. DistributedDataParallel (DDP) averages
the copies' gradients after each backward pass (gloo on the CPU, nccl on CUDA, one GPU a
copy), so every copy takes the same step and the weights stay equal everywhere, as if one
process had trained on the whole batch. Only the first copy, rank 0, writes: checkpoints,
resume state, metrics and logs; the others print nothing. Every copy draws the same random
numbers (same seed, same shapes), so rank 0's resume state is every copy's.

Without torchrun (WORLD_SIZE unset or 1) none of this runs: one process, no process group,
no DDP, the same bytes as ever.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import NoReturn

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

PR_SET_PDEATHSIG = 1  # prctl's option: the signal a process gets when its parent dies (linux/prctl.h)


def world_size() -> int:
    """How many processes train together (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number, 0 to world_size() - 1."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the outputs: rank 0, or the only process."""
    return rank() == 0


def launched() -> bool:
    """Whether torchrun (or another launcher of torch.distributed) started this process."""
    return "WORLD_SIZE" in os.environ


def relaunch(module: str, processes: int) -> NoReturn:
    """Replace this process with torchrun running `python -m module` (same arguments) in
    `processes` processes on this machine: how train.processes works under `dvc exp run`.
    --standalone picks a free port, so two runs (two queue workers) never collide."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    os.execv(sys.executable, [*command, "-m", module, *sys.argv[1:]])


@contextmanager
def process_group() -> Iterator[None]:
    """Join the other processes for the block (nothing to join alone); on CUDA, each process
    takes the GPU of its local rank, which "cuda" then means. Only rank 0 prints."""
    if world_size() == 1:
        yield
        return
    die_with_launcher()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)
    try:
        with open(os.devnull, "w") as nowhere, redirect_stdout(sys.stdout if is_main() else nowhere):  # rank 0 says it all
            print(f"torch.distributed: {world_size()} processes, {backend}")
            yield
    finally:
        dist.destroy_process_group()


def die_with_launcher() -> None:
    """torchrun starts each process in a session of its own, so `kill -9` of torchrun, or of the
    process group of `dvc exp run`, would leave them training on, and writing. On Linux, ask the
    kernel to kill this process when its launcher dies, as a process of one run would die."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model as training steps run it: in DDP, which averages gradients over the processes."""
    return model if world_size() == 1 else DistributedDataParallel(model)


def share(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """This process's rows of a global batch: the rank-th of world_size() equal parts
    (read_params checks that batch_size divides by it)."""
    rows = len(batch[0]) // world_size()
    return tuple(tensor[rank() * rows : (rank() + 1) * rows] for tensor in batch)


def total(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over the processes (`value` itself, alone)."""
    if world_size() == 1:
        return value
    summed = value.clone()
    dist.all_reduce(summed)
    return summed


def barrier() -> None:
    """Wait until every process has come here."""
    if world_size() > 1:
        dist.barrier()
