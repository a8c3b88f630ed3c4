"""Classify audio files with a trained model (a packed .zip, a model folder or a Hub repo id).

    python -m espnet_cls.bin.classify exp/cls_X/cls_X_valid.acc.best.zip a.wav b.flac --top_k 3
    espnet-cls-classify user/name a.wav --json

Plain output: one line per file, ``path<TAB>label:prob label:prob …`` (best first), after
the decided labels in brackets. ``--json`` prints one JSON object per line:
``{"file": …, "labels": […], "scores": {label: prob, …}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str_or_none


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="packed model .zip, model folder, or Hugging Face repo id user/name")
    p.add_argument("audio", nargs="+", help="audio files (any rate/channels libsndfile reads) or wav.scp-style pipes")
    p.add_argument("--top_k", type=int, default=5, help="classes shown per file (0: all)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--threshold", type=float, default=0.5, help="multi-label decision threshold")
    p.add_argument("--model_file", type=str_or_none, default=None, help="weights file inside an experiment dir")
    p.add_argument("--device", default="cpu")
    p.add_argument("--log_level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), classify, print; returns the exit status."""
    from espnet_cls.classifier import Classifier

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    top_k = None if args.top_k <= 0 else args.top_k
    clf = Classifier.from_pretrained(args.model, device=args.device, model_file=args.model_file, threshold=args.threshold)
    preds = clf.predict_files(args.audio, batch_size=args.batch_size, top_k=top_k)
    for path, pred in zip(args.audio, preds):
        if args.json:
            print(json.dumps({"file": path, **pred.to_dict()}))
        else:
            shown = " ".join(f"{lab}:{p:.4f}" for lab, p in pred.scores)
            print(f"{path}\t[{' '.join(pred.labels)}]\t{shown}")
    sys.stdout.flush()
    return 0


def console_main() -> None:
    """The ``espnet-cls-classify`` console script: :func:`main` through ``run_main`` (one ERROR line, exit 1)."""
    run_main(main)


if __name__ == "__main__":
    run_main(main)
