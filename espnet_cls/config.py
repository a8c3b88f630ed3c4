"""Training configuration: the schema of ``cls_train``'s yaml, and how it is resolved.

A training config is one flat dict whose top-level keys are

* the trainer's keys (:data:`TRAINER_DEFAULTS`: batching, optimisation, checkpoints …),
* the model's keys (``espnet_cls.tasks.cls.MODEL_DEFAULTS``: frontend, encoder, decoder …),
* the job's keys (:data:`JOB_DEFAULTS`: data paths, shape files, output dir, token list …),

with ESPnet's ``cls_train`` names. :func:`resolve_config` builds it, in order of
precedence (last wins): the defaults, the yaml given by ``--config``, then every
``--key value`` on the command line in the order given. As in ESPnet:

* an unknown key in the yaml is an error that lists the valid keys;
* ``--<name>_conf key=value[,key2=value2]`` updates one (possibly nested, ``a.b=v``) key
  of the dict already there (yaml's), while ``--<name>_conf '{a: 1}'`` replaces it;
* options that may be repeated (``--fold_length``, ``--train_data_path_and_name_and_type``,
  ``--freeze_param`` …) append to the list;
* ``--token_list FILE`` is read, so the resolved config holds the list itself.

The resolved dict is what ``exp/cls_<tag>/config.yaml`` holds.
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml

from espnet_cls.cli import str2bool
from espnet_cls.fileio import DataError, read_lines

logger = logging.getLogger(__name__)

#: Trainer keys (ESPnet ``AbsTask`` names) and their defaults.
TRAINER_DEFAULTS: dict[str, Any] = {
    # batching
    "batch_type": "folded",  # folded | sorted | numel | length | unsorted | weighted | length_weighted
    "valid_batch_type": None,  # None: batch_type
    "batch_size": 20,
    "valid_batch_size": None,  # None: batch_size
    "batch_bins": 1000000,
    "valid_batch_bins": None,  # None: batch_bins
    "sort_in_batch": "descending",
    "sort_batch": "ascending",
    "shuffle_within_batch": False,
    "drop_last_iter": False,
    "num_workers": 1,
    "balanced_sampling": False,  # true: draw training clips by utt2weight (beside the train wav.scp)
    "utt2weight_file": None,  # weights of batch_type weighted / length_weighted (ESPnet's dev-branch samplers)
    "num_iters_per_epoch": None,
    # optimisation
    "max_epoch": 40,
    "patience": None,
    "optim": "adam",
    "optim_conf": {},
    "scheduler": None,
    "scheduler_conf": {},
    "accum_grad": 1,
    "grad_clip": 5.0,
    "grad_clip_type": 2.0,
    "ema_decay": None,  # [ours] e.g. 0.99: validate, save and infer with an exponential moving average of the weights
    "use_amp": False,
    "amp_dtype": "float16",  # float16 (with GradScaler) | bfloat16
    "init_param": [],
    "ignore_init_mismatch": False,
    "freeze_param": [],
    "unused_parameters": False,
    # model selection / checkpoints
    "best_model_criterion": [["valid", "acc", "max"]],
    "keep_nbest_models": 10,
    "nbest_averaging_interval": 0,
    "val_scheduler_criterion": ["valid", "loss"],
    "early_stopping_criterion": ["valid", "loss", "min"],
    # logging
    "log_interval": None,
    "use_matplotlib": True,
    "use_tensorboard": True,
    "use_wandb": False,
    "num_att_plot": 0,
    # misc
    "seed": 0,
    "ngpu": 0,
    "num_threads": 0,  # CPU training: torch intra-op threads (0: the cores this process may use, shared by its local
    # training processes, at most 8; path.sh's OMP_NUM_THREADS=1 is for the many-job stages)
    "log_level": "INFO",
    "detect_anomaly": False,
    "cudnn_benchmark": False,
    "cudnn_deterministic": True,
    "lightning_conf": {},
}

#: Keys that describe one job rather than the model (data, output, run mode).
JOB_DEFAULTS: dict[str, Any] = {
    "output_dir": None,
    "resume": False,
    "collect_stats": False,
    "write_collected_feats": False,
    "dry_run": False,
    "train_data_path_and_name_and_type": [],
    "valid_data_path_and_name_and_type": [],
    "train_shape_file": [],
    "valid_shape_file": [],
    "fold_length": [],
    "token_list": None,
    "token_type": "word",
    "use_preprocessor": True,
    "allow_variable_data_keys": False,
    "dist_backend": None,
    "dist_init_method": "env://",
    "dist_world_size": None,
    "dist_rank": None,
    "local_rank": None,
    "multiprocessing_distributed": False,
}

#: Used only when ``espnet_cls.tasks.cls`` cannot be imported (keeps ``--help`` working).
_FALLBACK_MODEL_DEFAULTS: dict[str, Any] = {
    "frontend": "default",
    "frontend_conf": {},
    "specaug": None,
    "specaug_conf": {},
    "normalize": "utterance_mvn",
    "normalize_conf": {},
    "preencoder": None,
    "preencoder_conf": {},
    "encoder": "transformer",
    "encoder_conf": {},
    "decoder": "linear",
    "decoder_conf": {},
    "model": "espnet",
    "model_conf": {},
    "input_size": None,
    "init": None,
}

#: Keys given as repeatable command-line options (each occurrence appends).
APPEND_KEYS = {
    "train_data_path_and_name_and_type",
    "valid_data_path_and_name_and_type",
    "train_shape_file",
    "valid_shape_file",
    "fold_length",
    "freeze_param",
}

#: Keys whose command-line value is a list given in one option (``--init_param a b``).
NARGS_KEYS = {"init_param"}

#: Command-line-only keys: not part of the saved config.
CLI_ONLY = {"config", "print_config"}


def model_defaults() -> dict[str, Any]:
    """The model's keys and defaults, from ``espnet_cls.tasks.cls.MODEL_DEFAULTS``."""
    try:
        from espnet_cls.tasks.cls import MODEL_DEFAULTS
    except ImportError:  # pragma: no cover - only while the model package is missing
        return copy.deepcopy(_FALLBACK_MODEL_DEFAULTS)
    return copy.deepcopy(dict(MODEL_DEFAULTS))


