"""The facts every stage shares, each in one place.

This module sits at the bottom of the package: it imports nothing else from
``espnet_cls`` (only the standard library and numpy), so every other module, every
entry point and ``cls.sh`` (through ``python -m espnet_cls.contract``) can use it.
``docs/design.md`` ("The contract") describes the same facts in prose.

What lives here
---------------
- :func:`parse_fs`: the one sampling-rate parser (``16000``, ``"16k"``, ``"16kHz"``,
  ``"16000Hz"``, ``"44.1k"``), as ESPnet's ``humanfriendly.parse_size`` reads ``fs``.
- the classification types (:data:`MULTI_CLASS`, :data:`MULTI_LABEL`) and the default
  (:data:`DEFAULT_CLASSIFICATION_TYPE`, ESPnet's: multi-class).
- the token list (:class:`TokenList`): classes, then ``<blank>`` and ``<unk>``; ids are
  line numbers (0-based).
- the decision rule (:func:`decide`): argmax (multi-class), ``p >= threshold``
  (multi-label, possibly no class).
- the model's input: 16-bit PCM at the model's rate (:data:`PCM_BITS`,
  :data:`PCM_SCALE`): stage 2 writes it, and the model rounds any other input to that
  grid, so float audio and the dump give the same scores.
- the model's facts read once from its config (:class:`ModelFacts`, :func:`model_facts`), and
  what ``cls.sh`` passes to stages 5-7 for a training config (:func:`recipe_facts`, printed by
  ``python -m espnet_cls.bin.config_facts``).
- the files between stages (:class:`DumpLayout`, :class:`ExpLayout` and the file-name
  constants): what ``docs/design.md`` calls "Files between stages", as code.

Errors are :class:`ContractError` (a ``ValueError`` that carries a file and line, shown
as ``path:line: message``, as ``espnet_cls.fileio.DataError``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


class Located:
    """Mixin of the project's input errors: a message plus the file and (1-based) line it is about;
    ``str()`` is ``path:line: message`` (or ``path: message``, or the message alone)."""

    def __init__(self, msg: str, path: Optional[PathLike] = None, line: Optional[int] = None):
        self.msg = msg
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.msg
        return (self.path if self.line is None else f"{self.path}:{self.line}") + ": " + self.msg


class ContractError(Located, ValueError):
    """A value that breaks the contract (a ``ValueError``); see :class:`Located`."""


# --------------------------------------------------------------------------- sample rate

#: the recipe's default rate (``cls.sh --fs``); ESPnet's ``DefaultFrontend`` default too
DEFAULT_FS = 16000

_FS_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(k|khz|hz)?")


def parse_fs(value: Union[str, int, float]) -> int:
    """A sampling rate in Hz from ``16000``, ``"16000"``, ``"16k"``, ``"16kHz"``, ``"16000Hz"``, ``"44.1k"``.

    ``k``/``kHz`` multiply by 1000 (case-insensitive; a space before the unit is allowed),
    ``Hz`` is Hz. ESPnet reads ``fs`` with ``humanfriendly.parse_size``, which takes
    ``16k`` and ``16kHz`` alike; ``16000Hz`` is accepted here as well. Anything that is
    not a positive whole number of Hz is a :class:`ContractError` (``16.5``, ``0``,
    ``-16k``, ``16 kbps``, ``True``).
    """
    if isinstance(value, bool):
        raise ContractError(f"not a sampling rate: {value!r} (e.g. 16k, 16kHz, 16000)")
    if isinstance(value, (int, np.integer)):
        num = float(value)
    elif isinstance(value, (float, np.floating)):
        num = float(value)
    else:
        m = _FS_RE.fullmatch(str(value).strip().lower())
        if not m:
            raise ContractError(f"not a sampling rate: {value!r} (e.g. 16k, 16kHz, 16000)")
        num = float(m.group(1)) * (1000 if m.group(2) in ("k", "khz") else 1)
    fs = int(round(num))
    if fs <= 0 or abs(fs - num) > 1e-6:
        raise ContractError(f"not a sampling rate: {value!r} (a positive whole number of Hz, e.g. 16k, 16000)")
    return fs


# --------------------------------------------------------------------------- model input

#: stage 2 writes 16-bit PCM; the model's input is that grid (see :func:`pcm16_round`)
PCM_BITS = 16
#: float sample = int sample / PCM_SCALE (soundfile's scaling of 16-bit audio)
PCM_SCALE = float(1 << (PCM_BITS - 1))
PCM_MIN = -(1 << (PCM_BITS - 1))
PCM_MAX = (1 << (PCM_BITS - 1)) - 1


def pcm16_round(x: np.ndarray) -> np.ndarray:
    """Float samples on the 16-bit grid, as stage 2 stores them: ``clip(round(x * 32768)) / 32768``.

    Rounding is half to even (``numpy.round``, ``torch.round``); values beyond full scale
    are clipped to ``[-32768, 32767] / 32768``. Samples already on the grid are unchanged.
    Returns float32 (every 16-bit value divided by 32768 is exact in float32).
    """
    scaled = np.clip(np.round(np.asarray(x, dtype=np.float64) * PCM_SCALE), PCM_MIN, PCM_MAX)
    return (scaled / PCM_SCALE).astype(np.float32)


# --------------------------------------------------------------------------- classification types

MULTI_CLASS = "multi-class"
MULTI_LABEL = "multi-label"
CLASSIFICATION_TYPES = (MULTI_CLASS, MULTI_LABEL)
#: ESPnet's ``CLSModel`` default
DEFAULT_CLASSIFICATION_TYPE = MULTI_CLASS


def check_classification_type(value: Any, what: str = "classification_type") -> str:
    """``value`` if it is one of :data:`CLASSIFICATION_TYPES`, else a :class:`ContractError`."""
    if value not in CLASSIFICATION_TYPES:
        raise ContractError(f"{what} must be one of {', '.join(CLASSIFICATION_TYPES)}, got {value!r}")
    return str(value)


# --------------------------------------------------------------------------- token list

BLANK = "<blank>"
UNK = "<unk>"
#: the special tokens, in the order they follow the classes
SPECIAL_TOKENS = (BLANK, UNK)


@dataclass(frozen=True)
class TokenList:
    """A token list: the classes (id = 0-based line), then ``<blank>`` and/or ``<unk>``.

    ``<blank>`` marks a clip with no label (multi-label), ``<unk>`` a label outside the
    list. Neither is a class: ``classes == tokens[:n_classes]``. Build with
    :meth:`from_tokens` (validates) or :meth:`read` (a ``data/token_list`` file).
    """

    tokens: tuple[str, ...]
    n_classes: int

    @classmethod
    def from_tokens(cls, tokens: Iterable[Any], path: Optional[PathLike] = None) -> TokenList:
        """Check and wrap a list of tokens (``path``: the file they came from, for messages).

        Each token is one word; no duplicates; the special tokens come after every class;
        at least one class. Line numbers in errors are 1-based positions.
        """
        toks = tuple(str(t).strip() for t in tokens)
        if not toks:
            raise ContractError("the token list is empty", path)
        seen: dict[str, int] = {}
        first_special = None
        for i, tok in enumerate(toks, 1):
            if not tok or len(tok.split()) != 1:
                raise ContractError(f"expected one token (one word), got {tok!r}", path, i)
            if tok in seen:
                raise ContractError(f"duplicate token {tok!r} (first on line {seen[tok]})", path, i)
            seen[tok] = i
            if tok in SPECIAL_TOKENS:
                first_special = first_special or i
            elif first_special is not None:
                raise ContractError(f"class {tok!r} after the special token on line {first_special} (specials go last)", path, i)
        n = sum(1 for t in toks if t not in SPECIAL_TOKENS)
        if n < 1:
            raise ContractError("the token list has no classes", path)
        return cls(toks, n)

    @classmethod
    def read(cls, path: PathLike) -> TokenList:
        """Read a token list file (one token per line; blank lines are errors except at the end)."""
        try:
            with open(path, encoding="utf-8") as f:
                lines = [ln.rstrip("\n").rstrip("\r") for ln in f]
        except OSError as e:
            raise ContractError(f"cannot open the token list: {e.strerror or e}", path) from None
        while lines and not lines[-1].strip():
            lines.pop()
        return cls.from_tokens(lines, path)

    @classmethod
    def of(cls, token_list: Union[PathLike, Sequence[Any], TokenList]) -> TokenList:
        """A TokenList from a file path, a list of tokens (as ``config.yaml``'s ``token_list``) or a TokenList."""
        if isinstance(token_list, TokenList):
            return token_list
        if isinstance(token_list, (str, os.PathLike)):
            return cls.read(token_list)
        return cls.from_tokens(token_list)

    @property
    def classes(self) -> list[str]:
        """The class names, in id order (no special tokens)."""
        return list(self.tokens[: self.n_classes])

    @property
    def blank_id(self) -> Optional[int]:
        return self.tokens.index(BLANK) if BLANK in self.tokens else None

    @property
    def unk_id(self) -> Optional[int]:
        return self.tokens.index(UNK) if UNK in self.tokens else None

    def token2id(self) -> dict[str, int]:
        """``{token: id}`` over every token (classes and specials)."""
        return {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)


def with_special_tokens(classes: Iterable[str]) -> list[str]:
    """A token list from class names: the classes, then ``<blank>``, ``<unk>`` (what stage 4 writes)."""
    return [c for c in classes if c not in SPECIAL_TOKENS] + list(SPECIAL_TOKENS)


# --------------------------------------------------------------------------- decision rule

DEFAULT_THRESHOLD = 0.5


def decide(probs: Any, classification_type: str, threshold: Union[float, Sequence[float], np.ndarray] = DEFAULT_THRESHOLD) -> np.ndarray:
    """The decisions ``[N, C]`` (bool) from probabilities ``[N, C]``.

    Multi-class: the argmax (the first on ties), exactly one class per clip.
    Multi-label: every class with ``p >= threshold`` (a scalar or one per class), possibly none.
    Stage 7 (``prediction/text``), the scorer, ``Classifier`` and the trainer all use this.
    """
    s = np.asarray(probs, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    check_classification_type(classification_type)
    if classification_type == MULTI_CLASS:
        out = np.zeros(s.shape, dtype=bool)
        if s.shape[0] and s.shape[1]:
            out[np.arange(s.shape[0]), s.argmax(axis=1)] = True
        return out
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim and thr.shape != (s.shape[1],):
        raise ContractError(f"{thr.size} thresholds for {s.shape[1]} classes")
    return s >= thr


def decided_ids(probs: Any, classification_type: str, threshold: Union[float, Sequence[float], np.ndarray] = DEFAULT_THRESHOLD) -> list[list[int]]:
    """:func:`decide` as class ids per clip (what ``prediction/token`` holds)."""
    return [[int(k) for k in np.flatnonzero(row)] for row in decide(probs, classification_type, threshold)]


# --------------------------------------------------------------------------- model facts

#: ESPnet's CLSTask defaults for the model keys that decide the pipeline
DEFAULT_FRONTEND = "default"
DEFAULT_NORMALIZE = "utterance_mvn"
GLOBAL_MVN = "global_mvn"


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))


