"""Print the facts cls.sh needs from a training config, as shell-safe ``key=value`` lines.

    python -m espnet_cls.bin.config_facts --config conf/train_cnn.yaml --cls_args "--max_epoch 3" \\
        --feats_normalize uttmvn --stats_file exp/cls_stats_16k/train/feats_stats.npz --fs 16k

cls.sh calls this once instead of reading the yaml itself, so the decisions below are made in
one place (Python) and cls.sh only passes their results on. The config is resolved the way
``cls_train`` resolves it (defaults <- yaml <- ``--cls_args``), so a ``--cls_args "--frontend none"``
counts. Printed keys:

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
from espnet_cls.fileio import DataError

#: ``--feats_normalize`` values cls.sh accepts (``uttmvn`` is ESPnet's default spelling).
FEATS_NORMALIZE = ("global_mvn", "utterance_mvn", "uttmvn", "none")
#: ``--audio_format`` values of ESPnet's cls.sh.
AUDIO_FORMATS = ("wav", "flac", "wav.ark", "flac.ark")
CLASSIFICATION_TYPES = ("multi-class", "multi-label")


def _none(value: Any) -> bool:
    return value is None or str(value).strip().lower() in ("none", "null", "")


def recipe_facts(
    config: Optional[str],
    cls_args: str = "",
    feats_normalize: str = "uttmvn",
    stats_file: str = "exp/cls_stats_16k/train/feats_stats.npz",
    fs: str = "16k",
    audio_format: str = "flac",
    classification_type: str = "",
) -> dict[str, str]:
    """The facts cls.sh needs for stages 5-9 (see the module docstring). Raises :class:`DataError`."""
    if feats_normalize not in FEATS_NORMALIZE:
        raise DataError(f"--feats_normalize must be one of {', '.join(FEATS_NORMALIZE)}, not {feats_normalize!r}")
    if audio_format not in AUDIO_FORMATS:
        raise DataError(f"--audio_format must be one of {', '.join(AUDIO_FORMATS)}, not {audio_format!r}")
    if classification_type and classification_type not in CLASSIFICATION_TYPES:
        raise DataError(f"--classification_type must be multi-class or multi-label, not {classification_type!r}")
    from espnet_cls.config import build_parser, resolve_config

    argv = ["--config", config] if config else []
    try:
        argv += shlex.split(cls_args)
    except ValueError as e:
        raise DataError(f"--cls_args cannot be split into words: {e}") from None
    parser = build_parser()

    def error(message: str) -> None:  # one line naming the options, not cls_train's whole usage
        raise DataError(f"--cls_config {config or '(none)'} --cls_args {cls_args!r}: {message}")

    parser.error = error  # type: ignore[method-assign]
    cfg = resolve_config(argv, parser)

    info: list[str] = []
    frontend = "none" if _none(cfg.get("frontend")) or cfg.get("input_size") is not None else str(cfg["frontend"])
    frontend_opts = "" if frontend == "none" else f"--frontend_conf fs={fs}"

    normalize = "none" if _none(cfg.get("normalize")) else str(cfg["normalize"])
    nconf = cfg.get("normalize_conf") or {}
    normalize_opts = ""
    if feats_normalize == "global_mvn":
        if frontend == "none":
            info.append("frontend is none (the encoder owns its features): --feats_normalize global_mvn is ignored")
        else:
            normalize = "global_mvn"
            normalize_opts = f"--normalize global_mvn --normalize_conf stats_file={stats_file}"
    elif normalize == "global_mvn" and not (isinstance(nconf, dict) and nconf.get("stats_file")):
        normalize_opts = f"--normalize_conf stats_file={stats_file}"
        info.append(f"the config's normalize is global_mvn without a stats_file: using {stats_file}")
    elif feats_normalize != "uttmvn":
        info.append(f"--feats_normalize {feats_normalize} leaves the config's normalize ({normalize}) in force, "
                    "as ESPnet's cls.sh: only global_mvn overrides it")

    given = (cfg.get("model_conf") or {}).get("classification_type")
    if classification_type and given and classification_type != given:
        raise DataError(f"--classification_type {classification_type} disagrees with {config or '--cls_args'} "
                        f"(model_conf.classification_type: {given})")
    ctype = str(classification_type or given or "multi-class")
    model_opts = f"--model_conf classification_type={classification_type}" if classification_type else ""
    return {
        "frontend": frontend,
        "frontend_opts": frontend_opts,
        "normalize": normalize,
        "normalize_opts": normalize_opts,
        "classification_type": ctype,
        "model_opts": model_opts,
        "speech_type": "kaldi_ark" if audio_format.endswith(".ark") else "sound",
        "info": "; ".join(info),
    }


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
    p.add_argument("--feats_normalize", default="uttmvn", help=f"one of {', '.join(FEATS_NORMALIZE)}")
    p.add_argument("--stats_file", default="exp/cls_stats_16k/train/feats_stats.npz", help="stage 5's global-MVN statistics")
    p.add_argument("--fs", default="16k", help="cls.sh's --fs")
    p.add_argument("--audio_format", default="flac", help=f"one of {', '.join(AUDIO_FORMATS)}")
    p.add_argument("--classification_type", default="", help="cls.sh's --classification_type: must agree with the config")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging()
    facts = recipe_facts(args.config or None, args.cls_args, args.feats_normalize, args.stats_file, args.fs,
                         args.audio_format, args.classification_type)
    print(format_facts(facts), end="")
    return 0


if __name__ == "__main__":
    run_main(main)
