"""Distributed data parallel: the process group of ``torchrun``, the sharded epoch order,
the DDP wrapper, and the few collective calls the loop and the test loop make.

Launch (one process per GPU; ``train.batch_size`` is per process, the global batch is
``batch_size * WORLD_SIZE``)::

    torchrun --nproc-per-node G -m darkpose train CONFIG
    torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        -m darkpose train CONFIG

Without an initialised process group every function here is the single-process case
(rank 0 of 1): :func:`is_main` is True, :func:`barrier` does nothing, :func:`gather` returns
``[obj]``, and the library's loops run exactly as in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

__all__ = [
    "Launch",
    "ShardedEpochOrder",
    "barrier",
    "cleanup",
    "epoch_order_seed",
    "gather",
    "init_from_env",
    "is_distributed",
    "is_main",
    "on_main",
    "rank",
    "wrap_model",
    "world_size",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its
    machine, the ``device`` it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"environment variable {name}: expected an integer (torchrun sets it), "
                         f"got {value!r}") from None


def init_from_env(device: str | torch.device | None = None) -> Launch:
    """Join the process group that ``torchrun`` describes in the environment.

    ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``, which
    torchrun also sets) are read; the backend is NCCL on CUDA, gloo on the CPU. ``device``:
    "cpu" or "cuda" (default: CUDA when available); on CUDA each process takes GPU
    ``LOCAL_RANK``. Without ``WORLD_SIZE`` in the environment (a plain ``python`` run) no
    group is made and the result is rank 0 of 1. Undo with :func:`cleanup`.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if "WORLD_SIZE" not in os.environ:
        return Launch(0, 1, 0, device)
    rank_, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} "
                             "CUDA devices; start at most that many processes per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank_,
                                world_size=world)
    return Launch(rank_, world, local, device)


def cleanup() -> None:
    """Leave the process group (if there is one)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the process that logs, shows progress and writes files."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0, its result (or the exception it raised) given to every rank, so
    that all ranks return or raise together and none waits for a rank that failed."""
    if not is_distributed():
        return fn()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # noqa: BLE001 - re-raised on every rank below
            box[0] = ("error", e)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over the ranks (the value itself in one process)."""
    if not is_distributed():
        return value.item()
    value = value.detach().float().clone()
    dist.all_reduce(value)
    return value.item() / world_size()


def epoch_order_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s data order: a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])


class ShardedEpochOrder(Sampler[int]):
    """The data order of one rank: a permutation of ``range(size)`` drawn from a generator
    seeded by ``(seed, epoch)`` (:func:`epoch_order_seed`), padded with its own first indices
    to a multiple of ``world_size`` and dealt out ``rank::world_size``; read from ``start``
    (the samples of this rank's share already trained on, when resuming mid-epoch).

    Every rank draws the same permutation, so the shares are disjoint (apart from the
    padding, as ``DistributedSampler``) and the order is a function of (seed, epoch, rank,
    world_size): exactly resumable. With ``world_size`` 1 it is ``RandomSampler``'s order
    under that generator, the single-process order.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in range(world_size={world_size})")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def share(self) -> int:
        """Samples per rank and epoch: ceil(size / world_size)."""
        return -(-self.size // self.world_size)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_order_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        padded = order + order[: self.share * self.world_size - self.size]
        return iter(padded[self.rank :: self.world_size][self.start :])

    def __len__(self) -> int:
        return self.share - self.start


def wrap_model(model: nn.Module, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when a process group is initialised (gradients
    averaged over all ranks at each backward), else ``model`` itself. ``sync_batchnorm``:
    convert its BatchNorm layers to ``SyncBatchNorm`` first (statistics over the global
    batch; CUDA only), in place on ``model``'s children, so ``model.state_dict()`` keeps its
    keys. Save ``model``, never the wrapper."""
    if not is_distributed():
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            from darkpose.config import ConfigError

            raise ConfigError(f"train.sync_batchnorm: SyncBatchNorm needs CUDA devices (got {device}); "
                              "set train.sync_batchnorm=false")
        for name, child in model.named_children():
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