@dataclass(frozen=True)
class ModelFacts:
    """What the pipeline needs to know about a model, read once from its config.

    ``fs``: the rate the model takes (``frontend_conf.fs``; :data:`DEFAULT_FS` when absent,
    e.g. a frontend-less encoder such as BEATs, which is 16 kHz). ``classification_type``.
    ``frontend``/``normalize``: the names (None for ``none``). ``uses_global_mvn``: the
    model normalises with statistics (``feats_stats.npz``) that must travel with it
    (stage 9 packs them). ``stats_file``: ``normalize_conf.stats_file`` when given.
    """

    fs: int
    classification_type: str
    frontend: Optional[str]
    normalize: Optional[str]
    uses_global_mvn: bool
    stats_file: Optional[str] = None


def model_facts(config: Mapping[str, Any], fs: Union[str, int, None] = None, source: Optional[PathLike] = None) -> ModelFacts:
    """:class:`ModelFacts` of a config dict (a resolved ``config.yaml`` or a user's training yaml).

    ``fs`` (e.g. ``cls.sh --fs``) is used when the config has no ``frontend_conf.fs``; a
    config that has one and disagrees is a :class:`ContractError`. ``source`` names the file
    in messages.
    """
    if not isinstance(config, Mapping):
        raise ContractError(f"the config must be a mapping, got {type(config).__name__}", source)
    frontend = config.get("frontend", DEFAULT_FRONTEND)
    frontend = None if _is_none(frontend) else str(frontend)
    fconf = config.get("frontend_conf") or {}
    if not isinstance(fconf, Mapping):
        raise ContractError(f"frontend_conf must be a mapping, got {fconf!r}", source)
    try:
        cfg_fs = parse_fs(fconf["fs"]) if fconf.get("fs") is not None else None
        given = parse_fs(fs) if fs is not None else None
    except ContractError as e:
        raise ContractError(f"frontend_conf.fs: {e.msg}", source) from None
    if cfg_fs is not None and given is not None and cfg_fs != given:
        raise ContractError(f"frontend_conf.fs is {cfg_fs} Hz but the recipe's fs is {given} Hz", source)
    rate = cfg_fs or given or DEFAULT_FS
    mconf = config.get("model_conf") or {}
    if not isinstance(mconf, Mapping):
        raise ContractError(f"model_conf must be a mapping, got {mconf!r}", source)
    ctype = mconf.get("classification_type") or DEFAULT_CLASSIFICATION_TYPE
    try:
        check_classification_type(ctype, "model_conf.classification_type")
    except ContractError as e:
        raise ContractError(e.msg, source) from None
    normalize = config.get("normalize", DEFAULT_NORMALIZE)
    normalize = None if _is_none(normalize) else str(normalize)
    nconf = config.get("normalize_conf") or {}
    stats_file = nconf.get("stats_file") if isinstance(nconf, Mapping) else None
    return ModelFacts(
        fs=rate,
        classification_type=ctype,
        frontend=frontend,
        normalize=normalize,
        uses_global_mvn=frontend is not None and normalize == GLOBAL_MVN,
        stats_file=None if stats_file is None else str(stats_file),
    )