def all_defaults() -> dict[str, Any]:
    """Every valid top-level key with its default (trainer + model + job keys)."""
    out = copy.deepcopy(TRAINER_DEFAULTS)
    out.update(model_defaults())
    out.update(copy.deepcopy(JOB_DEFAULTS))
    return out


def _yaml_value(text: str) -> Any:
    """Parse one command-line value the way ESPnet's NestedDictAction does (yaml scalar)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


#: The strings ESPnet's ``str_or_none``/``int_or_none``/``float_or_none`` read as None
#: (``espnet2/utils/types.py``), plus the empty string.
NONE_STRINGS = ("none", "null", "nil", "")


def str_or_none(value: str) -> Optional[str]:
    """argparse type: a string, or None for none/null/nil (any case) and ''."""
    return None if str(value).strip().lower() in NONE_STRINGS else value


def int_or_none(value: str) -> Optional[int]:
    """argparse type: an int, or none/null/nil."""
    v = str_or_none(value)
    return None if v is None else int(v)


def float_or_none(value: str) -> Optional[float]:
    """argparse type: a float, or none/null/nil."""
    v = str_or_none(value)
    return None if v is None else float(v)


def bool_or_none(value: str) -> Optional[bool]:
    """argparse type: true/false, or none/null/nil."""
    v = str_or_none(value)
    return None if v is None else str2bool(v)


def str_triple(value: str) -> str:
    """argparse type for ``path,name,type`` (kept as the string ESPnet writes to config.yaml)."""
    if len(value.split(",")) != 3:
        raise argparse.ArgumentTypeError(f"expected PATH,NAME,TYPE, got {value!r}")
    return value


_SPECIAL_TYPES: dict[str, Callable[[str], Any]] = {
    "patience": int_or_none,
    "valid_batch_size": int_or_none,
    "valid_batch_bins": int_or_none,
    "num_iters_per_epoch": int_or_none,
    "log_interval": int_or_none,
    "input_size": int_or_none,
    "grad_clip": float,
    "valid_batch_type": str_or_none,
    "utt2weight_file": str_or_none,
    "grad_clip_type": float,
    "ema_decay": float_or_none,
    "dist_world_size": int_or_none,
    "dist_rank": int_or_none,
    "local_rank": int_or_none,
    "fold_length": int,
    "train_data_path_and_name_and_type": str_triple,
    "valid_data_path_and_name_and_type": str_triple,
    "best_model_criterion": _yaml_value,
    "val_scheduler_criterion": _yaml_value,
    "early_stopping_criterion": _yaml_value,
    "keep_nbest_models": _yaml_value,
}


def _arg_type(key: str, default: Any) -> Callable[[str], Any]:
    """The argparse type for ``--key``, from the key's default."""
    if key in _SPECIAL_TYPES:
        return _SPECIAL_TYPES[key]
    if isinstance(default, bool):
        return str2bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, (dict, list)):
        return str
    return str_or_none


