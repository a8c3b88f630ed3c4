"""The Hugging Face model card (``README.md``) of a packed model (stage 10).

:func:`render_model_card` reads an unpacked archive (``config.yaml``, ``meta.yaml``,
``RESULTS.md``, ``metrics/<set>.json``) and returns Markdown with YAML front matter:
``tags`` (``espnet_cls``, ``audio-classification`` …), ``library_name``,
``pipeline_tag``, ``datasets``, ``license`` and a ``model-index`` whose metrics come from
the per-set ``metrics.json`` files (or, if there are none, the tables of ``RESULTS.md``).
The body says how to use the model with this package and shows the config.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import yaml

from espnet_cls.contract import TokenList, model_facts

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# metrics.json / RESULTS.md column names -> (model-index type, display name)
_METRIC_TYPES = {
    "map": ("mAP", "mAP"),
    "mean_ap": ("mAP", "mAP"),
    "acc": ("accuracy", "Accuracy"),
    "accuracy": ("accuracy", "Accuracy"),
    "top1_accuracy": ("accuracy", "Top-1 accuracy"),
    "top1_acc": ("accuracy", "Top-1 hit rate"),
    "top1_hit_rate": ("accuracy", "Top-1 hit rate"),
    "subset_acc": ("accuracy", "Subset accuracy"),
    "subset_accuracy": ("accuracy", "Subset accuracy"),
    "roc_auc": ("roc_auc", "ROC AUC"),
    "mean_roc_auc": ("roc_auc", "ROC AUC"),
    "mean_auc": ("roc_auc", "ROC AUC"),
    "auc": ("roc_auc", "ROC AUC"),
    "d_prime": ("d_prime", "d-prime"),
    "dprime": ("d_prime", "d-prime"),
    "micro_f1": ("f1", "Micro F1"),
    "f1_micro": ("f1", "Micro F1"),
    "macro_f1": ("f1", "Macro F1"),
    "f1_macro": ("f1", "Macro F1"),
}

CITATION = """@inproceedings{watanabe2018espnet,
  author={Shinji Watanabe and Takaaki Hori and Shigeki Karita and Tomoki Hayashi and Jiro Nishitoba and Yuya Unno and Nelson Yalta and Jahn Heymann and Matthew Wiesner and Nanxin Chen and Adithya Renduchintala and Tsubasa Ochiai},
  title={{ESPnet}: End-to-End Speech Processing Toolkit},
  year={2018},
  booktitle={Proceedings of Interspeech},
  pages={2207--2211},
  doi={10.21437/Interspeech.2018-1456},
}"""


def _norm_key(k: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", k.strip().lower()).strip("_")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def metrics_from_json(obj: Any) -> dict[str, float]:
    """The scalar summary metrics of one set's ``metrics.json`` (by their original keys).

    Looks at top-level numbers and at numbers one level down under ``metrics``,
    ``summary`` or ``overall``; per-class tables and counts are ignored.
    """
    out: dict[str, float] = {}
    if not isinstance(obj, dict):
        return out
    scopes = [obj] + [obj[k] for k in ("metrics", "summary", "overall") if isinstance(obj.get(k), dict)]
    for scope in scopes:
        for k, v in scope.items():
            if _is_number(v) and _norm_key(k) in _METRIC_TYPES:
                out.setdefault(k, float(v))
    return out


def collect_metrics(model_dir: PathLike) -> dict[str, dict[str, float]]:
    """``{set: {metric: value}}`` from the ``metrics/<set>.json`` that stage 9 packs (the
    scorer's own ``scoring/metrics.json``); none: ``{}`` (RESULTS.md is shown as text, never parsed)."""
    model_dir = Path(model_dir)
    out: dict[str, dict[str, float]] = {}
    for mj in sorted((model_dir / "metrics").glob("*.json")):  # metrics/<set>.json written by pack
        try:
            m = metrics_from_json(json.loads(mj.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            logger.warning("skipping unreadable %s: %s", mj, e)
            continue
        if m:
            out[mj.stem] = m
    return out


def model_index(repo_id: str, metrics: dict[str, dict[str, float]], dataset: Optional[str]) -> list[dict]:
    """The ``model-index`` front-matter entry (Hugging Face's evaluation-results schema)."""
    results = []
    for set_name, ms in metrics.items():
        entries = []
        for k, v in ms.items():
            mtype, mname = _METRIC_TYPES[_norm_key(k)]
            entries.append({"type": mtype, "value": round(float(v), 6), "name": f"{mname} ({k})" if mname.lower() != k.lower() else mname})
        results.append(
            {
                "task": {"type": "audio-classification", "name": "Audio Classification"},
                "dataset": {"name": f"{dataset or 'data'} ({set_name})", "type": dataset or "custom", "split": set_name},
                "metrics": entries,
            }
        )
    return [{"name": repo_id, "results": results}] if results else []


def render_model_card(
    model_dir: PathLike,
    repo_id: str,
    datasets: Sequence[str] = (),
    license: str = "cc-by-4.0",
    creator: Optional[str] = None,
    language: Optional[Sequence[str]] = None,
    extra_tags: Sequence[str] = (),
) -> str:
    """Markdown (with YAML front matter) for the unpacked model in ``model_dir``.

    ``repo_id``: ``user/name`` on the Hub; ``datasets``: Hub dataset ids or corpus names
    (the first also names the ``model-index`` datasets); ``creator``: who trained it.
    """
    model_dir = Path(model_dir)
    config = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    meta_p = model_dir / "meta.yaml"
    meta = (yaml.safe_load(meta_p.read_text(encoding="utf-8")) or {}) if meta_p.is_file() else {}
    results_p = model_dir / "RESULTS.md"
    results = results_p.read_text(encoding="utf-8").strip() if results_p.is_file() else ""
    metrics = collect_metrics(model_dir)

    facts = model_facts(config)
    ctype = facts.classification_type
    token_list = [str(t) for t in (config.get("token_list") or [])]
    classes = TokenList.from_tokens(token_list).classes if token_list else []
    encoder = config.get("encoder") or "?"
    frontend = config.get("frontend") or "default"

    front: dict[str, Any] = {
        "tags": ["espnet_cls", "espnet", "audio", "audio-classification", ctype, *extra_tags],
        "library_name": "espnet_cls",
        "pipeline_tag": "audio-classification",
    }
    if language:
        front["language"] = list(language)
    if datasets:
        front["datasets"] = list(datasets)
    front["license"] = license
    mi = model_index(repo_id, metrics, datasets[0] if datasets else None)
    if mi:
        front["model-index"] = mi

    by = f" by {creator}" if creator else ""
    on = f" on {', '.join(datasets)}" if datasets else ""
    fs = str(facts.fs) if facts.frontend is not None or (config.get("frontend_conf") or {}).get("fs") else ""
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# `{repo_id}`",
        "",
        f"A {ctype} audio classification model ({len(classes)} classes, `{encoder}` encoder, `{frontend}` frontend"
        + (f", {fs} Hz input" if fs and fs.isdigit() else (f", fs={fs}" if fs else ""))
        + f") trained{by} with the ESPnet-style `cls1` recipe of `espnet_cls`{on}.",
        "",
        "## How to use",
        "",
        "With the `espnet_cls` package installed (`pip install -e .` in its repository):",
        "",
        "```python",
        "from espnet_cls import Classifier",
        "",
        f'clf = Classifier.from_pretrained("{repo_id}")',
        'print(clf("clip.wav"))                     # labels with probabilities',
        'print(clf.predict_files(["a.wav", "b.flac"], batch_size=8))',
        "```",
        "",
        "From the shell:",
        "",
        "```sh",
        f"espnet-cls-classify {repo_id} clip.wav --top_k 5",
        f"python -m espnet_cls.bin.export {repo_id} --format onnx --output model.onnx",
        "```",
        "",
        "In the recipe (inference and scoring on your own data, no training):",
        "",
        "```sh",
        f"./run.sh --skip_data_prep false --skip_train true --download_model {repo_id}",
        "```",
        "",
        "Audio of any sample rate and channel count is accepted: it is downmixed to mono and"
        + (f" resampled to {fs} Hz" if fs else " resampled to the model's rate")
        + " as in stage 2 of the recipe.",
        "",
    ]
    if classes:
        lines += ["## Classes", ""]
        if len(classes) <= 60:
            lines += [", ".join(f"`{c}`" for c in classes), ""]
        else:
            lines += [f"{len(classes)} classes; see `token_list` (class index = line number).", ""]
    if results:  # RESULTS.md's own headings go two levels down, under "## Results"
        demoted = "\n".join("##" + ln if re.match(r"#+ ", ln) else ln for ln in results.splitlines())
        lines += ["## Results", "", demoted, ""]
    elif metrics:
        lines += ["## Results", ""]
        for set_name, ms in metrics.items():
            lines.append(f"- **{set_name}**: " + ", ".join(f"{k} = {v:.4f}" for k, v in ms.items()))
        lines.append("")
    files = sorted((meta.get("sha256") or {}).keys())
    if files:
        lines += ["## Files", "", *[f"- `{f}`" for f in files], ""]
    if meta:
        vers = ", ".join(f"{k} {meta[k]}" for k in ("espnet_cls", "torch", "python") if k in meta)
        lines += [f"Packed {meta.get('created', '')} with {vers}.".replace("Packed  with", "Packed with"), ""]
    shown = dict(config)
    if len(token_list) > 60:
        shown["token_list"] = token_list[:10] + [f"... ({len(token_list)} entries, see token_list)"]
    lines += [
        "## Training config",
        "",
        "<details><summary>config.yaml</summary>",
        "",
        "```yaml",
        yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
        "</details>",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def split_front_matter(card: str) -> tuple[dict, str]:
    """``(front_matter_dict, body)`` of a model card (for tests and checks)."""
    if not card.startswith("---\n"):
        return {}, card
    end = card.index("\n---\n", 4)
    return yaml.safe_load(card[4:end]) or {}, card[end + 5 :]