def read_model_facts(config_path: PathLike, fs: Union[str, int, None] = None) -> ModelFacts:
    """:func:`model_facts` of a yaml file (PyYAML is imported here, when needed)."""
    import yaml

    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise ContractError(f"cannot open: {e.strerror or e}", config_path) from None
    except yaml.YAMLError as e:
        raise ContractError(f"not valid yaml: {str(e).splitlines()[0]}", config_path) from None
    return model_facts(cfg or {}, fs=fs, source=config_path)


# --------------------------------------------------------------------------- what cls.sh needs of a config

#: ``cls.sh --feats_normalize`` values (``uttmvn`` is ESPnet's default spelling)
FEATS_NORMALIZE_VALUES = ("global_mvn", "utterance_mvn", "uttmvn", "none")
#: ``cls.sh --audio_format`` values (ESPnet's list); ``*.ark`` dumps are read as ``kaldi_ark``
RECIPE_AUDIO_FORMATS = ("wav", "flac", "wav.ark", "flac.ark")


def recipe_facts(
    config: Mapping[str, Any],
    fs: Union[str, int] = "16k",
    feats_normalize: str = "uttmvn",
    stats_file: str = "exp/cls_stats_16k/train/feats_stats.npz",
    audio_format: str = "flac",
    classification_type: str = "",
    source: Optional[PathLike] = None,
) -> dict[str, str]:
    """What ``cls.sh`` passes to stages 5-7 for a training config (``cls_args`` already applied).

    Keys: ``frontend`` (``none`` or the name), ``frontend_opts`` (``--frontend_conf fs=<fs>``,
    empty with ``frontend: none``), ``normalize`` (what training will use), ``normalize_opts``,
    ``classification_type``, ``model_opts``, ``speech_type`` (``sound`` or ``kaldi_ark``), ``info``
    (one log line, or empty).

    Normalization is ESPnet's cls.sh rule: only ``feats_normalize == "global_mvn"`` changes
    anything (``--normalize global_mvn --normalize_conf stats_file=<stats_file>``, which win
    over the yaml); every other value leaves the config's ``normalize`` (default
    :data:`DEFAULT_NORMALIZE`). Two additions: a config asking for ``global_mvn`` without a
    ``stats_file`` gets ``stats_file`` (ESPnet would stop on the missing argument), and
    ``frontend: none`` drops a ``global_mvn`` request (raw samples have no feature statistics).
    ``classification_type``, when given, must agree with ``model_conf.classification_type``.
    """
    if feats_normalize not in FEATS_NORMALIZE_VALUES:
        raise ContractError(f"--feats_normalize must be one of {', '.join(FEATS_NORMALIZE_VALUES)}, not {feats_normalize!r}")
    if audio_format not in RECIPE_AUDIO_FORMATS:
        raise ContractError(f"--audio_format must be one of {', '.join(RECIPE_AUDIO_FORMATS)}, not {audio_format!r}")
    if classification_type:
        check_classification_type(classification_type, "--classification_type")
    if not isinstance(config, Mapping):
        raise ContractError(f"the config must be a mapping, got {type(config).__name__}", source)
    cfg = dict(config)
    # cls.sh passes --frontend_conf fs=<fs> (it wins over the yaml, as in ESPnet)
    if not _is_none(cfg.get("frontend", DEFAULT_FRONTEND)):
        fconf = cfg.get("frontend_conf") or {}
        if not isinstance(fconf, Mapping):
            raise ContractError(f"frontend_conf must be a mapping, got {fconf!r}", source)
        cfg["frontend_conf"] = {**fconf, "fs": fs}
    facts = model_facts(cfg, fs=fs, source=source)
    if cfg.get("input_size") is not None:  # a given input size disables the frontend (as ESPnet)
        facts = ModelFacts(facts.fs, facts.classification_type, None, facts.normalize, False, facts.stats_file)

    info: list[str] = []
    normalize = facts.normalize or "none"
    normalize_opts = ""
    if feats_normalize == GLOBAL_MVN:
        if facts.frontend is None:
            info.append("frontend is none (the encoder owns its features): --feats_normalize global_mvn is ignored")
        else:
            normalize = GLOBAL_MVN
            normalize_opts = f"--normalize global_mvn --normalize_conf stats_file={stats_file}"
    elif facts.uses_global_mvn and not facts.stats_file:
        normalize_opts = f"--normalize_conf stats_file={stats_file}"
        info.append(f"the config's normalize is global_mvn without a stats_file: using {stats_file}")
    elif feats_normalize != "uttmvn":
        info.append(f"--feats_normalize {feats_normalize} leaves the config's normalize ({normalize}) in force, "
                    "as ESPnet's cls.sh: only global_mvn overrides it")

    mconf = cfg.get("model_conf") or {}
    given = mconf.get("classification_type") if isinstance(mconf, Mapping) else None
    if classification_type and given and classification_type != given:
        raise ContractError(f"--classification_type {classification_type} disagrees with the config "
                            f"(model_conf.classification_type: {given})", source)
    return {
        "frontend": facts.frontend or "none",
        "frontend_opts": "" if facts.frontend is None else f"--frontend_conf fs={fs}",
        "normalize": normalize,
        "normalize_opts": normalize_opts,
        "classification_type": classification_type or facts.classification_type,
        "model_opts": f"--model_conf classification_type={classification_type}" if classification_type else "",
        "speech_type": "kaldi_ark" if audio_format.endswith(".ark") else "sound",
        "info": "; ".join(info),
    }


