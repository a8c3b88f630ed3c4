"""Train an audio classifier, or collect its statistics (ESPnet's ``cls_train``).

Training (stage 6)::

    python -m espnet_cls.bin.cls_train --config conf/train_cnn.yaml --output_dir exp/cls_x \
        --train_data_path_and_name_and_type dump/train/wav.scp,speech,sound \
        --train_data_path_and_name_and_type dump/train/text,label,text \
        --valid_data_path_and_name_and_type ... --train_shape_file exp/cls_stats_16k/train/speech_shape \
        --token_list data/token_list [--resume true] [--key value ...]

Statistics (stage 5): the same with ``--collect_stats true`` and the shape files listing
the job's keys. Every yaml key can be overridden with ``--key value``; ``--print_config``
prints the resolved config; ``--dry_run true`` builds the model, optimizer and scheduler,
writes ``config.yaml`` and exits (ESPnet's meaning).
"""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging
from espnet_cls.config import build_parser, dump_yaml, resolve_config, saved_config


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line, then train or collect statistics. Returns the exit status."""
    config = resolve_config(argv, build_parser())
    if config.get("print_config"):
        sys.stdout.write(dump_yaml(saved_config(config)))
        return 0
    setup_logging(str(config.get("log_level") or "INFO"))
    log = logging.getLogger("espnet_cls")
    if config.get("use_preprocessor") is False:
        log.info("use_preprocessor false is accepted and ignored (labels are always mapped to ids)")
    if config.get("token_type") not in (None, "word"):
        log.warning("token_type %r: only word is supported; using word", config.get("token_type"))
    if config.get("lightning_conf"):
        log.info("lightning_conf: only its best_model_criterion is read (as extra criteria); our trainer "
                 "does both classification types without Lightning")
    if int(config.get("num_att_plot") or 0) > 0:
        log.warning("num_att_plot %s: no attention plots are written (our encoders do not return attention maps)",
                    config.get("num_att_plot"))
    if config.get("use_wandb"):
        log.warning("use_wandb: true is not supported: no Weights & Biases logging (TensorBoard and images/ are)")
    if config.get("dry_run"):  # ESPnet: build model, optimizer, scheduler; write config.yaml; no stats, no training
        from espnet_cls.train.trainer import dry_run

        dry_run(config)
        return 0
    import torch

    if config.get("collect_stats"):
        from espnet_cls.train.stats import collect_stats

        torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
        collect_stats(config)
        return 0
    from espnet_cls.train.trainer import train

    train(config)
    return 0


if __name__ == "__main__":
    run_main(main)
