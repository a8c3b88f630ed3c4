"""The training loop (stage 6): epochs, validation on the whole valid set, checkpoints, resume.

:func:`train` takes a resolved config (see :mod:`espnet_cls.config`) and writes, in
``output_dir`` (rank 0 only):

* ``config.yaml`` — the resolved config (token list as a list);
* ``{N}epoch.pth`` — each epoch's weights (only the n-best of each criterion are kept);
* ``checkpoint.pth`` — everything needed to resume (model, optimizer, scheduler, scaler,
  RNG states, history, epoch), loadable with ``torch.load(weights_only=True)``;
* ``latest.pth`` → the last epoch's file (ESPnet);
* ``valid.<metric>.best.pth`` links, ``valid.<metric>.ave_<n>best.pth`` averages and the
  ``valid.<metric>.ave.pth`` link, after the last epoch;
* ``train_history.json`` and ``images/*.png``; TensorBoard logs in ``tensorboard/`` if installed.

Determinism: every epoch starts by seeding torch / numpy / python with ``seed + epoch``
and the batch order comes from ``RandomState(seed + epoch)``, so on CPU a run resumed from
``checkpoint.pth`` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from espnet_cls.config import dump_yaml, saved_config
from espnet_cls.contract import MULTI_CLASS, MULTI_LABEL, ContractError, dump_of, model_facts
from espnet_cls.fileio import DataError, atomic_write, read_kv
from espnet_cls.train import distributed as D
from espnet_cls.train.checkpoint import (
    atomic_torch_save,
    freeze_parameters,
    get_rng_state,
    link_or_copy,
    load_init_param,
    safe_load,
    set_rng_state,
)
from espnet_cls.train.dataset import ClsDataset, collate, parse_triple
from espnet_cls.train.optim import build_optimizer, build_scheduler, current_lrs
from espnet_cls.train.reporter import (
    average_nbest,
    epoch_file,
    epoch_results_line,
    espnet_value,
    metric_value,
    plot_curves,
    remove_stale_epochs,
    sorted_epochs,
    update_best_links,
    write_history,
)
from espnet_cls.train.sampler import (
    BATCH_TYPES,
    WEIGHTED_BATCH_TYPES,
    EpochBatches,
    build_batches,
    read_shape_file,
    weighted_batches,
)

logger = logging.getLogger(__name__)


def set_all_random_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_training_threads(requested: int, world_size: int = 1) -> int:
    """Torch intra-op threads for a CPU training process.

    ``requested`` > 0 is used as given (the config's ``num_threads``). 0 means: the CPU cores this
    process may run on (its affinity mask, so a Slurm or cgroup allocation counts), divided among the
    training processes of this node (``LOCAL_WORLD_SIZE``, else ``world_size``), at most 8. Training is
    one process (per rank), unlike the many-job stages for which path.sh sets OMP_NUM_THREADS=1: on two
    idle cores, two threads train the peer transformer in 0.7x the time of one (docs/benchmarks.md).
    """
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or world_size or 1)
    return max(1, min(8, cores // max(1, local)))


class _CurrentBatches:
    """Batch sampler of a persistent loader: the batches set for the current epoch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def build_model_from_config(config: dict) -> torch.nn.Module:
    """``espnet_cls.tasks.cls.build_model``, with config errors as :class:`DataError`."""
    from espnet_cls.tasks.cls import build_model

    try:
        return build_model(config)
    except ValueError as e:
        raise DataError(str(e), config.get("config")) from None


def _speech_path(specs: list[str]) -> Optional[str]:
    for s in specs:
        path, _name, typ = parse_triple(s)
        if typ in ("sound", "kaldi_ark"):
            return path
    return None


def check_dump_fs(wav_scp: str, config: dict) -> None:
    """Stage 6's check: the dump's recorded rate (``dump/<set>/fs``) equals the model's.

    A dump without the file (written before the rate was recorded) is accepted with a warning.
    """
    try:
        warn = dump_of(wav_scp).check_fs(model_facts(config).fs)
    except ContractError as e:
        raise DataError(e.msg, e.path, e.line) from None
    if warn:
        logger.warning("%s", warn)


def load_shapes(specs: list[str], shape_files: list[str], keys: list[str]) -> list[dict]:
    """Shape dicts for batching: the given shape files, or else lengths from ``utt2num_samples``
    beside the ``wav.scp`` (or read from the audio headers)."""
    if shape_files:
        return [read_shape_file(p) for p in shape_files]
    wav = _speech_path(specs)
    lengths: dict[str, Optional[list[int]]] = {}
    u2n = Path(wav).parent / "utt2num_samples" if wav else None
    if u2n is not None and u2n.exists():
        table = read_kv(u2n)
        lengths = {k: [int(table[k])] if k in table else None for k in keys}
    if not lengths or any(v is None for v in lengths.values()):
        import soundfile

        scp = read_kv(wav) if wav else {}
        for k in keys:
            if lengths.get(k) is None:
                value = scp.get(k, "")
                lengths[k] = [soundfile.info(value).frames] if value and not value.endswith("|") else [1]
    return [{k: lengths[k] for k in keys}]


class Trainer:
    """Runs training for one resolved config (see module doc)."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.info = D.dist_info_from_env(config)
        ngpu = int(config.get("ngpu") or 0)
        self.use_cuda = ngpu > 0 and torch.cuda.is_available()
        if ngpu > 0 and not self.use_cuda:
            logger.warning("ngpu=%d but no GPU is available: training on CPU", ngpu)
        if ngpu > 1 and not self.info.distributed:
            logger.warning("ngpu=%d in a single process: only one GPU is used (start one process per GPU "
                           "with espnet_cls.bin.launch or torchrun)", ngpu)
        if self.use_cuda:
            self.device = torch.device("cuda", self.info.local_rank if self.info.distributed else 0)
        else:
            self.device = torch.device("cpu")
        if config.get("output_dir") is None:
            raise DataError("--output_dir is required")
        self.out = Path(config["output_dir"])
        self.seed = int(config.get("seed") or 0)
        self.max_epoch = int(config["max_epoch"])
        self.accum_grad = max(int(config.get("accum_grad") or 1), 1)
        self.grad_clip = float(config.get("grad_clip") or 0)
        self.criteria = [list(c) for c in (config.get("best_model_criterion") or [["valid", "acc", "max"]])]
        for phase, metric, mode in lightning_criteria(config):
            if not any(c[0] == phase and c[1] == metric for c in self.criteria):
                self.criteria.append([phase, metric, mode])
        self.amp_dtype: Optional[torch.dtype] = None
        if config.get("use_amp"):
            if not self.use_cuda:
                logger.warning("use_amp: true is ignored on CPU (autocast needs a GPU here)")
            else:
                name = str(config.get("amp_dtype") or "float16")
                if name not in ("float16", "bfloat16"):
                    raise DataError(f"amp_dtype must be float16 or bfloat16, got {name!r}")
                self.amp_dtype = torch.float16 if name == "float16" else torch.bfloat16
        self.tty = sys.stderr.isatty()
        self.tb_writer = None
        self._next_plot = 0.0
        self._plot_pending = False
        self._loaders: dict[int, tuple[_CurrentBatches, torch.utils.data.DataLoader]] = {}

    # ------------------------------------------------------------------ setup
    def _data(self, mode: str) -> tuple[ClsDataset, EpochBatches]:
        c = self.config
        specs = list(c.get(f"{mode}_data_path_and_name_and_type") or [])
        if not specs:
            raise DataError(f"--{mode}_data_path_and_name_and_type is required")
        wav = _speech_path(specs)
        if wav:
            check_dump_fs(wav, c)
        shape_files = list(c.get(f"{mode}_shape_file") or [])
        keys = list(read_shape_file(shape_files[0])) if shape_files else None
        ds = ClsDataset(specs, c["token_list"], keys)
        shapes = load_shapes(specs, shape_files, ds.keys)
        batch_type = self._batch_type(mode)
        fold = [int(f) for f in (c.get("fold_length") or [])]
        if batch_type == "folded" and len(fold) < len(shapes):
            fold = fold + [max(1, max((v or [1])[0] for v in shapes[0].values()))] * (len(shapes) - len(fold))
        if mode == "train":
            bs = int(c["batch_size"])
            bins = int(c["batch_bins"])
        else:
            bs = int(c.get("valid_batch_size") or c["batch_size"])
            bins = int(c.get("valid_batch_bins") or c["batch_bins"])
        if mode == "train" and batch_type in WEIGHTED_BATCH_TYPES:
            return ds, self._weighted_epoch_batches(ds, shapes, batch_type, bs, bins)

        def make(rng: np.random.RandomState) -> list[list[str]]:
            return build_batches(shapes, batch_type, bs, bins, fold[: len(shapes)],
                                 min_batch_size=max(1, self.info.world_size),
                                 sort_in_batch=c.get("sort_in_batch", "descending"),
                                 sort_batch=c.get("sort_batch", "ascending"),
                                 drop_last=bool(c.get("drop_last_iter")) and mode == "train", rng=rng)

        batches = make(np.random.RandomState(self.seed))
        weights = None
        if mode == "train" and c.get("balanced_sampling"):
            wfile = Path(wav).parent / "utt2weight" if wav else None
            if wfile is None or not wfile.exists():
                raise DataError("balanced_sampling: true needs utt2weight beside the training wav.scp", str(wfile))
            table = read_kv(wfile)
            try:
                weights = {k: float(table[k]) for k in ds.keys}
            except KeyError as e:
                raise DataError(f"no weight for {e.args[0]!r}", str(wfile)) from None
            except ValueError as e:
                raise DataError(f"bad weight: {e}", str(wfile)) from None
        lengths = {k: (v or [0])[0] for k, v in shapes[0].items()}
        eb = EpochBatches(batches, shuffle=(mode == "train"), seed=self.seed, rank=self.info.rank,
                          world_size=self.info.world_size, weights=weights, batch_size=bs, lengths=lengths,
                          shuffle_within_batch=bool(c.get("shuffle_within_batch")) and mode == "train",
                          num_iters_per_epoch=c.get("num_iters_per_epoch") if mode == "train" else None,
                          rebuild=make if mode == "train" and batch_type != "unsorted" else None)
        return ds, eb

    def _batch_type(self, mode: str) -> str:
        """``batch_type``, or for validation ``valid_batch_type`` when set (ESPnet). Validation never
        draws at random: a weighted type is read as its unweighted counterpart there."""
        c = self.config
        bt = c["batch_type"]
        if mode == "valid" and c.get("valid_batch_type") is not None:
            bt = c["valid_batch_type"]
        if mode == "valid" and bt in WEIGHTED_BATCH_TYPES:
            plain = "length" if bt == "length_weighted" else "sorted"
            logger.info("validation: batch_type %s read as %s (validation uses every clip once)", bt, plain)
            bt = plain
        valid = BATCH_TYPES + (WEIGHTED_BATCH_TYPES if mode == "train" else ())
        if bt not in valid:
            key = "valid_batch_type" if mode == "valid" and c.get("valid_batch_type") is not None else "batch_type"
            raise DataError(f"{key} must be one of {', '.join(BATCH_TYPES + WEIGHTED_BATCH_TYPES)}, got {bt!r}",
                            c.get("config"))
        return bt

    def _weighted_epoch_batches(self, ds: ClsDataset, shapes: list[dict], batch_type: str, bs: int,
                                bins: int) -> EpochBatches:
        """Training batches drawn anew every epoch by ``utt2weight_file`` (``weighted``/``length_weighted``)."""
        c = self.config
        wfile = c.get("utt2weight_file")
        if wfile is None:
            raise DataError(f"batch_type {batch_type} needs utt2weight_file (a 'utt weight' file)", c.get("config"))
        if not Path(wfile).is_file():
            raise DataError("utt2weight_file: no such file", str(wfile))
        table = read_kv(wfile)
        try:
            weights = {k: float(table[k]) for k in ds.keys}
        except KeyError as e:
            raise DataError(f"no weight for training utterance {e.args[0]!r}", str(wfile)) from None
        except ValueError as e:
            raise DataError(f"bad weight: {e}", str(wfile)) from None
        lengths = [{k: (v or [0])[0] for k, v in d.items()} for d in shapes]
        min_bs = max(1, self.info.world_size)

        def make(rng: np.random.RandomState) -> list[list[str]]:
            return weighted_batches(batch_type, weights, rng, bs, bins, lengths, min_batch_size=min_bs,
                                    sort_in_batch=c.get("sort_in_batch", "descending"),
                                    sort_batch=c.get("sort_batch", "ascending"))

        first = make(np.random.RandomState(self.seed))
        return EpochBatches(first, shuffle=True, seed=self.seed, rank=self.info.rank, world_size=self.info.world_size,
                            batch_size=bs, shuffle_within_batch=bool(c.get("shuffle_within_batch")),
                            num_iters_per_epoch=c.get("num_iters_per_epoch"), rebuild=make)

    def _loader(self, ds: ClsDataset, batches: list[list[str]]) -> torch.utils.data.DataLoader:
        """The loader of ``ds`` over ``batches`` (this epoch's).

        With ``num_workers > 0`` there is one loader per dataset for the whole run, its workers
        persistent (``_CurrentBatches`` hands them each epoch's batches): a new loader per epoch
        (ESPnet's way) forks its workers from the grown training process every epoch, and the
        trainer then pays a copy-on-write fault for every heap page it writes while they live
        (the first step of each later epoch took 4-5x a step of epoch 1; docs/benchmarks.md,
        peer section). :meth:`start_loaders` forks them before the first step, while the heap is small.
        """
        nw = int(self.config.get("num_workers") or 0)
        # every loader iterator draws a worker base seed from its generator: a generator of its own,
        # so that the training RNG stream (dropout, SpecAugment, mixup) is the same for any num_workers
        # and after a resume
        gen = torch.Generator().manual_seed(self.seed)
        if nw == 0:
            return torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=0,
                                               pin_memory=self.use_cuda, generator=gen)
        entry = self._loaders.get(id(ds))
        if entry is None:
            sampler = _CurrentBatches()
            loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=nw,
                                                 pin_memory=self.use_cuda, persistent_workers=True, generator=gen)
            self._loaders[id(ds)] = entry = (sampler, loader)
        entry[0].batches = batches
        return entry[1]

    def start_loaders(self) -> None:
        """Fork the persistent loader workers of both datasets now (no batches yet)."""
        if int(self.config.get("num_workers") or 0) > 0:
            for ds in (self.train_ds, self.valid_ds):
                iter(self._loader(ds, []))

    def close_loaders(self) -> None:
        """Stop the persistent loader workers."""
        for _sampler, loader in self._loaders.values():
            it = getattr(loader, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
        self._loaders.clear()

    def setup(self) -> None:
        """Build model, data, optimizer, scheduler; resume if asked."""
        c = self.config
        D.init_distributed(self.info, self.use_cuda, c.get("dist_backend"), c.get("dist_init_method") or "env://")
        if self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.out / "config.yaml") as f:
                f.write(dump_yaml(saved_config(c)))
        set_all_random_seed(self.seed)
        if not self.use_cuda:
            requested = int(c.get("num_threads") or 0)
            threads = cpu_training_threads(requested, self.info.world_size)
            torch.set_num_threads(threads)
            logger.info("CPU training with %d intra-op thread(s)%s", threads,
                        "" if requested > 0 else " (num_threads 0: the cores this process may use)")
        if self.use_cuda:
            torch.backends.cudnn.benchmark = bool(c.get("cudnn_benchmark"))
            torch.backends.cudnn.deterministic = bool(c.get("cudnn_deterministic", True))
        self.model = build_model_from_config(c)
        if c.get("init_param"):
            load_init_param(self.model, list(c["init_param"]), bool(c.get("ignore_init_mismatch")))
        freeze_parameters(self.model, list(c.get("freeze_param") or []))
        self.model.to(self.device)
        # The default inference model valid.acc.best.pth must exist for both types, and
        # valid.mAP.best.pth for multi-label.
        wanted = [["valid", "acc", "max"]]
        if self.model.classification_type == MULTI_LABEL:
            wanted.append(["valid", "mAP", "max"])
        for w in wanted:
            if not any(cr[0] == w[0] and cr[1] == w[1] for cr in self.criteria):
                self.criteria.append(w)
        self.train_ds, self.train_batches = self._data("train")
        self.valid_ds, self.valid_batches = self._data("valid")
        n_batches = len(self.train_batches.epoch(1))
        total_steps = self.max_epoch * max(1, math.ceil(n_batches / self.accum_grad))
        self.optimizer = build_optimizer(self.model, c["optim"], c.get("optim_conf") or {})
        self.scheduler = build_scheduler(self.optimizer, c.get("scheduler"), c.get("scheduler_conf") or {}, total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ema = self._make_ema(c.get("ema_decay"))
        self.history: list[dict] = []
        self.start_epoch = 1
        self.global_step = 0
        ckpt = self.out / "checkpoint.pth"
        if c.get("resume") and ckpt.exists():
            self._load_checkpoint(ckpt)
        if self.info.distributed:
            kw: dict[str, Any] = {"find_unused_parameters": bool(c.get("unused_parameters"))}
            if self.use_cuda:
                kw["device_ids"] = [self.device.index]
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, **kw)
        else:
            self.ddp = self.model
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        logger.info("model: %s, %d parameters (%d trainable); device %s; %d train / %d valid clips; "
                    "%d train batches per epoch", type(self.model).__name__, n_params, n_train, self.device,
                    len(self.train_ds), len(self.valid_ds), n_batches)
        if self.info.is_main and c.get("use_tensorboard"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb_writer = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                logger.info("tensorboard is not installed: no TensorBoard logs")

    def _make_ema(self, decay: Any) -> Optional[torch.optim.swa_utils.AveragedModel]:
        """``ema_decay`` (e.g. 0.99; null: off): an exponential moving average of the weights (and the
        BatchNorm statistics), updated after every optimizer step; validation, the epoch files and so the
        inference models are the averaged weights; the raw ones train on (and resume from checkpoint.pth)."""
        if decay is None:
            return None
        try:
            d = float(decay)
        except (TypeError, ValueError):
            d = -1.0
        if not 0.0 < d < 1.0:
            raise DataError(f"ema_decay must be in (0, 1) or null, got {decay!r}", self.config.get("config"))
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The model validated and saved: the weight average with ``ema_decay``, else the trained one."""
        return self.ema.module if self.ema is not None else self.model

    def _load_checkpoint(self, path: Path) -> None:
        state = safe_load(path, map_location="cpu")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if not state.get("ema"):
                raise DataError("ema_decay is set but the checkpoint to resume from has no weight average", path)
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state.get("history", []))
        self.start_epoch = int(state["epoch"]) + 1
        self.global_step = int(state.get("global_step", 0))
        if state.get("rng"):
            set_rng_state(state["rng"])
        logger.info("resumed from %s at epoch %d", path, self.start_epoch)

    def _save_checkpoint(self, epoch: int) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "history": copy.deepcopy(self.history),
            "epoch": epoch,
            "global_step": self.global_step,
            "rng": get_rng_state(),
        }
        atomic_torch_save(state, self.out / "checkpoint.pth")

    # ------------------------------------------------------------------ one epoch
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _on_step(self) -> None:
        hook = getattr(self.model, "on_train_step", None)
        if not callable(hook):
            hook = getattr(getattr(self.model, "encoder", None), "on_train_step", None)
        if callable(hook):
            hook(self.global_step)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this rank's training batches; returns mean loss/acc over all ranks."""
        self.model.train()
        self._on_step()  # bring step-dependent state (e.g. a frozen encoder) up to date, also after a resume
        batches = self.train_batches.epoch(epoch)
        loader = self._loader(self.train_ds, batches)
        sums: dict[str, float] = {"loss": 0.0, "weight": 0.0, "acc": 0.0, "acc_weight": 0.0, "skipped": 0.0}
        lrs: list[float] = []  # ESPnet's optim0_lr0: the mean over the epoch's iterations of the lr after each step
        it = loader
        if self.tty and self.info.is_main:
            from tqdm import tqdm

            it = tqdm(loader, total=len(batches), desc=f"epoch {epoch} train", leave=False, dynamic_ncols=True)
        log_interval = self.config.get("log_interval") or max(1, len(batches) // 5)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        n = len(batches)
        for i, (_keys, batch) in enumerate(it, 1):
            batch = self._to_device(batch)
            last_of_accum = (i % self.accum_grad == 0) or i == n
            sync = nullcontext() if (last_of_accum or not self.info.distributed) else self.ddp.no_sync()
            with sync:
                with self._autocast():
                    loss, stats, weight = self.ddp(batch["speech"], batch["speech_lengths"], batch["label"],
                                                   batch.get("label_lengths"))
                scaled = loss / self.accum_grad
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            w = float(weight)
            sums["loss"] += float(stats.get("loss", loss.detach())) * w
            sums["weight"] += w
            if stats.get("acc") is not None:
                sums["acc"] += float(stats["acc"]) * w
                sums["acc_weight"] += w
            if last_of_accum:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if self.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip,
                                                          norm_type=float(self.config.get("grad_clip_type") or 2.0))
                else:
                    norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                elif torch.isfinite(norm):
                    self.optimizer.step()
                else:
                    sums["skipped"] += 1
                    logger.warning("non-finite gradient norm at step %d: update skipped", self.global_step + 1)
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                self.scheduler.step_batch()
                self._on_step()
            lrs.append(current_lrs(self.optimizer)[0])
            if not self.tty and self.info.is_main and i % log_interval == 0 and i < n:
                # ESPnet's per-interval line: "{epoch}epoch:train:{a}-{b}batch: loss=..., ..." (here the
                # running means of the epoch so far; ESPnet's are of the interval)
                fields = [f"loss={espnet_value(sums['loss'] / max(sums['weight'], 1e-12))}"]
                if sums["acc_weight"] > 0:
                    fields.append(f"acc={espnet_value(sums['acc'] / sums['acc_weight'])}")
                fields.append(f"optim0_lr0={espnet_value(current_lrs(self.optimizer)[0])}")
                logger.info("%depoch:train:%d-%dbatch: %s", epoch, i - log_interval + 1, i, ", ".join(fields))
        tot = D.all_reduce_sum(sums, self.device)
        out = {"loss": tot["loss"] / max(tot["weight"], 1e-12)}
        if tot["acc_weight"] > 0:
            out["acc"] = tot["acc"] / tot["acc_weight"]
        if tot["skipped"]:
            out["skipped_steps"] = int(tot["skipped"])
        if lrs:  # a constant lr stays exact (no rounding from the mean)
            self._epoch_lr = lrs[0] if min(lrs) == max(lrs) else math.fsum(lrs) / len(lrs)
        return out

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """Loss and metrics over the WHOLE validation set (scores gathered from every rank)."""
        from espnet_cls.metrics import compute_metrics

        model = self.eval_model
        model.eval()
        batches = self.valid_batches.epoch(epoch)
        loader = self._loader(self.valid_ds, batches)
        scores, targets = [], []
        loss_sum, weight_sum = 0.0, 0.0
        n_classes = int(model.n_classes)
        ctype = model.classification_type
        for _keys, batch in loader:
            batch = self._to_device(batch)
            with self._autocast():
                loss, _stats, weight, logits, _t = model.forward_with_logits(
                    batch["speech"], batch["speech_lengths"], batch["label"], batch.get("label_lengths"))
            probs = model.logits_to_proba(logits.float())
            scores.append(probs.cpu().numpy().astype(np.float64))
            lab = batch["label"].cpu().numpy()
            t = np.zeros((lab.shape[0], n_classes), dtype=bool)
            for r, row in enumerate(lab):
                ids = row[(row >= 0) & (row < n_classes)]
                t[r, ids] = True
            targets.append(t)
            loss_sum += float(loss) * float(weight)
            weight_sum += float(weight)
        part = (np.concatenate(scores) if scores else np.zeros((0, n_classes)),
                np.concatenate(targets) if targets else np.zeros((0, n_classes), dtype=bool), loss_sum, weight_sum)
        parts = D.all_gather_objects(part)
        s = np.concatenate([p[0] for p in parts])
        t = np.concatenate([p[1] for p in parts])
        loss_total = sum(p[2] for p in parts)
        w_total = sum(p[3] for p in parts)
        out: dict[str, float] = {"loss": loss_total / max(w_total, 1e-12)}
        if ctype == MULTI_CLASS:
            keep = t.any(axis=1)  # clips whose label is <unk>/<blank> have no class to score
            m = compute_metrics(t[keep], s[keep], classification_type=ctype)
            out.update(acc=m["acc"], macro_f1=m["macro_f1"], mAP=m["mAP"])
        else:
            m = compute_metrics(t, s, classification_type=ctype)
            out.update(acc=m["acc"], mAP=m["mAP"], micro_f1=m["micro_f1"], macro_f1=m["macro_f1"])
        # ESPnet's valid/epoch_mAP (log_epoch_metrics + its mAP callback): macro AP over the whole
        # validation set at the end of the epoch, which is what our mAP already is.
        out["epoch_mAP"] = out["mAP"]
        return {k: float(v) for k, v in out.items()}

    # ------------------------------------------------------------------ epochs
    def _epoch_line(self, e: dict) -> str:
        """ESPnet's ``Nepoch results: [train] k=v, ..., [valid] k=v, ...`` line."""
        return epoch_results_line(e)

    def _maybe_plot(self, final: bool) -> None:
        """Curves after an epoch, throttled so that plotting takes under ~10 % of the run
        (each plot waits 10× its own duration); always after the last epoch."""
        if not self.config.get("use_matplotlib", True):
            return
        now = time.perf_counter()
        if not final and now < self._next_plot:
            self._plot_pending = True
            return
        if final and not self._plot_pending and self._next_plot > 0:
            return
        plot_curves(self.out, self.history)
        self._plot_pending = False
        self._next_plot = time.perf_counter() + 10 * (time.perf_counter() - now)

    def _early_stop(self) -> bool:
        patience = self.config.get("patience")
        if patience is None or not self.history:
            return False
        crit = self.config.get("early_stopping_criterion") or ["valid", "loss", "min"]
        phase, metric, mode = crit[0], crit[1], crit[2] if len(crit) > 2 else "min"
        order = sorted_epochs(self.history, phase, metric, mode)
        if not order:
            return False
        best, last = order[0], self.history[-1]["epoch"]
        if last - best > int(patience):  # ESPnet's Reporter.check_early_stopping: strictly more than patience
            logger.info("early stopping: %s.%s has not improved for %d epoch(s) (best epoch %d)", phase, metric,
                        last - best, best)
            return True
        return False

    def run(self) -> None:
        """Train from ``start_epoch`` to ``max_epoch`` (or early stop), then average."""
        c = self.config
        stopped = self.start_epoch > self.max_epoch or self._early_stop()
        epoch = self.start_epoch
        while not stopped and epoch <= self.max_epoch:
            set_all_random_seed(self.seed + epoch + 1000 * self.info.rank)
            t0 = time.perf_counter()
            self._epoch_lr = current_lrs(self.optimizer)[0]  # an epoch with no batch keeps the current lr
            train_stats = self.train_epoch(epoch)
            lr = self._epoch_lr
            t1 = time.perf_counter()
            valid_stats = self.validate(epoch)
            t2 = time.perf_counter()
            self.scheduler.step_epoch()
            prev = self.history[-1].get("counts", {}) if self.history else {}
            counts = {"train": int(prev.get("train", 0)) + len(self.train_batches.epoch(epoch)),
                      "valid": int(prev.get("valid", 0)) + len(self.valid_batches.epoch(epoch))}
            entry = {"epoch": epoch, "train": train_stats, "valid": valid_stats, "lr": lr,
                     "time": time.perf_counter() - t0, "phase_time": {"train": t1 - t0, "valid": t2 - t1},
                     "counts": counts}
            self.history.append(entry)
            if self.info.is_main:
                atomic_torch_save(self.eval_model.state_dict(), self.out / epoch_file(epoch))
                link_or_copy(epoch_file(epoch), self.out / "latest.pth")  # ESPnet's latest.pth -> {N}epoch.pth
                update_best_links(self.out, self.history, self.criteria)
                remove_stale_epochs(self.out, self.history, self.criteria, c.get("keep_nbest_models", 10), epoch)
                self._save_checkpoint(epoch)
                write_history(self.out, self.history)
                self._maybe_plot(final=False)
                if self.tb_writer is not None:
                    for phase in ("train", "valid"):
                        for k, v in entry[phase].items():
                            self.tb_writer.add_scalar(f"{phase}/{k}", v, epoch)
                    self.tb_writer.add_scalar("lr", lr, epoch)
                    self.tb_writer.flush()
                logger.info("%s", self._epoch_line(entry))
                for phase, metric, mode in self.criteria:
                    order = sorted_epochs(self.history, phase, metric, mode)
                    if order and order[0] == epoch:
                        logger.info("best %s.%s so far: %.4f", phase, metric, metric_value(entry, phase, metric))
            D.barrier()
            stopped = self._early_stop()
            epoch += 1
        if self.info.is_main:
            if not self.history:
                raise DataError("no epoch was trained (max_epoch < 1?)")
            self._maybe_plot(final=True)
            update_best_links(self.out, self.history, self.criteria)
            average_nbest(self.out, self.history, self.criteria, c.get("keep_nbest_models", 10))
            write_history(self.out, self.history)
            by_epoch = {e["epoch"]: e for e in self.history}
            for phase, metric, mode in self.criteria:
                order = sorted_epochs(self.history, phase, metric, mode)
                if order:
                    logger.info("best epoch for %s.%s (%s): %d, %.4f", phase, metric, mode, order[0],
                                metric_value(by_epoch[order[0]], phase, metric))
        if self.tb_writer is not None:
            self.tb_writer.close()
        D.barrier()


def lightning_criteria(config: dict) -> list[list[str]]:
    """``lightning_conf.best_model_criterion`` (``[[valid/epoch_mAP, max, 1]]``, ESPnet's Lightning
    path) as ``[phase, metric, mode]`` criteria, so the files ESPnet's Lightning run writes
    (``valid.epoch_mAP.ave_1best.pth``) are written here too."""
    lc = config.get("lightning_conf") or {}
    out = []
    for crit in (lc.get("best_model_criterion") or []) if isinstance(lc, dict) else []:
        if not isinstance(crit, (list, tuple)) or len(crit) < 2 or "/" not in str(crit[0]) \
                or crit[1] not in ("max", "min"):
            raise DataError(f"lightning_conf.best_model_criterion: expected [phase/metric, max|min, n], got {crit!r}",
                            config.get("config"))
        phase, metric = str(crit[0]).split("/", 1)
        out.append([phase, metric, crit[1]])
    return out


#: Metrics each phase's history holds (what best_model_criterion etc. may name).
TRAIN_METRICS = ("loss", "acc")
VALID_METRICS = {MULTI_CLASS: ("loss", "acc", "macro_f1", "mAP", "epoch_mAP"),
                 MULTI_LABEL: ("loss", "acc", "mAP", "micro_f1", "macro_f1", "epoch_mAP")}


def check_criteria(config: dict, classification_type: str) -> None:
    """Warn for a best_model_criterion / early_stopping_criterion naming a metric no epoch will have
    (ESPnet skips such a criterion; the warning says so instead of staying silent)."""
    crits = [("best_model_criterion", list(c)) for c in (config.get("best_model_criterion") or [])]
    if config.get("patience") is not None and config.get("early_stopping_criterion"):
        crits.append(("early_stopping_criterion", list(config["early_stopping_criterion"])))
    for key, (phase, metric, *_rest) in crits:
        have = TRAIN_METRICS if phase == "train" else VALID_METRICS.get(classification_type, ())
        if phase not in ("train", "valid") or metric not in have:
            logger.warning("%s [%s, %s]: no such metric (%s has %s); it picks no model", key, phase, metric,
                           phase, ", ".join(have))


def dry_run(config: dict) -> None:
    """ESPnet's ``--dry_run true``: build the model, optimizer and scheduler, write
    ``config.yaml``, and exit without reading data or training."""
    if config.get("output_dir") is None:
        raise DataError("--output_dir is required")
    out = Path(config["output_dir"])
    model = build_model_from_config(config)
    if config.get("init_param"):
        load_init_param(model, list(config["init_param"]), bool(config.get("ignore_init_mismatch")))
    freeze_parameters(model, list(config.get("freeze_param") or []))
    optimizer = build_optimizer(model, config["optim"], config.get("optim_conf") or {})
    scheduler = build_scheduler(optimizer, config.get("scheduler"), config.get("scheduler_conf") or {},
                                max(1, int(config.get("max_epoch") or 1)))
    check_criteria(config, getattr(model, "classification_type", ""))
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "config.yaml") as f:
        f.write(dump_yaml(saved_config(config)))
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("dry run: built %s (%d parameters), optimizer %s, scheduler %s; wrote %s; no training",
                type(model).__name__, n_params, type(optimizer).__name__, type(scheduler).__name__,
                out / "config.yaml")


def train(config: dict) -> None:
    """Train with a resolved config (entry point of ``cls_train`` without ``--collect_stats``).
    With ``dry_run: true``, only :func:`dry_run`."""
    if config.get("dry_run"):
        dry_run(config)
        return
    trainer = Trainer(config)
    threads = torch.get_num_threads()  # setup() sets the CPU training threads; the caller's come back after
    try:
        trainer.setup()
        check_criteria(config, getattr(trainer.model, "classification_type", ""))
        trainer.start_loaders()
        trainer.run()
    finally:
        trainer.close_loaders()
        D.cleanup()
        torch.set_num_threads(threads)