# --------------------------------------------------------------------------- files between stages

#: stage 3 keeps the unfiltered dump here (``.backup/`` belongs to ``fix_data_dir.sh``)
FILTER_BACKUP_DIR = ".filter_backup"
#: the dump's rate in Hz, one line (written by stage 2, checked by stages 5-7)
DUMP_FS_FILE = "fs"
#: ESPnet's marker files of a dump dir
FEATS_TYPE_FILE = "feats_type"
AUDIO_FORMAT_FILE = "audio_format"
#: audio formats stage 2 writes (16-bit PCM each)
DUMP_AUDIO_FORMATS = ("flac", "wav", "flac.ark", "wav.ark")


@dataclass(frozen=True)
class DumpLayout:
    """``dump/<set>/``: what stage 2 writes and stages 3-8 read."""

    root: Path

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def wav_scp(self) -> Path:
        return self.root / "wav.scp"

    @property
    def utt2num_samples(self) -> Path:
        return self.root / "utt2num_samples"

    @property
    def text(self) -> Path:
        return self.root / "text"

    @property
    def fs_file(self) -> Path:
        return self.root / DUMP_FS_FILE

    @property
    def feats_type(self) -> Path:
        return self.root / FEATS_TYPE_FILE

    @property
    def audio_format(self) -> Path:
        return self.root / AUDIO_FORMAT_FILE

    @property
    def filter_backup(self) -> Path:
        return self.root / FILTER_BACKUP_DIR

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def job_dir(self, job: int) -> Path:
        """Where job ``job`` (1-based) of stage 2 writes its audio, ``wav.scp`` and ``utt2num_samples``."""
        return self.root / "data" / f"format.{int(job)}"

    def read_fs(self) -> Optional[int]:
        """The recorded rate, or None for a dump without ``fs`` (written before it was recorded)."""
        p = self.fs_file
        if not p.is_file():
            return None
        text = p.read_text(encoding="utf-8").strip()
        try:
            return parse_fs(text)
        except ContractError as e:
            raise ContractError(e.msg, p, 1) from None

    def write_fs(self, fs: Union[str, int]) -> None:
        """Record the dump's rate (atomically: temp file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{DUMP_FS_FILE}.tmp{os.getpid()}"
        tmp.write_text(f"{parse_fs(fs)}\n", encoding="utf-8")
        os.replace(tmp, self.fs_file)

    def check_fs(self, fs: Union[str, int]) -> Optional[str]:
        """Compare the recorded rate with ``fs``: None when they agree, a warning text for a
        legacy dump without the file; a :class:`ContractError` when they disagree."""
        want = parse_fs(fs)
        got = self.read_fs()
        if got is None:
            return f"{self.root} does not record its sampling rate ({DUMP_FS_FILE}): an older dump, assumed to be at {want} Hz"
        if got != want:
            raise ContractError(
                f"the dump is at {got} Hz but the model takes {want} Hz (re-run stage 2 with --fs {want}, or train at {got})",
                self.fs_file,
                1,
            )
        return None


def dump_of(wav_scp: PathLike) -> DumpLayout:
    """The dump dir of a ``wav.scp`` path (its folder)."""
    return DumpLayout(Path(wav_scp).parent)


#: inside an experiment dir
CONFIG_FILE = "config.yaml"
TRAIN_HISTORY_FILE = "train_history.json"
IMAGES_DIR = "images"
RESULTS_FILE = "RESULTS.md"
CHECKPOINT_FILE = "checkpoint.pth"
SCORING_DIR = "scoring"
METRICS_FILE = "metrics"
METRICS_JSON = "metrics.json"
PREDICTION_DIR = "prediction"
#: the files of ``prediction/`` (and of a decode dir after the merge)
PREDICTION_FILES = ("text", "score", "token")


def stats_dir_name(fs: Union[str, int]) -> str:
    """``cls_stats_<fs>`` with ``fs`` as the recipe spells it (``cls_stats_16k``)."""
    return f"cls_stats_{fs}"


def epoch_model_file(epoch: int) -> str:
    return f"{int(epoch)}epoch.pth"


def best_model_file(metric: str, phase: str = "valid") -> str:
    """``valid.acc.best.pth``."""
    return f"{phase}.{metric}.best.pth"


def averaged_model_file(metric: str, n: int, phase: str = "valid") -> str:
    """``valid.acc.ave_5best.pth``."""
    return f"{phase}.{metric}.ave_{int(n)}best.pth"


def key_metric(classification_type: str) -> str:
    """The validation metric that picks the best epoch: ``acc`` (multi-class) or ``mAP`` (multi-label)."""
    return "acc" if check_classification_type(classification_type) == MULTI_CLASS else "mAP"


@dataclass(frozen=True)
class ExpLayout:
    """``exp/cls_<tag>/``: what stage 6 writes and stages 7-10 read."""

    root: Path

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def train_history(self) -> Path:
        return self.root / TRAIN_HISTORY_FILE

    @property
    def images(self) -> Path:
        return self.root / IMAGES_DIR

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    def decode_dir(self, dset: str, inference_tag: str = "") -> Path:
        """``cls_<set>/``: ``text``, ``score``, ``token`` of stage 7, ``scoring/`` of stage 8.

        ``inference_tag`` (``cls.sh --inference_tag``) makes it ``cls_<set>_<tag>/``; without one it
        is ESPnet's ``cls_<set>/``. cls.sh's ``inference_dir`` names the same directory.
        """
        return self.root / (f"cls_{dset}_{inference_tag}" if inference_tag else f"cls_{dset}")

    def scoring_dir(self, dset: str, inference_tag: str = "") -> Path:
        return self.decode_dir(dset, inference_tag) / SCORING_DIR

    def metrics_json(self, dset: str, inference_tag: str = "") -> Path:
        return self.scoring_dir(dset, inference_tag) / METRICS_JSON

    def packed_model(self, inference_model: str) -> Path:
        """Stage 9's archive: ``<exp>/<exp name>_<inference_model without .pth>.zip``."""
        stem = inference_model[: -len(".pth")] if inference_model.endswith(".pth") else inference_model
        return self.root / f"{self.root.name}_{stem}.zip"
