"""Export a trained model (packed .zip, model folder or Hub repo id) to ONNX or TorchScript.

    python -m espnet_cls.bin.export exp/cls_X/cls_X_valid.acc.best.zip --format onnx --output model.onnx

The graph takes the waveform (``speech [B, T]`` float32 at the model's rate,
``speech_lengths [B]`` int64) and returns ``probs`` and ``logits`` ``[B, n_classes]``;
see :mod:`espnet_cls.export`. After writing, the file is run against PyTorch on clips
of several lengths (``--check true``) and the largest difference is logged.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="packed model .zip, model folder, or Hugging Face repo id user/name")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    p.add_argument("--output", type=str_or_none, default=None, help="file to write (default: beside the model, .onnx/.pt)")
    p.add_argument("--model_file", type=str_or_none, default=None, help="weights file inside an experiment dir")
    p.add_argument("--check", type=str2bool, default=True, help="compare the exported file with PyTorch (tolerance 1e-4)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--exporter", default="auto", choices=["auto", "torchscript", "dynamo"],
                   help="ONNX: auto = the TorchScript-based exporter (~1 s), checked, then torch.export's "
                        "(dynamo, tens of seconds) if it fails or differs from PyTorch")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, export, print the output path; returns the exit status."""
    from espnet_cls.export import export

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    for noisy in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    info = export(args.model, args.format, args.output, model_file=args.model_file, check=args.check, opset=args.opset,
                  exporter=args.exporter)
    logging.getLogger(__name__).info("exported %s", info["output"])
    print(info["output"])
    return 0


if __name__ == "__main__":
    run_main(main)
