"""Hugging Face Hub: upload a packed model with its model card (stage 10), download one.

Upload uses ``huggingface_hub.HfApi`` (``create_repo`` + ``upload_folder``): no git,
no git-lfs, no clone. The token is found by huggingface_hub itself (``HF_TOKEN`` or
``huggingface-cli login``); this module never reads it into a log line, and
:class:`TokenRedactingFilter` scrubs it from any record that would carry it anyway.

Download uses ``huggingface_hub.snapshot_download`` and lays the files out as a model
folder usable by stage 7 (``config.yaml`` + weights), see :func:`download`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import yaml

from espnet_cls.fileio import DataError, atomic_write
from espnet_cls.model_card import render_model_card
from espnet_cls.pack import CONFIG, META, WEIGHTS, load_state_dict, resolve_config_paths, sha256_file, unpack

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# file name of the PyTorch state_dict that download() writes for stage 7
INFERENCE_MODEL = "model.pth"


class TokenRedactingFilter(logging.Filter):
    """Replaces a secret (the Hub token) by ``***`` in every log record it sees."""

    def __init__(self, secret: Optional[str]):
        super().__init__()
        self.secret = secret or None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            msg = record.getMessage()
            if self.secret in msg:
                record.msg = msg.replace(self.secret, "***")
                record.args = ()
        return True


def install_token_filter() -> None:
    """Attach a :class:`TokenRedactingFilter` for huggingface_hub's token to every root handler."""
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:  # no token, or an old huggingface_hub: nothing to hide
        token = None
    if token:
        for h in logging.getLogger().handlers:
            h.addFilter(TokenRedactingFilter(token))


def _redact(text: str) -> str:
    """``text`` with huggingface_hub's token (if any) replaced by ``***``."""
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:
        token = None
    return text.replace(token, "***") if token else text


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return _redact(s.splitlines()[0] if s else type(e).__name__)[:300]


def stage_upload_folder(packed_model: PathLike, folder: PathLike, repo_id: str, **card_kwargs: Any) -> Path:
    """Unpack ``packed_model`` into ``folder`` and write its model card ``README.md`` there."""
    folder = Path(folder)
    unpack(packed_model, folder)
    card = render_model_card(folder, repo_id, **card_kwargs)
    with atomic_write(folder / "README.md") as f:
        f.write(card)
    return folder


def upload(
    packed_model: PathLike,
    repo_id: str,
    private: bool = False,
    api: Any = None,
    commit_message: str = "Upload espnet_cls model",
    revision: Optional[str] = None,
    datasets: Sequence[str] = (),
    license: str = "cc-by-4.0",
    creator: Optional[str] = None,
    language: Optional[Sequence[str]] = None,
) -> str:
    """Push the unpacked ``packed_model`` plus a generated ``README.md`` to ``repo_id``.

    ``api``: an object with ``HfApi``'s ``create_repo(repo_id, *, private, exist_ok,
    repo_type)`` and ``upload_folder(*, folder_path, repo_id, repo_type, commit_message,
    revision)`` (default: a real ``huggingface_hub.HfApi()``, which finds the token itself).
    Returns the repo URL. Failures raise :class:`DataError` with one line (never the token).
    """
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise DataError(f"--hf_repo must be 'user/name', got {repo_id!r}")
    if not os.path.isfile(packed_model):
        raise DataError("packed model not found (run stage 9 first)", packed_model)
    if api is None:
        from huggingface_hub import HfApi, get_token

        if not get_token():
            raise DataError("no Hugging Face token: set HF_TOKEN or run `huggingface-cli login` (or `hf auth login`)")
        api = HfApi()
    with tempfile.TemporaryDirectory(prefix="espnet_cls_upload.") as tmp:
        folder = stage_upload_folder(
            packed_model, Path(tmp) / "repo", repo_id, datasets=datasets, license=license, creator=creator, language=language
        )
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            logger.info("repo ready: %s", url)
            api.upload_folder(
                folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message, revision=revision
            )
        except DataError:
            raise
        except Exception as e:  # huggingface_hub's HTTP errors: one line, no token in it
            raise DataError(f"upload to {repo_id} failed: {type(e).__name__}: {_first_line(e)}") from None
    url = str(url or f"https://huggingface.co/{repo_id}")
    logger.info("uploaded %s to %s", packed_model, url)
    return url


