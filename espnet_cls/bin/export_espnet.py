"""Write one of our models in ESPnet's cls1 exp-dir layout (``espnet2.bin.cls_inference`` loads it).

    python -m espnet_cls.bin.export_espnet exp/cls_X/cls_X_valid.acc.best.zip --output_dir exp/cls_X_espnet
    # then, with ESPnet:
    python -m espnet2.bin.cls_inference --classification_train_config exp/cls_X_espnet/config.yaml \\
        --classification_model_file exp/cls_X_espnet/valid.acc.best.pth ...

Writes ``config.yaml`` (ESPnet's keys, token list embedded), ``valid.acc.best.pth`` (ESPnet's
weight names) and ``feats_stats.npz`` for ``global_mvn``. Encoders both sides have:
``transformer``, ``conformer``, ``beats``. Where our model computes something ESPnet cannot
express exactly (zero-padded STFT, LayerNorm eps) the export is the nearest ESPnet model and a
warning says so; models loaded from ESPnet export back exactly.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str_or_none


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="packed model .zip, model folder (exp dir), or Hugging Face repo id user/name")
    p.add_argument("--output_dir", required=True, help="ESPnet exp dir to write")
    p.add_argument("--model_file", type=str_or_none, default=None, help="weights file inside an experiment dir")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, export, print the output dir; returns the exit status."""
    from espnet_cls import Classifier
    from espnet_cls.espnet.export import export_espnet

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    clf = Classifier.from_pretrained(args.model, model_file=args.model_file)
    info = export_espnet(clf.model, clf.config, args.output_dir)
    logging.getLogger(__name__).info("wrote %s and %s", info["config"], info["model_file"])
    print(args.output_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
