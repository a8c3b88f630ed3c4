"""Score a set's predictions (stage 8): mAP, accuracy, AUC, d', F1 -> metrics + metrics.json.

Usage (ESPnet's ``cls_score.py`` options, plus ours)::

    python -m espnet_cls.bin.score_cls -gtxt dump/test/text -ptxt exp/cls_X/cls_test/text \\
        -pscore exp/cls_X/cls_test/score -tok data/token_list -o exp/cls_X/cls_test/scoring

Without ``-o`` the markdown table goes to stdout (ESPnet's ``> scoring/metrics``).
``--tune_thresholds FILE`` also writes per-class F1-maximising thresholds found on these
inputs (run it on the validation set; pass FILE as ``--threshold_file`` to inference or to
the scoring of test sets). See :mod:`espnet_cls.scoring` for the rules.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from espnet_cls import metrics as M
from espnet_cls import scoring
from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-gtxt", "--gt_text_file", required=True, help="reference text: uttid label [label ...] | <blank>")
    p.add_argument("-ptxt", "--pred_text_file", required=True, help="inference text: uttid [label ...]")
    p.add_argument("-pscore", "--pred_score_file", required=True, help="inference score: uttid p_1 ... p_n")
    p.add_argument("-tok", "--token_list", required=True, help="token list (classes, then <blank>, <unk>)")
    p.add_argument("-o", "--output_dir", type=str_or_none, default=None, help="write metrics and metrics.json here")
    p.add_argument(
        "--classification_type",
        type=str_or_none,
        choices=[*M.CLASSIFICATION_TYPES, None],
        metavar="{multi-class,multi-label}",
        default=None,
        help="default: multi-label if any line has != 1 label or <blank>, else multi-class",
    )
    p.add_argument(
        "--classification_train_config",
        type=str_or_none,
        default=None,
        help="exp/cls_X/config.yaml: take classification_type from its model_conf (unless given)",
    )
    p.add_argument("--split_name", type=str_or_none, default=None, help="default: the score file's directory name")
    p.add_argument("--strict", type=str2bool, default=False, help="a reference label not in the token list is fatal")
    p.add_argument(
        "--espnet_compat",
        type=str2bool,
        default=False,
        help="ESPnet's numbers: classes without positives count as AP/AUC 0, acc = argmax(ref) vs argmax(score)",
    )
    p.add_argument("--threshold", type=float, default=None, help="multi-label: recompute decisions as score >= this")
    p.add_argument("--threshold_file", type=str_or_none, default=None, help="multi-label: per-class thresholds file")
    p.add_argument(
        "--tune_thresholds",
        type=str_or_none,
        default=None,
        metavar="FILE",
        help="multi-label: write per-class F1-maximising thresholds found on these inputs to FILE",
    )
    p.add_argument("--print_per_class", type=str2bool, default=False, help="also print the per-class table")
    p.add_argument("--log_level", default="INFO")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    log = logging.getLogger("score_cls")
    ctype = args.classification_type
    if ctype is None and args.classification_train_config:
        ctype = scoring.classification_type_of_config(args.classification_train_config)
    inputs = scoring.load_scoring_inputs(
        args.gt_text_file,
        args.pred_text_file,
        args.pred_score_file,
        args.token_list,
        classification_type=ctype,
        strict=args.strict,
    )
    thresholds = None
    if args.threshold_file:
        thresholds = scoring.read_threshold_file(
            args.threshold_file, inputs.class_names, 0.5 if args.threshold is None else args.threshold
        )
    if args.tune_thresholds:
        if inputs.classification_type != M.MULTI_LABEL:
            log.error("--tune_thresholds is for multi-label models (a multi-class model predicts the argmax)")
            return 1
        if inputs.y_score is None:
            log.error("--tune_thresholds needs every class's score (output_all_probabilities=true)")
            return 1
        tuned = M.tune_thresholds(inputs.y_true, inputs.y_score, default=0.5 if args.threshold is None else args.threshold)
        scoring.write_threshold_file(args.tune_thresholds, inputs.class_names, tuned)
        log.info("Wrote per-class thresholds (max F1 on %s) to %s", args.gt_text_file, args.tune_thresholds)
    split = args.split_name or scoring.split_name_from_path(args.pred_score_file)
    report = scoring.score(inputs, split, threshold=args.threshold, thresholds=thresholds, espnet_compat=args.espnet_compat)
    m = report
    log.info(
        "%s (%s, %d clips, %d classes, %d left out of the mAP mean): acc=%s mAP=%s",
        split,
        report["classification_type"],
        m["n_instances"],
        m["n_classes"],
        m["n_classes_left_out"],
        scoring._fmt("acc", m["acc"]),
        scoring._fmt("mAP", m["mAP"]),
    )
    if args.output_dir:
        scoring.write_report(report, args.output_dir)
        log.info("Wrote %s/metrics and %s/metrics.json", args.output_dir, args.output_dir)
    else:
        sys.stdout.write(scoring.format_markdown(report))
    if args.print_per_class:
        sys.stdout.write("\n" + scoring.format_per_class_markdown(report))
    return 0


if __name__ == "__main__":
    run_main(main)
