"""Data parallelism for the trainer under ``torchrun`` (one process per GPU; gloo on CPU).

Two layouts (``TrainConfig.parallel``):

- ``ddp``: every rank holds the whole model. A PPO mini-batch's micro-batches are dealt
  round-robin to the ranks; each rank accumulates its gradients weighted by its micro-batches'
  share of the whole mini-batch's response tokens, and one all-reduce (SUM) of the flattened
  gradients before every optimizer step gives all ranks the gradient one process would compute
  (DDP's reducer, done explicitly so that a rank with fewer micro-batches never deadlocks).
- ``fsdp``: FSDP2 ``fully_shard`` on every decoder layer and the root, so parameters, gradients and
  AdamW states are split over the ranks (7B in fp32 with AdamW needs ~112 GB: it fits 4 x 80 GB
  only sharded). Every forward/backward is then a collective, so each rank runs the same number of
  micro-batches per step (:func:`deal`: a rank short of one repeats a micro-batch at weight 0), and
  FSDP's averaging reduce-scatter is turned into the sum by scaling the loss by the world size.

Rollouts are sharded by whole groups and gathered, so advantages are computed on the full batch on
every rank. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is the identity.
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


def shard_model(model: torch.nn.Module) -> torch.nn.Module:
    """FSDP2-shard ``model`` over all ranks in place: each ``*DecoderLayer`` is its own unit, the
    root holds the rest (embeddings, final norm, head; a tied head stays with its embedding)."""
    if world_size() == 1:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device().type, (world_size(),))
    for module in model.modules():
        if type(module).__name__.endswith("DecoderLayer"):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective: every rank calls it, in the same order)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict on every rank (a collective under FSDP; plain ``state_dict`` else)."""
    return {k: full_tensor(v).detach() for k, v in model.state_dict().items()}


def optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state to save: ``state_dict()``, or under FSDP the whole (unsharded) state
    keyed by parameter name, gathered (a collective; rank 0 receives it, the others an empty dict)."""
    if not is_sharded(module):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Inverse of :func:`optimizer_state` (every rank passes the whole state it read)."""
    if not is_sharded(module):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True))


def deal(micro: Sequence[T], sharded: bool) -> list[tuple[T, float]]:
    """This rank's (micro-batch, weight) of one optimizer step: round-robin with weight 1; under
    FSDP padded to the same count on every rank with weight-0 repeats of the step's first one,
    times the world size (FSDP averages gradients over ranks; the update sums them)."""
    mine = [(m, 1.0) for m in shard(micro)]
    if not sharded or world_size() == 1:
        return mine
    n = -(-len(micro) // world_size())
    return [(m, float(w * world_size())) for m, w in mine + [(micro[0], 0.0)] * (n - len(mine))]


def sync_grads(model: torch.nn.Module) -> None:
    """Gradients summed over ranks: FSDP did it in backward; else one all-reduce."""
    if not is_sharded(model):
        all_reduce_grads([p for p in model.parameters() if p.requires_grad])  # frozen weights (adapters) have none


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
