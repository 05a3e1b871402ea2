"""Data parallelism for the trainer under ``torchrun`` (one process per GPU; gloo on CPU).

Every rank holds the whole model (DDP's layout; the paper's 1.5B/7B models fit one GPU each for
the actor update with micro-batching). A PPO mini-batch's micro-batches are dealt round-robin to
the ranks; each rank accumulates its gradients weighted by its micro-batches' share of the whole
mini-batch's response tokens, and one all-reduce (SUM) of the flattened gradients before every
optimizer step gives all ranks the gradient one process would compute (DDP's reducer, done
explicitly so that a rank with fewer micro-batches in a step never deadlocks). Rollouts are sharded
by whole groups and gathered, so advantages are computed on the full batch on every rank.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is the identity.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)
T = TypeVar("T")


def init_from_env() -> None:
    """Join the process group ``torchrun`` describes in the environment (once); no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        log.info("rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def device() -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def shard(items: Sequence[T]) -> list[T]:
    """This rank's items: every ``world_size``-th, starting at ``rank``."""
    return list(items[rank()::world_size()])


def all_reduce_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over ranks in place (a missing gradient counts as zero)."""
    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_reduce_sum(values: dict[str, float]) -> dict[str, float]:
    """Sum a dict of floats over ranks (same keys on every rank, in the same order)."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (picklable objects)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
