"""Stage 4: write the class list (token_list) from the training text; check other texts against it.

    python -m espnet_cls.bin.make_token_list --input dump/train/text --output data/token_list \\
        [--check dump/valid/text dump/test/text ...] [--strict false]

First the label check (espnet_cls.tokens.check_labels; the classification type comes from
``--classification_type`` or the ``--cls_config``): two labels on a multi-class line,
``<blank>``/``<unk>`` as a multi-class label, a non-UTF-8 byte ... are errors naming
file:line; labels differing only in case are a warning. Then one class per line, most frequent first (ties: first occurrence; as ESPnet's
``tokenize_text --write_vocabulary``), then ``<blank>`` and ``<unk>``. A label of a
``--check`` file that is not a class is reported per file and label with its count
(a warning; ``--strict true`` makes it an error). See espnet_cls.tokens.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none
from espnet_cls.fileio import DataError
from espnet_cls.tokens import check_labels, make_token_list, unknown_labels, write_token_list


def get_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description="Build the class list from a Kaldi text file (classes by frequency, then <blank>, <unk>).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input", required=True, help="training text: 'utt label [label ...]'")
    p.add_argument("--output", required=True, help="token list to write")
    p.add_argument("--check", nargs="*", default=[], help="other text files whose labels must be classes")
    p.add_argument("--strict", type=str2bool, default=False, help="unknown labels in --check files are an error")
    p.add_argument(
        "--classification_type",
        type=str_or_none,
        default=None,
        help="multi-class or multi-label (default: the --cls_config's model_conf.classification_type, else multi-class)",
    )
    p.add_argument("--cls_config", type=str_or_none, default=None, help="training yaml the classification type is read from")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the token list; 1 (DataError) for an unreadable input or, with --strict, unknown labels."""
    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    log = logging.getLogger("espnet_cls")
    ctype = args.classification_type
    if ctype is None:
        from espnet_cls.contract import DEFAULT_CLASSIFICATION_TYPE, read_model_facts

        ctype = read_model_facts(args.cls_config).classification_type if args.cls_config else DEFAULT_CLASSIFICATION_TYPE
    # the one label check (file:line), on the training text and every text checked against it
    check_labels(args.input, ctype, training=True)
    for path in args.check:
        check_labels(path, ctype, training=False)
    tokens = make_token_list(args.input)
    problems = []
    for path in args.check:
        unk = unknown_labels(tokens, path)
        if unk:
            listing = ", ".join(f"{w} ({n})" for w, n in sorted(unk.items(), key=lambda kv: (-kv[1], kv[0])))
            msg = f"{sum(unk.values())} label(s) of {len(unk)} kind(s) not in {args.input}'s classes: {listing}"
            problems.append((path, msg))
            if not args.strict:
                log.warning("%s: %s", path, msg)
    if problems and args.strict:
        for path, msg in problems[:-1]:
            log.error("%s: %s (--strict true)", path, msg)
        raise DataError(problems[-1][1] + " (--strict true)", problems[-1][0])
    write_token_list(tokens, args.output)
    log.info("Wrote %s: %d classes + <blank>, <unk>", args.output, len(tokens) - 2)
    return 0


if __name__ == "__main__":
    run_main(main)
