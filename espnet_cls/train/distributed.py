"""torch.distributed helpers for the trainer.

The world comes from the environment: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun,
``espnet_cls.bin.launch``) or, failing that, Slurm's ``SLURM_PROCID``/``SLURM_NTASKS``/
``SLURM_LOCALID``; ``MASTER_ADDR``/``MASTER_PORT`` give the rendezvous (``env://``).
With ``WORLD_SIZE`` unset or 1 everything here is a no-op for one process.
Backend: ``nccl`` on GPU, ``gloo`` on CPU (or ``dist_backend`` from the config).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass
class DistInfo:
    """This process's place in the world."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True for rank 0, the only process that writes files."""
        return self.rank == 0


def _env_int(*names: str) -> Optional[int]:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            return int(v)
    return None


def dist_info_from_env(config: Optional[dict] = None) -> DistInfo:
    """Read rank / world size / local rank from config (``dist_*``) or the environment."""
    config = config or {}
    world = config.get("dist_world_size") or _env_int("WORLD_SIZE", "SLURM_NTASKS") or 1
    rank = config.get("dist_rank")
    if rank is None:
        rank = _env_int("RANK", "SLURM_PROCID") or 0
    local = config.get("local_rank")
    if local is None:
        local = _env_int("LOCAL_RANK", "SLURM_LOCALID") or 0
    return DistInfo(rank=int(rank), world_size=int(world), local_rank=int(local))


def init_distributed(info: DistInfo, use_cuda: bool, backend: Optional[str] = None,
                     init_method: str = "env://", timeout_s: int = 1800) -> None:
    """Initialise the default process group when ``info.world_size > 1`` (idempotent)."""
    if not info.distributed or dist.is_initialized():
        return
    backend = backend or ("nccl" if use_cuda else "gloo")
    if init_method == "env://" and "MASTER_ADDR" not in os.environ:
        raise RuntimeError("WORLD_SIZE > 1 but MASTER_ADDR is not set (run through torchrun or espnet_cls.bin.launch)")
    os.environ.setdefault("MASTER_PORT", "29500")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, init_method=init_method, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    logger.info("torch.distributed: rank %d/%d (local %d), backend %s", info.rank, info.world_size, info.local_rank,
                backend)


def cleanup() -> None:
    """Destroy the process group if one was created."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    """True inside an initialised multi-process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` for one process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Sum float values over ranks (a dict of python floats, same keys on every rank)."""
    if not is_dist() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def broadcast_bool(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not is_dist():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if is_dist():
        dist.barrier()
