"""Find and load ESPnet-trained cls1 models: exp dirs, packed zips, Hub repos in ESPnet's layout.

Layouts (what ESPnet writes):

- **exp dir** ``exp/cls_X/``: ``config.yaml`` (``token_list`` embedded) and weights
  ``valid.acc.best.pth`` / ``valid.acc.ave.pth`` / ``latest.pth`` / ``Nepoch.pth``
  (``torch.save(model.state_dict())``).
- **packed zip** (``espnet2.bin.pack cls``, ESPnet cls.sh stage 9, the espnet_model_zoo
  layout): ``meta.yaml`` whose ``yaml_files.classification_train_config`` and
  ``files.classification_model_file`` give paths inside the archive (``exp/.../config.yaml``,
  ``exp/.../valid.acc.best.pth``), plus ``--option`` files such as ``feats_stats.npz``.
- **Hub repo** (ESPnet's upload): the unpacked zip, i.e. a folder with that ``meta.yaml``.

:func:`load_espnet_model` returns our :class:`~espnet_cls.models.cls_model.CLSModel` built
from the converted config with ESPnet's weights mapped onto it (``weights_only=True``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
import yaml

from espnet_cls.espnet.config import EspnetModelError, convert_config
from espnet_cls.espnet.state_dict import is_espnet_state_dict, load_into, map_state_dict

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Weights tried in an ESPnet exp dir, in order (then the highest ``Nepoch.pth``).
ESPNET_MODEL_FILES = ("valid.acc.best.pth", "valid.acc.ave.pth", "valid.acc.ave_1best.pth", "valid.mAP.best.pth",
                      "valid.loss.best.pth", "valid.loss.ave.pth", "latest.pth")
META = "meta.yaml"
CONFIG_KEY = "classification_train_config"
MODEL_KEY = "classification_model_file"


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise EspnetModelError(f"cannot read: {e}", path) from None


def espnet_meta(meta: Any) -> bool:
    """True for an ESPnet pack ``meta.yaml`` dict of the cls task."""
    return isinstance(meta, Mapping) and CONFIG_KEY in (meta.get("yaml_files") or {})


def zip_is_espnet(path: PathLike) -> bool:
    """True when ``path`` is a zip packed by ESPnet's ``espnet2.bin.pack cls``."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            meta_name = next((n for n in names if n == META or n.endswith("/" + META) and n.count("/") == 1), None)
            if meta_name is None:
                return False
            return espnet_meta(yaml.safe_load(z.read(meta_name)))
    except (zipfile.BadZipFile, OSError, yaml.YAMLError):
        return False


def read_weights(path: PathLike) -> dict:
    """A state dict from a ``.pth`` (``torch.load(weights_only=True)``; a trainer checkpoint's ``model``)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure, with the path
        raise EspnetModelError(f"cannot read as a weights-only torch file: {str(e).splitlines()[0] if str(e) else type(e).__name__}", path) from None
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise EspnetModelError("not a state dict", path)
    return dict(state)


def exp_dir_weights(folder: Path) -> Optional[Path]:
    """The weights ESPnet's cls.sh would score with in an exp dir (None if none)."""
    for name in ESPNET_MODEL_FILES:
        if (folder / name).is_file():
            return folder / name
    epochs = sorted(folder.glob("*epoch.pth"), key=lambda p: int("".join(c for c in p.name if c.isdigit()) or 0))
    return epochs[-1] if epochs else None


def is_espnet_exp_dir(folder: PathLike, model_file: Optional[PathLike] = None) -> bool:
    """True for a folder with ``config.yaml`` whose weights have ESPnet's cls names."""
    folder = Path(folder)
    if not (folder / "config.yaml").is_file():
        return False
    weights = Path(model_file) if model_file is not None else exp_dir_weights(folder)
    return weights is not None and is_espnet_weights(weights)


def is_espnet_weights(weights: PathLike) -> bool:
    """True for a ``.pth`` state dict with ESPnet's cls names (read lazily, memory-mapped)."""
    weights = Path(weights)
    if not weights.is_file() or weights.suffix != ".pth":
        return False
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not ours to judge here; the normal loader reports it
        return False
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    return isinstance(state, Mapping) and is_espnet_state_dict(state)


