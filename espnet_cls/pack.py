"""Packing a trained model into one self-contained zip, and unpacking it safely (stage 9).

The archive is flat; every path inside it is relative to its root::

    meta.yaml          what is inside: file roles, sha256 of every member, versions, time
    config.yaml        the training config, paths rewritten to point inside the archive
                       (``normalize_conf.stats_file: feats_stats.npz``), ``token_list`` inline
    model.safetensors  the weights (converted from the ``.pth`` state_dict)
    token_list         one class per line (from the config's list)
    feats_stats.npz    global-MVN statistics, when the config uses them
    RESULTS.md         scores (from ``--option``)
    metrics/<set>.json per-set ``scoring/metrics.json`` found beside the config
    images/…           training curves (from ``--option exp/cls_X/images``)

Unlike ESPnet's ``espnet2.bin.pack``, weights are stored as safetensors (no pickle), the
archive is written atomically, and :func:`unpack` refuses members that would land
outside the target folder (absolute paths, ``..``, symlinks: "zip-slip").
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import platform
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import yaml

from espnet_cls.fileio import DataError, atomic_write, read_lines

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

META = "meta.yaml"
CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"
TOKEN_LIST = "token_list"
FEATS_STATS = "feats_stats.npz"
RESULTS = "RESULTS.md"
IMAGES = "images"
METRICS_DIR = "metrics"
FORMAT_NAME = "espnet_cls.packed_model"
FORMAT_VERSION = 1
# Refuse to unpack more than this many bytes (a "zip bomb" guard); generous for any model.
MAX_UNPACKED_BYTES = 64 * 1024**3


# --------------------------------------------------------------------------- weights


def load_state_dict(path: PathLike) -> dict:
    """Read a state_dict (name -> tensor) from a ``.safetensors`` file or a ``.pth`` file.

    See :func:`espnet_cls.weights.read_state_dict` (``torch.load(weights_only=True)``;
    a training checkpoint gives its ``model`` entry; bad files are a :class:`DataError`).
    """
    from espnet_cls.weights import read_state_dict

    return read_state_dict(path)


def save_safetensors(state_dict: Mapping[str, Any], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``state_dict`` as safetensors, atomically.

    Tensors are moved to CPU and made contiguous; tensors that share storage (tied
    weights) are cloned, since safetensors refuses shared memory.
    """
    from safetensors.torch import save

    seen: set = set()
    tensors = {}
    for k, v in state_dict.items():
        t = v.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        whole = t.untyped_storage().nbytes() == t.numel() * t.element_size()
        if (t.numel() and ptr in seen) or not whole:  # shared or a view into a larger buffer
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        tensors[k] = t
    blob = save(tensors, metadata=dict(metadata or {}))
    with atomic_write(path, "wb") as f:
        f.write(blob)


# --------------------------------------------------------------------------- helpers


