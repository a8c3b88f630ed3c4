"""Optimizers (``optim`` + ``optim_conf``) and learning-rate schedulers (``scheduler`` + ``scheduler_conf``).

Optimizers: ``adam``, ``adamw``, ``sgd`` (``optim_conf`` is passed to the torch class).
If the model (or else its encoder) has ``param_groups(base_lr) -> list[dict]`` (e.g.
layer-wise learning rates) those groups are used; every other trainable parameter goes in one
default group. Frozen parameters (``requires_grad=False``) are left out.

Schedulers (our own small classes, so their state is plain numbers and a checkpoint loads
with ``torch.load(weights_only=True)``). Each group's lr is ``initial_lr × f(step)``:

* ``warmuplr`` — ESPnet's WarmupLR (``warmup_steps=25000``): ``f = warmup^0.5 ×
  min(step^-0.5, step × warmup^-1.5)``; per optimizer step.
* ``warmupcosinelr`` / ``cosineannealingwarmuprestarts`` — linear warm-up over
  ``warmup_steps`` then cosine decay to ``min_lr`` over ``first_cycle_steps`` (alias
  ``total_steps``; default: all optimizer steps of training), with optional restarts
  (``cycle_mult``, ``gamma``) and ``max_lr`` (default: the optimizer's lr); per step.
* ``steplr`` — ``× gamma`` every ``step_size`` epochs; per epoch.
* ``none`` / null — constant lr.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch

from espnet_cls.fileio import DataError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("warmuplr", "warmupcosinelr", "cosineannealingwarmuprestarts", "steplr", "none")


def build_optimizer(model: torch.nn.Module, optim: str, optim_conf: dict) -> torch.optim.Optimizer:
    """Optimizer over the trainable parameters, using the encoder's ``param_groups`` hook if any."""
    name = str(optim).lower()
    if name not in OPTIMIZERS:
        raise DataError(f"optim must be one of {', '.join(OPTIMIZERS)}, got {optim!r}")
    conf = dict(optim_conf or {})
    if "betas" in conf:
        conf["betas"] = tuple(conf["betas"])
    for k, v in conf.items():
        if isinstance(v, str):
            try:
                conf[k] = float(v)
            except ValueError:
                raise DataError(f"optim_conf.{k}: expected a number, got {v!r}") from None
    base_lr = float(conf.get("lr", 1e-3 if name != "sgd" else 0.1))
    conf["lr"] = base_lr
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    hook = getattr(model, "param_groups", None)
    if not callable(hook):
        hook = getattr(getattr(model, "encoder", None), "param_groups", None)
    if callable(hook):
        for g in hook(base_lr):
            g = dict(g)
            params = [p for p in g.pop("params") if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                groups.append({"params": params, **g})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        groups.insert(0, {"params": rest})
    if not groups:
        raise DataError("the model has no trainable parameter (check freeze_param)")
    try:
        return OPTIMIZERS[name](groups, **conf)
    except TypeError as e:
        raise DataError(f"optim_conf for {name}: {e}") from None


class Scheduler:
    """Sets each param group's lr to ``initial_lr × factor`` (step- or epoch-driven)."""

    per_step = True

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.n_steps = 0
        self.n_epochs = 0
        self._apply()

    def factor(self, group: dict) -> float:
        """lr / initial_lr for ``group`` at the current step/epoch."""
        return 1.0

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * self.factor(g)

    def step_batch(self) -> None:
        """Call after each optimizer update."""
        self.n_steps += 1
        if self.per_step:
            self._apply()

    def step_epoch(self) -> None:
        """Call at the end of each epoch."""
        self.n_epochs += 1
        if not self.per_step:
            self._apply()

    def state_dict(self) -> dict[str, int]:
        """Plain-number state (steps and epochs done)."""
        return {"n_steps": self.n_steps, "n_epochs": self.n_epochs}

    def load_state_dict(self, state: dict) -> None:
        """Restore the counters and re-apply the lr."""
        self.n_steps = int(state["n_steps"])
        self.n_epochs = int(state["n_epochs"])
        self._apply()


class WarmupLR(Scheduler):
    """ESPnet's WarmupLR (Noam without the model-size factor)."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 25000) -> None:
        self.warmup_steps = int(warmup_steps)
        super().__init__(optimizer)

    def factor(self, group: dict) -> float:
        s = self.n_steps + 1
        w = max(self.warmup_steps, 1)
        return w**0.5 * min(s**-0.5, s * w**-1.5)


class WarmupCosineLR(Scheduler):
    """Linear warm-up, then cosine decay to ``min_lr``, with optional restarts."""

    def __init__(self, optimizer: torch.optim.Optimizer, first_cycle_steps: int, warmup_steps: int = 0,
                 max_lr: Optional[float] = None, min_lr: float = 0.0, cycle_mult: float = 1.0,
                 gamma: float = 1.0) -> None:
        self.first_cycle_steps = max(int(first_cycle_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.cycle_mult = float(cycle_mult)
        self.gamma = float(gamma)
        self.min_lr = float(min_lr)
        ref = optimizer.defaults["lr"]
        if max_lr is not None:
            for g in optimizer.param_groups:
                g["initial_lr"] = g["lr"] * float(max_lr) / ref
        self.max_lr = float(max_lr) if max_lr is not None else ref
        super().__init__(optimizer)

    def factor(self, group: dict) -> float:
        s = self.n_steps
        length, cycle = self.first_cycle_steps, 0
        while s >= length:
            s -= length
            cycle += 1
            length = max(int(round(length * self.cycle_mult)), 1)
        peak = self.gamma**cycle
        lo = self.min_lr / self.max_lr if self.max_lr > 0 else 0.0
        warm = min(self.warmup_steps, length - 1)
        if warm > 0 and s < warm:
            return lo + (peak - lo) * (s + 1) / (warm + 1)
        prog = (s - warm) / max(length - warm, 1)
        return lo + (peak - lo) * 0.5 * (1.0 + math.cos(math.pi * prog))


class StepLR(Scheduler):
    """``lr × gamma`` every ``step_size`` epochs."""

    per_step = False

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int = 1, gamma: float = 0.1) -> None:
        self.step_size = max(int(step_size), 1)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, group: dict) -> float:
        return self.gamma ** (self.n_epochs // self.step_size)


def build_scheduler(optimizer: torch.optim.Optimizer, scheduler: Optional[str], conf: dict,
                    total_steps: int) -> Scheduler:
    """Scheduler by name (``None``/``none``: constant lr). ``total_steps``: optimizer steps of the run."""
    name = "none" if scheduler is None else str(scheduler).lower()
    conf = dict(conf or {})
    try:
        if name == "none":
            return Scheduler(optimizer)
        if name == "warmuplr":
            return WarmupLR(optimizer, **conf)
        if name in ("warmupcosinelr", "cosineannealingwarmuprestarts"):
            steps = conf.pop("first_cycle_steps", None) or conf.pop("total_steps", None) or total_steps
            conf.pop("total_steps", None)
            return WarmupCosineLR(optimizer, first_cycle_steps=steps, **conf)
        if name == "steplr":
            return StepLR(optimizer, **conf)
    except TypeError as e:
        raise DataError(f"scheduler_conf for {name}: {e}") from None
    raise DataError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")


def current_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """The lr of every param group."""
    return [float(g["lr"]) for g in optimizer.param_groups]


def trainable(params: Iterable[torch.nn.Parameter]) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in params if p.requires_grad)