class _RecordAction(argparse.Action):
    """Stores each command-line option as an ``(key, kind, value)`` operation, in order."""

    def __init__(self, option_strings, dest, kind: str = "set", **kwargs):
        self.kind = kind
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        ops = getattr(namespace, "_ops", None)
        if ops is None:
            ops = []
            namespace._ops = ops
        ops.append((self.dest, self.kind, values))


def parse_conf_value(text: str, current: Optional[dict]) -> dict:
    """Apply ``--x_conf TEXT`` to the dict ``current`` (ESPnet's NestedDictAction).

    ``a=1,b.c=x`` updates (nested) keys of a copy of ``current``; values are yaml scalars.
    Anything else is parsed as a yaml mapping and replaces ``current``.
    Raises ``argparse.ArgumentTypeError`` on malformed input.
    """
    if "=" in text and not text.lstrip().startswith("{"):
        out = copy.deepcopy(current) if isinstance(current, dict) else {}
        for item in text.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise argparse.ArgumentTypeError(f"expected key=value, got {item!r} in {text!r}")
            key, value = item.split("=", 1)
            parts = key.strip().split(".")
            node = out
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    node[p] = {}
                node = node[p]
            node[parts[-1]] = _yaml_value(value.strip())
        return out
    value = _yaml_value(text)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected key=value[,key=value] or a yaml mapping, got {text!r}")
    return value