def is_espnet_model(source: PathLike) -> bool:
    """True for an ESPnet exp dir, an ESPnet packed zip, or an unpacked one / Hub snapshot."""
    p = Path(source)
    if p.is_file():
        return p.suffix == ".zip" and zip_is_espnet(p)
    if p.is_dir():
        if (p / META).is_file():
            try:
                return espnet_meta(yaml.safe_load((p / META).read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError):
                return False
        return is_espnet_exp_dir(p)
    return False


def _safe_extract(archive: Path, outdir: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or "\x00" in name or (len(name) > 1 and name[1] == ":"):
                raise EspnetModelError(f"unsafe member {name!r} in the archive", archive)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise EspnetModelError(f"symbolic link {name!r} in the archive", archive)
        z.extractall(outdir)


def _resolve(value: Optional[str], roots: list) -> Optional[Path]:
    if not value:
        return None
    p = Path(value)
    if p.is_absolute():
        return p if p.exists() else None
    for r in roots:
        if (Path(r) / p).exists():
            return Path(r) / p
    return None


def _beats_conf(econf: dict, state: Mapping, roots: list, source: str) -> dict:
    """Resolve the BEATs architecture without re-reading pretrained weights (they come from ESPnet's .pth)."""
    from espnet_cls.models.beats.checkpoint import read_beats_checkpoint

    econf = dict(econf)
    ckpt = econf.get("beats_ckpt_path")
    merged: dict = {}
    if ckpt:
        found = _resolve(ckpt, roots)
        if found is None:
            raise EspnetModelError(
                f"encoder_conf.beats_ckpt_path {ckpt!r} not found (looked relative to {', '.join(map(str, roots))}): "
                "its cfg defines the BEATs architecture, as in ESPnet; put the checkpoint there", source)
        merged.update(read_beats_checkpoint(found)["cfg"])
    merged.update(econf.get("beats_config") or {})
    econf["beats_config"] = merged
    econf["beats_ckpt_path"] = None
    if econf.get("use_weighted_representation") and econf.get("max_layer") is None:
        # ESPnet: max_layer defaults to encoder_layers - 1 for the weighted sum
        n_layers = len({k.split(".")[3] for k in state if k.startswith("encoder.encoder.layers.")})
        econf["max_layer"] = n_layers - 1
    return econf


def build_from_espnet(config: Mapping[str, Any], state: Mapping, roots: list, source: str = "config.yaml"):
    """Our model (eval mode, ESPnet's weights loaded) and its config, from ESPnet's config + state dict."""
    from espnet_cls.tasks.cls import build_model

    if not is_espnet_state_dict(state):
        raise EspnetModelError("these weights are not an ESPnet cls model (no decoder.linear_out)", source)
    ours = convert_config(config, source)
    if ours["encoder"] == "beats":
        ours["encoder_conf"] = _beats_conf(ours["encoder_conf"], state, roots, source)
    try:
        model = build_model(ours, allow_missing_stats=True)
    except ValueError as e:
        raise EspnetModelError(f"cannot build the model of this ESPnet config: {e}", source) from None
    rel = ours["encoder"] == "conformer" and ours["encoder_conf"].get("pos_enc_layer_type") != "abs_pos"
    mapped = map_state_dict(state, ours["encoder"], rel_attn=rel)
    for k in ("normalize.mean", "normalize.std"):  # ESPnet keeps them float64 and casts to the input's dtype
        if k in mapped:
            mapped[k] = mapped[k].float()
    load_into(model, mapped, ours["encoder"], source)
    # what the rebuilt config needs to stand alone (global_mvn stats are in the weights)
    if ours.get("normalize") == "global_mvn":
        ours["normalize_conf"].pop("stats_file", None)
    return model.eval(), ours


def load_espnet_model(
    source: PathLike,
    model_file: Optional[PathLike] = None,
    device: Union[str, torch.device] = "cpu",
    config_file: Optional[PathLike] = None,
):
    """Load an ESPnet cls1 model -> ``(CLSModel in eval mode on device, our config dict)``.

    ``source``: an exp dir (``model_file`` default: :data:`ESPNET_MODEL_FILES`, then the last
    ``Nepoch.pth``), an ESPnet packed zip, a folder with ESPnet's ``meta.yaml`` (an unpacked
    zip or a Hub snapshot), or a ``config.yaml`` (with ``model_file``). ``config_file``
    overrides the config (as ESPnet's ``--classification_train_config``).
    """
    p = Path(source)
    if p.is_file() and p.suffix == ".zip":
        with tempfile.TemporaryDirectory(prefix="espnet_cls_espnet.") as tmp:
            _safe_extract(p, Path(tmp))
            return load_espnet_model(tmp, model_file, device, config_file)
    if p.is_file():  # a config.yaml
        config_path, folder, roots = p, p.parent, [Path.cwd(), p.parent.parent.parent, p.parent]
    elif (p / META).is_file():
        meta = _read_yaml(p / META)
        if not espnet_meta(meta):
            raise EspnetModelError("meta.yaml is not ESPnet's cls pack layout (no yaml_files.classification_train_config)", p / META)
        config_path = p / meta["yaml_files"][CONFIG_KEY]
        if model_file is None:
            rel = (meta.get("files") or {}).get(MODEL_KEY)
            if not rel:
                raise EspnetModelError(f"meta.yaml has no files.{MODEL_KEY}", p / META)
            model_file = p / rel
        folder, roots = config_path.parent, [p, Path.cwd()]
    elif p.is_dir():
        config_path, folder = p / "config.yaml", p
        roots = [Path.cwd(), p.parent.parent, p]
    else:
        raise EspnetModelError("no such ESPnet model (exp dir, packed zip or folder with meta.yaml)", p)
    if config_file is not None:
        config_path = Path(config_file)
    if not config_path.is_file():
        raise EspnetModelError("config.yaml not found", config_path)
    if model_file is None:
        model_file = exp_dir_weights(folder)
        if model_file is None:
            raise EspnetModelError(f"no weights in the exp dir (looked for {', '.join(ESPNET_MODEL_FILES)}, *epoch.pth)", folder)
    model_file = Path(model_file)
    if not model_file.is_file():
        raise EspnetModelError("model file not found", model_file)
    config = _read_yaml(config_path)
    state = read_weights(model_file)
    model, ours = build_from_espnet(config, state, roots, str(config_path))
    logger.info("loaded the ESPnet model %s (%s)", source, model_file)
    return model.to(device).eval(), ours




def convert_to_ours(source: PathLike, output_dir: PathLike, prefix: Optional[str] = None) -> dict:
    """Write an ESPnet model in our model-folder layout (what ``cls.sh --download_model`` scores):
    ``config.yaml`` (ours, self-contained), ``model.safetensors`` and ``token_list``.

    ``prefix``: how ``config.yaml`` names ``output_dir`` (default: as given). Returns
    ``{"config", "model_file", "inference_model"}``.
    """
    from safetensors.torch import save_file

    from espnet_cls.fileio import atomic_write

    model, config = load_espnet_model(source)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokens = list(model.token_list)
    with atomic_write(out / "token_list") as f:
        f.write("".join(t + "\n" for t in tokens))
    config = dict(config)
    config["token_list"] = str(Path(prefix if prefix is not None else str(output_dir)) / "token_list")
    config["converted_from_espnet"] = str(source)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = out / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, out / "model.safetensors")
    with atomic_write(out / "config.yaml") as f:
        yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
    logger.info("ESPnet model %s converted into %s", source, out)
    return {"config": str(out / "config.yaml"), "model_file": str(out / "model.safetensors"), "inference_model": "model.safetensors"}


__all__ = ["convert_to_ours", "load_espnet_model", "is_espnet_model", "is_espnet_exp_dir", "is_espnet_weights", "zip_is_espnet", "build_from_espnet", "ESPNET_MODEL_FILES"]
