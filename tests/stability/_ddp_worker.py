"""What each rank runs in tests/stability/test_distributed.py (2 CPU processes, gloo).

One process group, three scenarios (DDP, FSDP2 ``fully_shard``, bare DTensors); each rank saves
what it measured to ``out_dir/rank{r}.pt`` and the test compares the ranks with each other and
with a single process run on the whole batch (:func:`reference`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from stabletrain.stability import (
    StepGuard,
    adaptive_clip_grad_,
    clip_grad_norm_,
    clip_grad_value_,
    grad_norm,
)
from tests._gloo import process_group

WORLD = 2
BATCH = 8  # global batch; each rank takes BATCH // WORLD rows
MAX_NORM = 0.05  # small enough that every scenario clips
CLIP_VALUE = 0.01
NAN_PARAM = "2.weight"  # where rank 1 injects a NaN (uneven shards: 5 rows over 2 ranks)
SPIKE = 1000.0  # rank 0 multiplies its loss by this on the spike step
OVERFLOW_PARAM = "0.weight"  # every entry set to OVERFLOW on step 6: Σg² overflows float32
OVERFLOW = 1e19


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(BATCH, 6, generator=g), torch.randn(BATCH, 3, generator=g)


def local_batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = global_batch(step)
    rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    return x[rows], y[rows]


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).pow(2).mean()


def _strip(name: str) -> str:
    return name.removeprefix("module.")


def full_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every gradient, gathered whole (DTensor shards joined)."""
    out = {}
    for name, p in model.named_parameters():
        g = p.grad
        if g is not None and hasattr(g, "full_tensor"):
            g = g.full_tensor()
        out[_strip(name)] = torch.zeros_like(p) if g is None else g.detach().clone()
    return out


def full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[_strip(name)] = t.detach().clone()
    return out


Clip = Callable[[nn.Module], Any]
CLIPS: dict[str, Clip] = {
    "norm": lambda m: clip_grad_norm_(m, MAX_NORM),
    "norm_inf": lambda m: clip_grad_norm_(m, MAX_NORM, math.inf),
    "per_layer": lambda m: clip_grad_norm_(m, MAX_NORM, per_layer=True),
    "value": lambda m: clip_grad_value_(m, CLIP_VALUE),
    "agc": lambda m: adaptive_clip_grad_(m, clipping=0.01),
}


