"""Training data: reading dump dirs (``wav.scp`` + ``text``), labels → ids, collate.

``ClsDataset(data_path_and_name_and_type, token_list)`` takes ESPnet's
``path,name,type`` triples, e.g. ``dump/train/wav.scp,speech,sound`` and
``dump/train/text,label,text``, and serves ``dataset[key] -> (key, {"speech":
float32 [T], "label": int64 [L]})``.

* ``sound``: a Kaldi ``wav.scp`` entry — an audio file (read with soundfile, downmixed to
  mono) or a pipe ``cmd … |`` whose stdout is an audio file.
* ``text``: the clip's labels, space separated, mapped to token-list indices; a word
  missing from the token list maps to ``<unk>``; ``<blank>`` means "no label" and gives
  an empty label array (multi-label clips without labels train with all-zero targets).

:func:`collate` pads ``speech`` with 0.0 and ``label`` with −1 (ESPnet's
``CommonCollateFn``) and adds ``speech_lengths`` / ``label_lengths``.
"""

from __future__ import annotations

import io
import subprocess
from typing import Optional, Sequence

import numpy as np
import soundfile
import torch

from espnet_cls.contract import BLANK, UNK
from espnet_cls.fileio import DataError, read_kv


def parse_triple(spec: str) -> tuple[str, str, str]:
    """``"path,name,type"`` → ``(path, name, type)``; the path may itself contain commas."""
    parts = spec.rsplit(",", 2)
    if len(parts) != 3:
        raise DataError(f"expected PATH,NAME,TYPE, got {spec!r}")
    return parts[0], parts[1], parts[2]


def read_audio(value: str, path: Optional[str] = None, line: Optional[int] = None) -> np.ndarray:
    """Read one ``wav.scp`` value (file path or ``cmd |`` pipe) → mono float32 samples."""
    from espnet_cls.audio import AudioError, is_ark, read_entry, to_mono

    if is_ark(value):  # stage 2 with --audio_format flac.ark / wav.ark
        try:
            x, _ = read_entry(value)
        except AudioError as e:
            raise DataError(str(e), path, line) from None
        return to_mono(x)
    try:
        if value.endswith("|"):
            proc = subprocess.run(value[:-1], shell=True, capture_output=True, check=False)
            if proc.returncode != 0:
                raise DataError(f"pipe failed ({proc.returncode}): {value!r}: {proc.stderr.decode(errors='replace')[-200:]}",
                                path, line)
            data, _ = soundfile.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        else:
            data, _ = soundfile.read(value, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
        raise DataError(f"cannot read audio {value!r}: {e}", path, line) from None
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def tokens_to_ids(words: Sequence[str], token2id: dict[str, int]) -> np.ndarray:
    """Label words → int64 ids; ``<blank>`` is dropped, unknown words map to ``<unk>``."""
    unk = token2id.get(UNK)
    out = []
    for w in words:
        if w == BLANK:
            continue
        i = token2id.get(w, unk)
        if i is None:
            raise KeyError(w)
        out.append(i)
    return np.asarray(out, dtype=np.int64)


class ClsDataset(torch.utils.data.Dataset):
    """Key-indexed dataset over ESPnet ``path,name,type`` triples (types ``sound`` and ``text``).

    Args:
        data_path_and_name_and_type: triples; names are usually ``speech`` and ``label``.
        token_list: the class list (with ``<blank>``/``<unk>``) used to map ``text`` words to ids.
        keys: restrict to these keys (must exist in every file); default: the first file's keys.
    """

    def __init__(self, data_path_and_name_and_type: Sequence[str], token_list: Optional[Sequence[str]] = None,
                 keys: Optional[Sequence[str]] = None) -> None:
        self.loaders: dict[str, tuple[str, str, dict[str, str]]] = {}
        self.token2id = {t: i for i, t in enumerate(token_list or [])}
        for spec in data_path_and_name_and_type:
            path, name, typ = parse_triple(spec)
            if typ not in ("sound", "kaldi_ark", "text"):
                raise DataError(f"unsupported data type {typ!r} (supported: sound, kaldi_ark, text)", path)
            if name in self.loaders:
                raise DataError(f"data name {name!r} given twice", path)
            self.loaders[name] = (path, typ, read_kv(path, allow_empty_value=(typ == "text")))
        if not self.loaders:
            raise DataError("no data files given (--*_data_path_and_name_and_type)")
        first = next(iter(self.loaders.values()))
        self.keys = list(keys) if keys is not None else list(first[2])
        for name, (path, _typ, table) in self.loaders.items():
            missing = [k for k in self.keys if k not in table]
            if missing:
                raise DataError(f"{len(missing)} key(s) missing for {name!r}, e.g. {missing[0]!r}", path)
        self._lineno: dict[str, dict[str, int]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def names(self) -> list[str]:
        """The data names (e.g. ``["speech", "label"]``)."""
        return list(self.loaders)

    def _line(self, name: str, key: str) -> Optional[int]:
        """1-based line of ``key`` in the file of ``name`` (for error messages)."""
        if name not in self._lineno:
            self._lineno[name] = {k: i for i, k in enumerate(self.loaders[name][2], 1)}
        return self._lineno[name].get(key)

    def __getitem__(self, key: str) -> tuple[str, dict[str, np.ndarray]]:
        out: dict[str, np.ndarray] = {}
        for name, (path, typ, table) in self.loaders.items():
            value = table[key]
            if typ in ("sound", "kaldi_ark"):  # kaldi_ark: a flac.ark/wav.ark dump (ark:offset entries)
                out[name] = read_audio(value, path, self._line(name, key))
            else:
                words = value.split()
                try:
                    out[name] = tokens_to_ids(words, self.token2id)
                except KeyError as e:
                    raise DataError(f"label {e.args[0]!r} is not in the token list (and there is no <unk>)",
                                    path, self._line(name, key)) from None
        return key, out


def collate(items: Sequence[tuple[str, dict[str, np.ndarray]]]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Pad a list of ``(key, data)`` into tensors: float pad 0.0, int pad −1, plus ``<name>_lengths``."""
    keys = [k for k, _ in items]
    batch: dict[str, torch.Tensor] = {}
    for name in items[0][1]:
        arrays = [d[name] for _, d in items]
        lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
        is_float = np.issubdtype(arrays[0].dtype, np.floating)
        width = max(1, int(lengths.max())) if len(arrays) else 1
        pad = 0.0 if is_float else -1
        out = np.full((len(arrays), width), pad, dtype=np.float32 if is_float else np.int64)
        for i, a in enumerate(arrays):
            out[i, : len(a)] = a
        batch[name] = torch.from_numpy(out)
        batch[f"{name}_lengths"] = lengths
    return keys, batch