def build_parser(description: str = "Train an audio classifier (ESPnet cls_train).") -> argparse.ArgumentParser:
    """The ``cls_train`` argument parser: ``--config`` plus one ``--key`` per config key."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Every top-level key of the yaml may also be given as --key value; "
        "--x_conf key=value updates one key of the yaml's x_conf.",
    )
    parser.add_argument("--config", type=str_or_none, default=None, help="training yaml; its keys override the defaults")
    parser.add_argument("--print_config", action="store_true", help="print the resolved config and exit")
    defaults = all_defaults()
    for key, default in defaults.items():
        if key in APPEND_KEYS:
            parser.add_argument(f"--{key}", action=_RecordAction, kind="append", type=_arg_type(key, default),
                                default=argparse.SUPPRESS, help=f"repeatable (default: {default})")
        elif key in NARGS_KEYS:
            parser.add_argument(f"--{key}", action=_RecordAction, kind="set", nargs="*", type=str,
                                default=argparse.SUPPRESS, help=f"(default: {default})")
        elif key.endswith("_conf"):
            parser.add_argument(f"--{key}", action=_RecordAction, kind="conf", type=str,
                                default=argparse.SUPPRESS, help=f"key=value[,key=value] or a yaml mapping (default: {default})")
        else:
            parser.add_argument(f"--{key}", action=_RecordAction, kind="set", type=_arg_type(key, default),
                                default=argparse.SUPPRESS, help=f"(default: {default})")
    return parser


def load_yaml(path: str) -> dict:
    """Read a training yaml; it must be a mapping (an empty file gives ``{}``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise DataError(f"cannot open config: {e.strerror}", path) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise DataError(f"invalid yaml: {e}", path, None if line is None else line + 1) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError("the config must be a yaml mapping of key: value", path)
    return data


#: Keys of ESPnet cls1 yamls that this recipe cannot support, and why (one clear error each).
ESPNET_UNSUPPORTED_KEYS: dict[str, str] = {
    k: "ESPnet's speech+text classification (egs2/clotho_v2/cls1: a Hugging Face text encoder fused with "
       "the audio encoder) is not supported here: the recipe has no text input"
    for k in ("text_encoder", "text_encoder_conf", "embedding_fusion", "embedding_fusion_conf")
}


def check_keys(config: dict, valid: Sequence[str], path: Optional[str] = None) -> None:
    """Raise :class:`DataError` for a key not in ``valid``, listing the valid keys (or, for an
    ESPnet key we cannot support, saying why)."""
    for k in config:
        if k not in valid and k in ESPNET_UNSUPPORTED_KEYS:
            raise DataError(f"config key {k!r}: {ESPNET_UNSUPPORTED_KEYS[k]}", path)
    unknown = [k for k in config if k not in valid]
    if unknown:
        raise DataError(
            f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys are: {', '.join(sorted(valid))}", path
        )


def coerce_yaml_value(key: str, value: Any, default: Any, path: Optional[str] = None) -> Any:
    """A yaml value as ESPnet's ``cls_train`` sees it.

    ESPnet passes the yaml to ``argparse.set_defaults``, and argparse runs a *string* default
    through the option's ``type``: so ``patience: none`` becomes ``int_or_none("none")`` = None,
    ``frontend: none`` becomes None, ``max_epoch: "5"`` becomes 5. Non-string values (yaml
    ints, floats, lists, mappings) are kept as they are, as in ESPnet. A string the type
    rejects raises :class:`DataError` naming the key and the file.
    """
    if not isinstance(value, str) or isinstance(default, (dict, list)) or key in APPEND_KEYS | NARGS_KEYS:
        return value
    typ = _arg_type(key, default)
    try:
        return typ(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
        name = getattr(typ, "__name__", "the expected type")
        raise DataError(f"config key {key!r}: {value!r} is not a valid {name} ({e})", path) from None


def resolve_config(argv: Optional[Sequence[str]] = None, parser: Optional[argparse.ArgumentParser] = None) -> dict:
    """Command line → fully resolved config dict (defaults ← yaml ← ``--key value``).

    ``--token_list FILE`` is read into a list. The result also holds ``config`` (the yaml
    path) and ``print_config``; :func:`saved_config` drops them.
    """
    parser = parser or build_parser()
    ns = parser.parse_args(argv)
    config = all_defaults()
    if ns.config is not None:
        data = load_yaml(ns.config)
        check_keys(data, list(config), ns.config)
        for k, v in data.items():
            config[k] = coerce_yaml_value(k, copy.deepcopy(v), config[k], ns.config)
    for key, kind, value in getattr(ns, "_ops", []):
        if kind == "append":
            cur = config.get(key)
            config[key] = (list(cur) if isinstance(cur, (list, tuple)) else []) + [value]
        elif kind == "conf":
            try:
                config[key] = parse_conf_value(value, config.get(key))
            except argparse.ArgumentTypeError as e:
                parser.error(f"--{key}: {e}")
        else:
            config[key] = value
    config["config"] = ns.config
    config["print_config"] = ns.print_config
    normalize_config(config)
    return config


def normalize_config(config: dict) -> None:
    """In place: read the token list file, fill ``None`` conf dicts, check simple types."""
    tl = config.get("token_list")
    if isinstance(tl, (str, Path)):
        tokens = [t.strip() for t in read_lines(tl)]
        if not tokens or any(t == "" for t in tokens):
            raise DataError("token list must hold one non-empty token per line", tl)
        config["token_list"] = tokens
    for k in list(config):
        if k.endswith("_conf") and config[k] is None:
            config[k] = {}
    crit = config.get("best_model_criterion")
    if crit is not None:
        if not (isinstance(crit, list) and all(isinstance(c, (list, tuple)) and len(c) == 3 for c in crit)):
            raise DataError(f"best_model_criterion must be a list of [phase, metric, max|min], got {crit!r}")
        for c in crit:
            if c[2] not in ("max", "min"):
                raise DataError(f"best_model_criterion: mode must be max or min, got {c[2]!r}")
    if isinstance(config.get("init_param"), str):
        config["init_param"] = [config["init_param"]]
    if isinstance(config.get("freeze_param"), str):
        config["freeze_param"] = [config["freeze_param"]]


def saved_config(config: dict) -> dict:
    """The config as written to ``config.yaml`` (without command-line-only keys)."""
    return {k: v for k, v in config.items() if k not in CLI_ONLY}


def dump_yaml(config: dict) -> str:
    """Yaml text of a config, keys in insertion order, lists in block style."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
