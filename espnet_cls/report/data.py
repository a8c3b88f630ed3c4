"""Read what an experiment directory holds into plain objects for the HTML report.

Inputs (all written by earlier stages, see ``docs/design.md``):

- ``EXP/config.yaml`` (optional) — the resolved training config;
- ``EXP/train_history.json`` (optional) — per-epoch dicts ``{"epoch", "train": {...},
  "valid": {...}, "lr", "time"}``;
- ``EXP/cls_<set>/scoring/metrics.json`` — the scorer's report (one per scored set);
- ``EXP/cls_<set>/{text,score}`` and the reference ``text`` / ``wav.scp`` beside it (found
  through ``metrics.json``'s ``files``) — for the worst errors and their audio.

Relative paths in ``metrics.json`` and ``wav.scp`` are relative to the recipe directory
(where ``cls.sh`` ran). They are resolved against ``root`` if given, otherwise against the
current directory and then the experiment directory's grandparent (``<recipe>/exp/cls_X``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from espnet_cls.contract import DEFAULT_CLASSIFICATION_TYPE, MULTI_CLASS
from espnet_cls.fileio import DataError, PathLike, iter_kv

logger = logging.getLogger(__name__)


@dataclass
class ErrorCase:
    """One wrongly classified clip: what it is, what was predicted, how sure the model was."""

    utt_id: str
    reference: list[str]
    predicted: list[str]
    confidence: Optional[float]  # how confident the wrong decision was (None without scores)
    top: list[tuple[str, float]]  # top-5 (class, probability), best first (empty without scores)
    audio: Optional[Path] = None  # absolute path of the dumped audio, None if not found


@dataclass
class SetReport:
    """One scored set (``cls_<set>``)."""

    name: str
    metrics: dict[str, Any]
    errors: list[ErrorCase] = field(default_factory=list)
    n_errors_total: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def classification_type(self) -> str:
        return str(self.metrics.get("classification_type", DEFAULT_CLASSIFICATION_TYPE))

    @property
    def class_names(self) -> list[str]:
        return [str(r["class"]) for r in self.metrics.get("per_class", [])]


@dataclass
class Experiment:
    """Everything the report shows about one ``exp/cls_<tag>`` directory."""

    path: Path
    config: Optional[dict[str, Any]]
    config_text: Optional[str]
    history: list[dict[str, Any]]
    sets: list[SetReport]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _search_bases(exp_dir: Path, root: Optional[PathLike]) -> list[Path]:
    if root is not None:
        return [Path(root).resolve()]
    bases = [Path.cwd(), exp_dir.resolve().parent.parent]
    out: list[Path] = []
    for b in bases:
        if b not in out:
            out.append(b)
    return out


def resolve_path(p: PathLike, bases: Sequence[Path]) -> Optional[Path]:
    """An existing absolute path for ``p`` (absolute, or relative to one of ``bases``), else None."""
    p = Path(p)
    if p.is_absolute():
        return p if p.exists() else None
    for b in bases:
        cand = b / p
        if cand.exists():
            return cand.resolve()
    return None


def read_history(exp_dir: Path) -> list[dict[str, Any]]:
    """``train_history.json`` as a list of dicts ([] if missing); DataError if malformed."""
    path = exp_dir / "train_history.json"
    if not path.is_file():
        return []
    try:
        hist = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read: {e}", path) from None
    if not isinstance(hist, list) or not all(isinstance(e, dict) and "epoch" in e for e in hist):
        raise DataError("expected a list of per-epoch dicts with an 'epoch' key", path)
    return hist


def read_config(exp_dir: Path) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """``config.yaml`` as (dict, text), or (None, None) if missing."""
    import yaml

    path = exp_dir / "config.yaml"
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8")
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataError(f"not valid yaml: {e}", path) from None
    return (cfg if isinstance(cfg, dict) else None), text


def read_wav_scp(path: Path, bases: Sequence[Path]) -> dict[str, Optional[Path]]:
    """``uttid -> absolute audio path`` of a wav.scp; pipes and missing files map to None."""
    out: dict[str, Optional[Path]] = {}
    for key, value, _ in iter_kv(path):
        value = value.strip()
        if value.endswith("|") or " " in value:
            out[key] = None  # a Kaldi pipe or an ark offset: nothing a browser can play
            continue
        out[key] = resolve_path(value, bases)
    return out


def find_errors(
    utt_ids: Sequence[str],
    class_names: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: Optional[np.ndarray],
    classification_type: str,
    n: int,
    top_k: int = 5,
) -> tuple[list[ErrorCase], int]:
    """The ``n`` most confident wrong decisions and the total number of wrong clips.

    Multi-class: clips whose predicted class is not the reference, ranked by the predicted
    class's probability. Multi-label: clips whose predicted label set differs from the
    reference, ranked by the strongest mistake: max over false positives of ``p`` and over
    false negatives of ``1 - p``. Without scores (``output_all_probabilities=false``) the
    wrong clips come in utterance order.
    """
    t = np.asarray(y_true, bool)
    p = np.asarray(y_pred, bool)
    if classification_type == MULTI_CLASS:
        known = t.any(axis=1)
        wrong = known & (t.argmax(axis=1) != p.argmax(axis=1))
    else:
        wrong = (t != p).any(axis=1)
    idx = np.flatnonzero(wrong)
    conf: Optional[np.ndarray] = None
    if y_score is not None and len(idx):
        s = np.asarray(y_score, np.float64)[idx]
        if classification_type == MULTI_CLASS:
            conf = s[np.arange(len(idx)), p[idx].argmax(axis=1)]
        else:
            fp = np.where(p[idx] & ~t[idx], s, -np.inf).max(axis=1)
            fn = np.where(t[idx] & ~p[idx], 1.0 - s, -np.inf).max(axis=1)
            conf = np.maximum(fp, fn)
        order = np.argsort(-conf, kind="stable")
        idx, conf = idx[order], conf[order]
    cases = []
    for j, i in enumerate(idx[:n]):
        top: list[tuple[str, float]] = []
        if y_score is not None:
            row = np.asarray(y_score[i], np.float64)
            best = np.argsort(-row, kind="stable")[:top_k]
            top = [(class_names[k], float(row[k])) for k in best]
        cases.append(
            ErrorCase(
                utt_id=utt_ids[i],
                reference=[class_names[k] for k in np.flatnonzero(t[i])],
                predicted=[class_names[k] for k in np.flatnonzero(p[i])],
                confidence=None if conf is None else float(conf[j]),
                top=top,
            )
        )
    return cases, int(len(idx))


def _load_set(set_dir: Path, metrics: dict[str, Any], bases: Sequence[Path], n_errors: int) -> SetReport:
    from espnet_cls.scoring import load_scoring_inputs

    name = set_dir.name
    rep = SetReport(name=name, metrics=metrics)
    if n_errors <= 0:
        return rep
    files = metrics.get("files") or {}
    gt = resolve_path(files["gt_text"], bases) if files.get("gt_text") else None
    tok = resolve_path(files["token_list"], bases) if files.get("token_list") else None
    hyp, score = set_dir / "text", set_dir / "score"
    missing = [what for what, p in (("reference text", gt), ("token list", tok)) if p is None]
    missing += [str(p) for p in (hyp, score) if not p.is_file()]
    if missing:
        rep.notes.append(f"worst errors not shown: cannot find {', '.join(missing)}")
        logger.warning("%s: worst errors not shown: cannot find %s", set_dir, ", ".join(missing))
        return rep
    assert gt is not None and tok is not None
    inp = load_scoring_inputs(gt, hyp, score, tok, classification_type=rep.classification_type)
    rep.errors, rep.n_errors_total = find_errors(
        inp.utt_ids, inp.class_names, inp.y_true, inp.y_pred, inp.y_score, inp.classification_type, n_errors
    )
    if inp.y_score is None:
        rep.notes.append("scores hold only the predicted classes: errors are in utterance order, no top-5")
    wav_scp = gt.parent / "wav.scp"
    if wav_scp.is_file():
        audio = read_wav_scp(wav_scp, bases)
        for e in rep.errors:
            e.audio = audio.get(e.utt_id)
    else:
        rep.notes.append(f"no audio players: {wav_scp} not found")
    return rep


def load_experiment(exp_dir: PathLike, root: Optional[PathLike] = None, n_errors: int = 10) -> Experiment:
    """Read an experiment directory (see the module docstring); DataError if it is not one."""
    exp = Path(exp_dir)
    if not exp.is_dir():
        raise DataError("experiment directory not found", exp)
    bases = _search_bases(exp, root)
    config, config_text = read_config(exp)
    history = read_history(exp)
    sets: list[SetReport] = []
    for mpath in sorted(exp.glob("*/scoring/metrics.json"), key=lambda p: str(p).encode()):
        try:
            metrics = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read: {e}", mpath) from None
        if not isinstance(metrics, dict) or "per_class" not in metrics:
            raise DataError("not a score_cls.py metrics.json (no per_class)", mpath)
        sets.append(_load_set(mpath.parent.parent, metrics, bases, n_errors))
    notes = []
    if not history:
        notes.append("no train_history.json: no training curves")
    if not sets:
        notes.append("no */scoring/metrics.json: run stage 8 (scoring) for the metrics")
    if config is None and not history and not sets:
        raise DataError("nothing to report: no config.yaml, train_history.json or */scoring/metrics.json", exp)
    return Experiment(path=exp.resolve(), config=config, config_text=config_text, history=history, sets=sets, notes=notes)


def relative_url(target: Path, start_dir: Path) -> str:
    """A relative URL (forward slashes, percent-escaped) from ``start_dir`` to ``target``."""
    from urllib.parse import quote

    rel = os.path.relpath(target, start_dir)
    return quote(rel.replace(os.sep, "/"))