def _plain(value: Any) -> Any:
    """Measured values as plain tensors with the names of the unwrapped model."""
    if isinstance(value, dict):
        return {_strip(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return value.detach().clone()


def measure_clips(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """Per clipping function: what it returned and the whole gradients after it."""
    out: dict[str, Any] = {}
    for name, clip in CLIPS.items():
        model.zero_grad()
        loss_of(model, *batch).backward()
        if name == "norm":
            out["grad_norm"] = _plain(grad_norm(model))
            out["grad_norm_layers"] = _plain(grad_norm(model, per_layer=True))
        returned = clip(model)
        out[name] = (_plain(returned), full_grads(model))
    model.zero_grad()
    return out


def guard_run(
    model: nn.Module,
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    nan_on: bool,
    spike_on: bool,
) -> list[dict[str, Any]]:
    """Seven guarded steps: 2 is poisoned (NaN grad on ``nan_on`` ranks), 5 has a loss spike,
    6 has finite gradients whose norm overflows float32 (set on every rank, as after DDP's
    all-reduce; each FSDP rank fills its shard): clipped with the exact norm and taken."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = StepGuard(
        opt, max_norm=MAX_NORM, spike_zscore=6.0, spike_on=("loss",), min_history=2, model=model
    )
    log = []
    for step in range(7):
        opt.zero_grad()
        loss = loss_of(model, *batches(step))
        loss.backward()
        grads = {_strip(n): p.grad for n, p in model.named_parameters()}
        if step == 2 and nan_on:
            grad = grads[NAN_PARAM]
            local = grad.to_local() if hasattr(grad, "to_local") else grad
            local.view(-1)[0] = math.nan
        if step == 6:
            grad = grads[OVERFLOW_PARAM]
            (grad.to_local() if hasattr(grad, "to_local") else grad).fill_(OVERFLOW)
        reported = loss.detach() * (SPIKE if step == 5 and spike_on else 1.0)
        result = guard.step(reported)
        log.append(
            {
                "stepped": result.stepped,
                "reason": result.reason,
                "norm": result.total_norm.detach().clone(),
                "named": [_strip(n) for n in result.nonfinite_params],
                "params": full_params(model),
            }
        )
    return log


def scaler_run(model: nn.Module, rank: int) -> list[tuple[bool, str | None, float]]:
    """Two float16 steps with a GradScaler; rank 1 poisons step 2 after DDP's all-reduce.

    Returns (stepped, reason, scale after the step) per step: the scale must back off on every
    rank although only rank 1's scaler saw the overflow.
    """
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    guard = StepGuard(opt, scaler=scaler, model=model)
    out = []
    for step in range(2):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = loss_of(model, *local_batch(step, rank))
        scaler.scale(loss).backward()
        if step == 1 and rank == 1:
            grad = {_strip(n): p for n, p in model.named_parameters()}[NAN_PARAM].grad
            grad.view(-1)[0] = math.nan
        result = guard.step(loss)
        out.append((result.stepped, result.reason, scaler.get_scale()))
    return out


def reference() -> dict[str, Any]:
    """The same runs in one process on the whole batch."""
    model = build_model()
    return {
        "clips": measure_clips(model, global_batch(0)),
        "guard": guard_run(build_model(), global_batch, nan_on=True, spike_on=True),
    }


def _ddp(rank: int) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel

    model = DistributedDataParallel(build_model())
    return {
        "clips": measure_clips(model, local_batch(0, rank)),
        "guard": guard_run(
            DistributedDataParallel(build_model()),
            lambda s: local_batch(s, rank),
            nan_on=rank == 1,
            spike_on=rank == 0,
        ),
        "scaler": scaler_run(DistributedDataParallel(build_model()), rank),
    }


def _fsdp(rank: int) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))

    def sharded() -> nn.Module:
        model = build_model()
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model

    return {
        "clips": measure_clips(sharded(), local_batch(0, rank)),
        "guard": guard_run(
            sharded(), lambda s: local_batch(s, rank), nan_on=rank == 1, spike_on=rank == 0
        ),
    }


def _dtensor(rank: int) -> dict[str, Any]:
    """Bare DTensor gradients: Shard(0) (uneven), Shard(1), Replicate and Partial."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (WORLD,))
    g = torch.Generator().manual_seed(7)
    wholes = [torch.randn(5, 3, generator=g), torch.randn(4, 6, generator=g), torch.randn(3)]
    parts = [torch.randn(2, 2, generator=g) for _ in range(WORLD)]
    params = []
    for whole, placement in zip(wholes, [Shard(0), Shard(1), Replicate()], strict=True):
        p = nn.Parameter(distribute_tensor(torch.zeros_like(whole), mesh, [placement]))
        p.grad = distribute_tensor(whole, mesh, [placement])
        params.append(p)
    partial = nn.Parameter(distribute_tensor(torch.zeros(2, 2), mesh, [Replicate()]))
    partial.grad = DTensor.from_local(parts[rank], mesh, [Partial()])
    params.append(partial)
    return {
        "norm2": grad_norm(params),
        "norm_inf": grad_norm(params, math.inf),
        "norm1": grad_norm(params, 1.0),
        "wholes": [*wholes, sum(parts)],
    }


def run(rank: int, init_file: str, out_dir: str) -> None:
    """Entry point of each spawned rank."""
    with process_group(rank, WORLD, init_file):
        results = {"ddp": _ddp(rank), "fsdp": _fsdp(rank), "dtensor": _dtensor(rank)}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
