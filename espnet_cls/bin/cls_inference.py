"""Classify the clips of a data dir in length-sorted batches (stage 7); ESPnet's options.

    python -m espnet_cls.bin.cls_inference --ngpu 0 \\
        --data_path_and_name_and_type dump/test/wav.scp,speech,sound \\
        --key_file exp/cls_X/cls_test/logdir/keys.1.scp \\
        --classification_train_config exp/cls_X/config.yaml \\
        --classification_model_file exp/cls_X/valid.acc.best.pth \\
        --output_dir exp/cls_X/cls_test/logdir/output.1 --output_all_probabilities true

Writes OUTPUT_DIR/prediction/{text,score,token}. ``--model_file x.zip`` loads a packed
model (stage 9) instead of config + weights. Multi-label decisions use ``--threshold`` or
per-class ``--threshold_file`` (``class threshold`` lines, e.g. from
``score_cls.py --tune_thresholds``). ``--window_sec`` scores long clips in windows.

Backends (CPU): ``jit`` (default: the traced, frozen PyTorch model), ``eager`` (the PyTorch modules)
and ``onnx``: ONNX Runtime on the model's export, cached beside the checkpoint (``X.pth`` ->
``X.onnx`` + ``X.onnx.stamp``, see :mod:`espnet_cls.onnx_inference`); that job never imports torch
(stage 7's CPU default in ``cls.sh``, which makes the export at the end of stage 6 and checks it once
before stage 7's parallel jobs, with ``--prepare_only true``). Without a fresh export the job exports
first (imports torch). What the onnx backend cannot do runs the ``jit`` path, with one log line: a GPU
(``--ngpu > 0``), ``--dtype`` other than float32, a model whose export fails or differs from PyTorch
by more than 1e-5 (see :mod:`espnet_cls.export` for BEATs).
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.fileio import DataError
from espnet_cls.inference_core import DEFAULT_BATCH_SIZE, DTYPE_NAMES

# torch is imported only by the PyTorch backends (the onnx job must not pay for it)
logger = logging.getLogger("espnet_cls.bin.cls_inference")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", default=None, help="writes OUTPUT_DIR/prediction/{text,score,token} (required)")
    p.add_argument("--data_path_and_name_and_type", action="append", default=None,
                   help="e.g. dump/x/wav.scp,speech,sound (required)")
    p.add_argument("--key_file", type=str_or_none, default=None, help="score only these keys (first column)")
    p.add_argument("--allow_variable_data_keys", type=str2bool, default=False, help="accepted for ESPnet compatibility")
    p.add_argument("--classification_train_config", type=str_or_none, default=None, help="exp/cls_X/config.yaml")
    p.add_argument("--classification_model_file", type=str_or_none, default=None, help="weights: .pth or .safetensors")
    p.add_argument("--model_file", type=str_or_none, default=None, help="a packed model .zip (instead of config + weights)")
    p.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: the first GPU")
    p.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="model precision")
    p.add_argument("--num_workers", type=int, default=1, help="threads decoding audio ahead of the model (0: none)")
    p.add_argument("--batch_size", type=int, default=None,
                   help="clips per forward pass (length-sorted batches; on CPU small batches are fastest: "
                        "little padding, activations stay in cache; see docs/benchmarks.md); default: "
                        + ", ".join(f"{v} for {k}" for k, v in DEFAULT_BATCH_SIZE.items()))
    p.add_argument("--backend", default="jit", choices=["jit", "eager", "onnx"],
                   help="jit: CPU inference through the traced, frozen model (same scores, less CPU); eager: "
                        "the PyTorch modules (always used on GPU, for non-float32 dtypes and untraceable models); "
                        "onnx: ONNX Runtime on the model's cached export, no torch in the job (CPU, float32; "
                        "else jit, logged)")
    p.add_argument("--prepare_only", type=str2bool, default=False,
                   help="with --backend onnx: only make sure the export cached beside the model is fresh "
                        "(stage 7 runs this once before its parallel jobs); scores nothing")
    p.add_argument("--batch_bins", type=int, default=0,
                   help="if > 0: at most this many padded samples per batch (long clips: smaller batches)")
    p.add_argument("--output_all_probabilities", type=str2bool, default=False,
                   help="score: every class's probability (true) or only the predicted classes' (false; ESPnet's default)")
    p.add_argument("--threshold", type=float, default=0.5, help="multi-label: predict classes with p >= threshold")
    p.add_argument("--threshold_file", type=str_or_none, default=None, help="multi-label: per-class thresholds file")
    p.add_argument("--window_sec", type=float, default=None, help="score clips longer than this in windows")
    p.add_argument("--hop_sec", type=float, default=None, help="window hop (default: window_sec)")
    p.add_argument("--window_aggregation", default="mean", choices=["mean", "max"], help="combine window probabilities")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_threads", type=int, default=None,
                   help="CPU threads (default: torch's for jit/eager, 1 for onnx: the jobs run in parallel)")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def onnx_model_for(args: argparse.Namespace) -> Optional[str]:
    """The fresh ONNX export to score with, or None (PyTorch runs: logged once, with the reason).

    Exports first when the cache is missing or stale (imports torch); a cached failure is not retried.
    """
    if args.backend != "onnx":
        return None
    if args.ngpu > 0:
        logger.info("--backend onnx runs on the CPU only: --ngpu %d uses the PyTorch model", args.ngpu)
        return None
    if args.dtype != "float32":
        logger.info("--backend onnx runs float32 only: --dtype %s uses the PyTorch model", args.dtype)
        return None
    if args.model_file is None and args.classification_model_file is None:
        logger.info("--backend onnx needs a weights file (--classification_model_file or --model_file): using the jit backend")
        return None
    from espnet_cls.onnx_inference import cache_state, ensure_onnx

    state, path, detail = cache_state(args.classification_train_config, args.classification_model_file, args.model_file)
    if state == "fresh":
        return str(path)
    if state != "failed":
        logger.info("no fresh ONNX export at %s (%s): exporting it now", path, detail)
        got, detail = ensure_onnx(args.classification_train_config, args.classification_model_file, args.model_file)
        if got is not None:
            return str(got)
    logger.info("--backend onnx: the model does not export to ONNX (%s): using the jit backend", detail)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.model_file is None and args.classification_train_config is None:
        raise DataError("need --classification_train_config and --classification_model_file, or --model_file PACKED.zip")
    if args.batch_size is not None and args.batch_size < 1:
        raise DataError(f"--batch_size must be >= 1, got {args.batch_size}")
    if not args.prepare_only:
        for opt in ("output_dir", "data_path_and_name_and_type"):
            if getattr(args, opt) is None:
                get_parser().error(f"the following arguments are required: --{opt}")
    onnx_model = onnx_model_for(args)
    if args.prepare_only:
        return 0
    backend = "onnx" if onnx_model is not None else ("eager" if args.ngpu > 0 else args.backend)
    common = dict(
        key_file=args.key_file,
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE[backend],
        batch_bins=args.batch_bins,
        threshold=args.threshold,
        threshold_file=args.threshold_file,
        window_sec=args.window_sec,
        hop_sec=args.hop_sec,
        window_aggregation=args.window_aggregation,
        output_all_probabilities=args.output_all_probabilities,
        num_workers=args.num_workers,
    )
    if onnx_model is not None:
        from espnet_cls.onnx_inference import run_onnx_inference

        run_onnx_inference(args.data_path_and_name_and_type, args.output_dir, onnx_model,
                           num_threads=args.num_threads or 1, train_config=args.classification_train_config,
                           model_file=args.classification_model_file, packed_model=args.model_file, **common)
        return 0

    import torch

    from espnet_cls.inference import run_inference

    torch.manual_seed(args.seed)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if args.ngpu > 1:
        logging.warning("--ngpu %d: inference uses one device; running on cuda:0", args.ngpu)
    if args.ngpu > 0 and not torch.cuda.is_available():
        raise DataError(f"--ngpu {args.ngpu} but no CUDA device is available")
    device = "cuda:0" if args.ngpu > 0 else "cpu"
    run_inference(
        args.data_path_and_name_and_type,
        args.output_dir,
        train_config=args.classification_train_config,
        model_file=args.classification_model_file,
        packed_model=args.model_file,
        device=device,
        dtype=args.dtype,
        backend="jit" if args.backend == "onnx" else args.backend,
        **common,
    )
    return 0


if __name__ == "__main__":
    run_main(main)