def sha256_file(path: PathLike, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions recorded in ``meta.yaml``: espnet_cls, torch, python (and numpy, safetensors)."""
    import numpy
    import safetensors
    import torch

    import espnet_cls

    return {
        "espnet_cls": espnet_cls.__version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "numpy": str(numpy.__version__),
        "safetensors": str(safetensors.__version__),
    }


def _read_yaml(path: PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = yaml.safe_load(f)
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror}", path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(e, 'problem', e)}", path, None if mark is None else mark.line + 1) from None
    if not isinstance(obj, dict):
        raise DataError("expected a YAML mapping at top level", path)
    return obj


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _rewrite_strings(obj: Any, fn) -> Any:
    """Apply ``fn`` to every string leaf of a nested dict/list structure."""
    if isinstance(obj, dict):
        return {k: _rewrite_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewrite_strings(v, fn) for v in obj]
    if isinstance(obj, str):
        return fn(obj)
    return obj


def _option_name(path: str) -> str:
    """Where an ``--option`` file or folder goes inside the archive: its base name
    (``exp/cls_X/images`` -> ``images/…``, ``exp/cls_stats_16k/train/feats_stats.npz`` -> ``feats_stats.npz``)."""
    return os.path.basename(os.path.normpath(path))


# --------------------------------------------------------------------------- pack


def _self_contained_encoder_conf(config: dict, config_path: str) -> None:
    """Replace ``encoder_conf`` by the encoder class's ``inference_conf(encoder_conf)``, if it
    has one (BEATs: checkpoint cfg merged into ``beats_config``, ``beats_ckpt_path: null``)."""
    name = config.get("encoder")
    if not name:
        return
    try:
        from espnet_cls.models.encoders import get_encoder_class

        enc_cls = get_encoder_class(name)
    except (ImportError, ValueError, KeyError):
        return
    hook = getattr(enc_cls, "inference_conf", None)
    if not callable(hook):
        return
    before = dict(config.get("encoder_conf") or {})
    try:
        config["encoder_conf"] = hook(before)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"encoder_conf of {name!r} cannot be made self-contained: {str(e).splitlines()[0]}", config_path) from None
    if config["encoder_conf"] != before:
        logger.info("encoder_conf made self-contained for packing (%s.inference_conf)", enc_cls.__name__)


def pack(
    config_path: PathLike,
    model_file: PathLike,
    outpath: PathLike,
    options: Sequence[PathLike] = (),
    include_metrics: bool = True,
) -> dict:
    """Write the packed model ``outpath`` (a ``.zip``) and return its ``meta.yaml`` dict.

    ``config_path``: the experiment's ``config.yaml``; ``model_file``: a ``.pth`` state_dict
    (or ``.safetensors``); ``options``: extra files/folders (``feats_stats.npz``,
    ``RESULTS.md``, ``images/``, ``token_list`` …) stored under their base names.
    With ``include_metrics``, every ``<expdir>/cls_<set>/scoring/metrics.json`` beside the
    config is stored as ``metrics/<set>.json`` (for the model card).
    Missing inputs raise :class:`DataError`. The zip appears only when complete.
    """
    config_path, model_file, outpath = str(config_path), str(model_file), str(outpath)
    if not outpath.endswith(".zip"):
        raise DataError("only .zip archives are written (give --outpath ending in .zip)", outpath)
    config = _read_yaml(config_path)
    state_dict = load_state_dict(model_file)

    # name in archive -> source path (files only; folders expanded below)
    members: dict[str, str] = {}
    source_of_name: dict[str, str] = {}

    def add(name: str, src: str) -> None:
        if name in members and not _same_file(members[name], src):
            raise DataError(f"two inputs want the same name {name!r} in the archive: {members[name]} and {src}", src)
        members[name] = src

    for opt in options:
        opt = str(opt)
        if not os.path.exists(opt):
            raise DataError("--option path not found", opt)
        name = _option_name(opt)
        if name in (CONFIG, WEIGHTS, META):
            raise DataError(f"--option may not replace the archive's own {name}", opt)
        source_of_name[name] = opt
        if os.path.isdir(opt):
            for root, dirs, files in os.walk(opt):
                dirs.sort()
                for fn in sorted(files):
                    src = os.path.join(root, fn)
                    if os.path.islink(src):
                        continue
                    rel = os.path.relpath(src, opt).replace(os.sep, "/")
                    add(f"{name}/{rel}", src)
        else:
            add(name, opt)

    # token_list: inline list in the packed config, plus a plain file
    tl = config.get("token_list")
    if isinstance(tl, str):
        if not os.path.isfile(tl):
            raise DataError(f"config's token_list file not found: {tl}", config_path)
        config["token_list"] = read_lines(tl)
    elif not isinstance(tl, list) or not tl:
        raise DataError("config has no token_list", config_path)
    token_list = [str(t) for t in config["token_list"]]
    if TOKEN_LIST in members:
        given = read_lines(members[TOKEN_LIST])
        if given != token_list:
            logger.warning("--option %s differs from the config's token_list; packing the config's list", members[TOKEN_LIST])
        del members[TOKEN_LIST]

    # feature statistics used by global_mvn
    nconf = config.get("normalize_conf")
    needs_stats = str(config.get("normalize") or "").lower() == "global_mvn"
    if isinstance(nconf, dict) and nconf.get("stats_file"):
        sf = str(nconf["stats_file"])
        if not os.path.isfile(sf):
            if FEATS_STATS in members:
                logger.warning("normalize_conf.stats_file %s not found; using --option %s", sf, members[FEATS_STATS])
                sf = members[FEATS_STATS]
            elif needs_stats:
                raise DataError(f"normalize_conf.stats_file not found: {sf} (pass it with --option)", config_path)
            else:
                logger.info("normalize is %s: the missing normalize_conf.stats_file %s is not packed", config.get("normalize"), sf)
                sf = ""
        if FEATS_STATS in members and not _same_file(members[FEATS_STATS], sf):
            if sha256_file(members[FEATS_STATS]) != sha256_file(sf):
                logger.warning("--option %s differs from normalize_conf.stats_file %s; packing the config's", members[FEATS_STATS], sf)
        if sf:
            members[FEATS_STATS] = sf
            source_of_name[FEATS_STATS] = sf

    # per-set metrics.json beside the config (exp/cls_X/cls_<set>/scoring/metrics.json)
    if include_metrics:
        expdir = Path(config_path).resolve().parent
        for mj in sorted(expdir.glob("cls_*/scoring/metrics.json")):
            set_name = mj.parent.parent.name[len("cls_"):]
            add(f"{METRICS_DIR}/{set_name}.json", str(mj))

    # encoders that read a file at build time (BEATs' pre-trained checkpoint) get a conf that
    # rebuilds the same architecture without it: the packed weights replace the file's
    _self_contained_encoder_conf(config, config_path)

    # rewrite any config string naming a packed file to its name inside the archive
    def rewrite(s: str) -> str:
        for name, src in source_of_name.items():
            if s == src or (os.path.exists(s) and _same_file(s, src)):
                return name
        return s

    config = _rewrite_strings(config, rewrite)
    if isinstance(config.get("normalize_conf"), dict) and config["normalize_conf"].get("stats_file") and FEATS_STATS in members:
        config["normalize_conf"]["stats_file"] = FEATS_STATS
    for key in ("init_param",):  # training-time initialisation: the packed weights replace it
        if config.get(key):
            logger.info("dropping %s=%r from the packed config (the packed weights replace it)", key, config[key])
            config[key] = []
    def warn_outside(s: str) -> str:
        if os.path.isabs(s) and os.path.exists(s):
            logger.warning("packed config still refers to a file outside the archive: %s", s)
        return s

    _rewrite_strings(config, warn_outside)

    ver = versions()
    now = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix=".pack.", dir=os.path.dirname(os.path.abspath(outpath))) as tmp:
        wpath = os.path.join(tmp, WEIGHTS)
        save_safetensors(state_dict, wpath, {"format": "pt", "espnet_cls": ver["espnet_cls"], "source": os.path.basename(model_file)})
        cpath = os.path.join(tmp, CONFIG)
        with open(cpath, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
        tpath = os.path.join(tmp, TOKEN_LIST)
        with open(tpath, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in token_list))
        members[CONFIG] = cpath
        members[WEIGHTS] = wpath
        members[TOKEN_LIST] = tpath

        names = sorted(members)
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "files": {
                "config": CONFIG,
                "model": WEIGHTS,
                "token_list": TOKEN_LIST,
                **({"feats_stats": FEATS_STATS} if FEATS_STATS in members else {}),
                **({"results": RESULTS} if RESULTS in members else {}),
            },
            "source": {
                "classification_train_config": config_path,
                "classification_model_file": model_file,
                "model_name": os.path.basename(model_file),
            },
            "classification_type": (config.get("model_conf") or {}).get("classification_type"),
            "timestamp": now.timestamp(),
            "created": now.isoformat(timespec="seconds"),
            **ver,
            "sha256": {n: sha256_file(members[n]) for n in names},
        }
        with atomic_write(outpath, "wb") as raw:
            with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(META, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
                for n in names:
                    comp = zipfile.ZIP_STORED if n.endswith((".safetensors", ".png", ".npz")) else zipfile.ZIP_DEFLATED
                    zf.write(members[n], n, compress_type=comp)
    logger.info("packed %d files into %s", len(names) + 1, outpath)
    return meta


# --------------------------------------------------------------------------- unpack

_DRIVE = re.compile(r"^[A-Za-z]:")


def check_member(info: zipfile.ZipInfo, archive: PathLike) -> str:
    """Return the member's safe relative name, or raise :class:`DataError` naming it.

    Refused: absolute paths, Windows drive letters or backslashes, ``..`` components,
    NUL bytes, and symbolic links (any of which could write outside the target folder).
    """
    name = info.filename
    why = None
    if "\x00" in name:
        why = "contains a NUL byte"
    elif name.startswith(("/", "\\")) or _DRIVE.match(name):
        why = "is an absolute path"
    elif "\\" in name:
        why = "contains a backslash"
    elif any(part == ".." for part in name.split("/")):
        why = "contains '..'"
    elif stat.S_ISLNK(info.external_attr >> 16):
        why = "is a symbolic link"
    if why:
        raise DataError(f"refusing to unpack unsafe archive member {name!r}: it {why}", archive)
    return name


def read_meta(archive: PathLike) -> dict:
    """``meta.yaml`` of a packed zip (without extracting it)."""
    archive = str(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            if META not in zf.namelist():
                raise DataError(f"not an espnet_cls packed model: no {META}", archive)
            meta = yaml.safe_load(zf.read(META))
    except zipfile.BadZipFile as e:
        raise DataError(f"not a zip file: {e}", archive) from None
    if not isinstance(meta, dict):
        raise DataError(f"{META} is not a mapping", archive)
    return meta


def unpack(archive: PathLike, outdir: PathLike, path_prefix: Optional[str] = None, verify: bool = True) -> dict:
    """Extract a packed zip into ``outdir`` and return its ``meta.yaml`` dict.

    Every member is checked first (:func:`check_member`); one unsafe member rejects
    the whole archive before anything is written. With ``verify``, each file's sha256
    is checked against ``meta.yaml``. With ``path_prefix`` (e.g. ``"exp/my_model"``),
    the extracted ``config.yaml``'s archive-relative paths are rewritten to
    ``<path_prefix>/<name>`` (as ESPnet's unpack does), so tools that open paths
    relative to the working directory find them; otherwise they stay archive-relative.
    """
    archive, outdir = str(archive), str(outdir)
    if not os.path.isfile(archive):
        raise DataError("packed model not found", archive)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise DataError(f"not a zip file: {e}", archive) from None
    with zf:
        infos = zf.infolist()
        names = [check_member(i, archive) for i in infos]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"archive member {dup!r} occurs twice", archive)
        total = sum(i.file_size for i in infos)
        if total > MAX_UNPACKED_BYTES:
            raise DataError(f"archive would unpack to {total} bytes, over the {MAX_UNPACKED_BYTES} limit", archive)
        if META not in names:
            raise DataError(f"not an espnet_cls packed model: no {META}", archive)
        meta = yaml.safe_load(zf.read(META))
        if not isinstance(meta, dict):
            raise DataError(f"{META} is not a mapping", archive)
        root = Path(outdir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for info in infos:
            dest = (root / info.filename).resolve()
            if root != dest and root not in dest.parents:  # belt and braces after check_member
                raise DataError(f"refusing to unpack archive member {info.filename!r}: it leaves {outdir}", archive)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, atomic_write(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    if verify:
        for name, digest in (meta.get("sha256") or {}).items():
            p = Path(outdir) / name
            if not p.is_file():
                raise DataError(f"member {name!r} listed in {META} is missing", archive)
            if sha256_file(p) != digest:
                raise DataError(f"member {name!r} does not match its sha256 in {META} (corrupt archive?)", archive)
    if path_prefix is not None:
        cfg_path = Path(outdir) / CONFIG
        cfg = resolve_config_paths(_read_yaml(cfg_path), Path(outdir), meta, prefix=path_prefix)
        with atomic_write(cfg_path) as f:
            yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    logger.info("unpacked %s into %s", archive, outdir)
    return meta


def packed_file_names(model_dir: PathLike, meta: Optional[Mapping] = None) -> set:
    """Names of the files of an unpacked model folder (from ``meta.yaml`` or a listing)."""
    if meta and meta.get("sha256"):
        return set(meta["sha256"])
    out = set()
    for root, _dirs, files in os.walk(model_dir):
        for fn in files:
            out.add(os.path.relpath(os.path.join(root, fn), model_dir).replace(os.sep, "/"))
    return out


def resolve_config_paths(config: dict, model_dir: PathLike, meta: Optional[Mapping] = None, prefix: Optional[str] = None) -> dict:
    """Rewrite archive-relative file names in ``config`` to ``<prefix or model_dir>/<name>``.

    Only strings that name a file of the packed model are touched (e.g.
    ``normalize_conf.stats_file: feats_stats.npz``); everything else is kept.
    """
    names = packed_file_names(model_dir, meta)
    base = str(model_dir) if prefix is None else prefix

    def fn(s: str) -> str:
        return os.path.join(base, s) if s in names and s not in (CONFIG, META) else s

    return _rewrite_strings(config, fn)


def load_packed_config(model_dir: PathLike) -> tuple[dict, dict]:
    """``(config, meta)`` of an unpacked model folder, with config paths made absolute.

    ``meta`` is ``{}`` when the folder has no ``meta.yaml`` (e.g. a plain exp dir).
    """
    model_dir = Path(model_dir).resolve()
    meta = _read_yaml(model_dir / META) if (model_dir / META).is_file() else {}
    config = _read_yaml(model_dir / CONFIG)
    return resolve_config_paths(config, model_dir, meta), meta


def iter_members(archive: PathLike) -> Iterable[str]:
    """Names inside a packed zip (for listings/tests)."""
    with zipfile.ZipFile(str(archive)) as zf:
        return list(zf.namelist())