def _find_model_root(snapshot: Path, tmp: Path) -> Path:
    """The folder holding ``config.yaml`` in a downloaded snapshot (unpacking a lone zip)."""
    if (snapshot / CONFIG).is_file():
        return snapshot
    zips = sorted(snapshot.glob("*.zip"))
    if len(zips) == 1:
        unpack(zips[0], tmp)
        return tmp
    configs = sorted(snapshot.glob("**/config.yaml"))
    if len(configs) == 1:
        return configs[0].parent
    raise DataError(f"cannot find the model in {snapshot}: no config.yaml at its root, no single .zip, {len(configs)} config.yaml files")


def _espnet_zip(path: str) -> bool:
    from espnet_cls.espnet import zip_is_espnet

    return zip_is_espnet(path)


def download(
    repo_id: str,
    output_dir: PathLike,
    revision: Optional[str] = None,
    snapshot_download: Optional[Callable[..., str]] = None,
    write_pth: bool = False,
) -> dict:
    """Fetch ``repo_id`` (a Hub repo, or a local packed ``.zip``/folder) into ``output_dir``.

    The result is a model folder as stage 7 wants it: ``config.yaml`` (file paths in it
    rewritten to ``<output_dir>/<name>``, with ``output_dir`` as given, like ESPnet's
    unpack), ``model.safetensors`` (which ``load_model``/stage 7 read directly),
    ``token_list``, ``feats_stats.npz`` if used, and with ``write_pth`` also
    :data:`INFERENCE_MODEL` (``model.pth``, a plain state_dict, for tools that want a
    ``.pth``). Returns ``{"config": path, "model_file": path, "inference_model": file name,
    "source": snapshot folder}``.
    """
    out = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="espnet_cls_download.") as tmp:
        tmp = Path(tmp)
        if os.path.isfile(repo_id) and repo_id.endswith(".zip") and _espnet_zip(repo_id):
            snapshot = Path(repo_id)
        elif os.path.isfile(repo_id) and repo_id.endswith(".zip"):
            unpack(repo_id, tmp / "unpacked")
            snapshot = tmp / "unpacked"
        elif os.path.isdir(repo_id):
            snapshot = Path(repo_id)
        else:
            if snapshot_download is None:
                from huggingface_hub import snapshot_download
            try:
                snapshot = Path(snapshot_download(repo_id=repo_id, revision=revision))
            except Exception as e:
                raise DataError(f"cannot download {repo_id}: {type(e).__name__}: {_first_line(e)}") from None
        from espnet_cls import espnet

        if espnet.is_espnet_model(snapshot):  # a model trained by real ESPnet: convert it to our layout
            info = espnet.convert_to_ours(snapshot, out, prefix=str(output_dir))
            return {**info, "source": str(snapshot)}
        root = _find_model_root(snapshot, tmp / "from_zip")
        meta = yaml.safe_load((root / META).read_text(encoding="utf-8")) if (root / META).is_file() else {}
        for name, digest in (meta.get("sha256") or {}).items():
            p = root / name
            if not p.is_file() or sha256_file(p) != digest:
                raise DataError(f"downloaded file {name!r} is missing or does not match meta.yaml's sha256", str(root))
        out.mkdir(parents=True, exist_ok=True)
        for src in sorted(root.rglob("*")):
            if src.is_dir() or src.name.startswith(".") or ".cache" in src.relative_to(root).parts:
                continue
            dest = out / src.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as fi, atomic_write(dest, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
        source = str(snapshot)
    config = yaml.safe_load((out / CONFIG).read_text(encoding="utf-8")) or {}
    config = resolve_config_paths(config, out, meta or None, prefix=str(output_dir))
    with atomic_write(out / CONFIG) as f:
        yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
    weights = out / WEIGHTS
    if not weights.is_file():
        pths = sorted(out.glob("*.pth"))
        if not pths:
            raise DataError(f"no {WEIGHTS} or .pth weights in the downloaded model", str(out))
        weights = pths[0]
    model_file = weights
    if write_pth and weights.suffix != ".pth":
        import torch

        sd = load_state_dict(weights)
        with atomic_write(out / INFERENCE_MODEL, "wb") as f:
            torch.save(sd, f)
        model_file = out / INFERENCE_MODEL
    logger.info("model from %s laid out in %s (config %s, weights %s)", repo_id, out, out / CONFIG, model_file)
    return {"config": str(out / CONFIG), "model_file": str(model_file), "inference_model": model_file.name, "source": source}
