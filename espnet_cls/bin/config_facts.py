"""Print the facts cls.sh needs from a training config, as shell-safe ``key=value`` lines.

    python -m espnet_cls.bin.config_facts --config conf/train_cnn.yaml --cls_args "--max_epoch 3" \\
        --feats_normalize uttmvn --stats_file exp/cls_stats_16k/train/feats_stats.npz --fs 16k

cls.sh calls this once instead of reading the yaml itself, so the decisions below are made in
one place (:func:`espnet_cls.contract.recipe_facts`) and cls.sh only passes their results on. The
config's keys that decide them (frontend, normalize, model_conf, input_size and their ``_conf``) are
resolved as ``cls_train`` resolves them (defaults <- yaml <- ``--cls_args``), so a
``--cls_args "--frontend none"`` counts; no model code (torch) is imported. Printed keys:

``frontend``            the resolved frontend name (``none`` when the encoder owns its features)
``frontend_opts``       ``--frontend_conf fs=<fs>`` (empty with ``frontend: none``)
``normalize``           the normalization training will use (``global_mvn``, ``utterance_mvn``, ``none``)
``normalize_opts``      what stage 6 adds for it (see below)
``classification_type`` the model's type (``multi-class`` or ``multi-label``)
``model_opts``          ``--model_conf classification_type=<type>`` when ``--classification_type`` is given
``speech_type``         the loader type of the dumped audio: ``sound``, or ``kaldi_ark`` for ``*.ark`` formats
``info``                one line for the log, or empty

The normalization rule is ESPnet's cls.sh: only ``--feats_normalize global_mvn`` changes
anything (it adds ``--normalize global_mvn --normalize_conf stats_file=<stats>``, which win over
the yaml); any other value (ESPnet's default ``uttmvn``, ``utterance_mvn``, ``none``) leaves the
config's own ``normalize:`` in force, or the task default ``utterance_mvn``. Two additions,
both logged: a config that asks for ``global_mvn`` without a ``stats_file`` gets the stage-5
statistics (ESPnet would stop with a missing-argument error), and with ``frontend: none`` the
global-MVN request is dropped (raw samples have no feature statistics; the model would ignore it).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, Optional, Sequence

from espnet_cls.cli import run_main, setup_logging
from espnet_cls.config import load_yaml, parse_conf_value
from espnet_cls.contract import FEATS_NORMALIZE_VALUES, RECIPE_AUDIO_FORMATS, ContractError, recipe_facts
from espnet_cls.fileio import DataError

#: the training options that decide the facts; every other ``--cls_args`` option is cls_train's business
FACT_KEYS = ("frontend", "frontend_conf", "normalize", "normalize_conf", "model_conf", "input_size")


def resolve_fact_keys(config: Optional[str], cls_args: str = "") -> dict[str, Any]:
    """The yaml's mapping with the ``--cls_args`` options among :data:`FACT_KEYS` applied, as cls_train does
    (``--x_conf a=1`` updates keys, a yaml mapping replaces; a later option wins). No torch import."""
    cfg: dict[str, Any] = dict(load_yaml(config)) if config else {}
    try:
        words = shlex.split(cls_args)
    except ValueError as e:
        raise DataError(f"--cls_args cannot be split into words: {e}") from None
    i = 0
    while i < len(words):
        word = words[i]
        key, eq, value = word[2:].partition("=") if word.startswith("--") else ("", "", "")
        key = key.replace("-", "_")
        if key in FACT_KEYS:
            if not eq:
                if i + 1 >= len(words):
                    raise DataError(f"--cls_args: --{key} needs a value")
                value = words[i + 1]
                i += 1
            if key.endswith("_conf"):
                try:
                    cfg[key] = parse_conf_value(value, cfg.get(key))
                except argparse.ArgumentTypeError as e:
                    raise DataError(f"--cls_args: --{key}: {e}") from None
            elif key == "input_size":
                cfg[key] = None if value.strip().lower() in ("none", "null", "") else value
            else:
                cfg[key] = value
        i += 1
    return cfg


def config_facts(config: Optional[str], cls_args: str = "", feats_normalize: str = "uttmvn",
                 stats_file: str = "exp/cls_stats_16k/train/feats_stats.npz", fs: str = "16k",
                 audio_format: str = "flac", classification_type: str = "") -> dict[str, str]:
    """:func:`espnet_cls.contract.recipe_facts` of ``config`` + ``cls_args``; raises :class:`DataError`."""
    cfg = resolve_fact_keys(config, cls_args)
    try:
        return recipe_facts(cfg, fs, feats_normalize, stats_file, audio_format, classification_type,
                            source=config or "--cls_args")
    except ContractError as e:
        raise DataError(e.msg, e.path, e.line) from None


def format_facts(facts: dict[str, str]) -> str:
    """``key=value`` lines; values hold no newline (they are read line by line, never eval'ed)."""
    lines = []
    for k, v in facts.items():
        v = " ".join(str(v).split())
        lines.append(f"{k}={v}")
    return "\n".join(lines) + "\n"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="the training yaml (cls.sh's --cls_config); empty: the defaults")
    p.add_argument("--cls_args", default="", help="cls.sh's --cls_args (they override the yaml)")
    p.add_argument("--feats_normalize", default="uttmvn", help=f"one of {', '.join(FEATS_NORMALIZE_VALUES)}")
    p.add_argument("--stats_file", default="exp/cls_stats_16k/train/feats_stats.npz", help="stage 5's global-MVN statistics")
    p.add_argument("--fs", default="16k", help="cls.sh's --fs")
    p.add_argument("--audio_format", default="flac", help=f"one of {', '.join(RECIPE_AUDIO_FORMATS)}")
    p.add_argument("--classification_type", default="", help="cls.sh's --classification_type: must agree with the config")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging()
    facts = config_facts(args.config or None, args.cls_args, args.feats_normalize, args.stats_file, args.fs,
                         args.audio_format, args.classification_type)
    print(format_facts(facts), end="")
    return 0


if __name__ == "__main__":
    run_main(main)
