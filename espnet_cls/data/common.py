"""Shared helpers for the corpus generators and importers of :mod:`espnet_cls.data`.

Everything a stage-1 producer needs besides its own audio logic: writing a Kaldi
data directory (``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, optional
``utt2weight``), writing 16-bit audio, seeded per-item random generators that do
not depend on worker order, label sanitising, seeded stratified splits, and a call
to ``utils/validate_data_dir.sh --no-feats`` when the repository has it.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, sosfilt

from espnet_cls.contract import BLANK
from espnet_cls.fileio import DataError, PathLike, atomic_write, write_kv

logger = logging.getLogger("espnet_cls.data")

T = TypeVar("T")
SPLITS = ("train", "valid", "test")
REPO_ROOT = Path(__file__).resolve().parents[2]
RESOURCES = Path(__file__).resolve().parent / "resources"


@dataclass
class Utt:
    """One utterance of a data directory: id, audio path, labels (empty = ``<blank>``), speaker."""

    uttid: str
    path: str
    labels: tuple[str, ...]
    spk: Optional[str] = None


def item_rng(seed: int, *keys: object) -> np.random.Generator:
    """A random generator determined by ``seed`` and ``keys`` only.

    Each clip gets its own stream (e.g. ``item_rng(seed, "instruments", "train", 17)``),
    so the audio does not depend on which worker renders it or in which order.
    """
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype="<u4").tolist())


def sanitize_label(label: str) -> str:
    """Make a class name usable as one token of a Kaldi ``text`` line.

    Commas are removed, runs of whitespace become ``_`` (``"Male speech, man speaking"``
    → ``"Male_speech_man_speaking"``). Case is kept.
    """
    return re.sub(r"\s+", "_", label.replace(",", "").strip())


def sanitize_id(text: str) -> str:
    """Make a string usable inside an utterance id: only ``[A-Za-z0-9._-]`` survive."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def write_wav(path: PathLike, audio: np.ndarray, fs: int) -> None:
    """Write float audio in [-1, 1] as 16-bit PCM wav, atomically and reproducibly.

    The same samples always give the same bytes (no timestamps in the header).
    """
    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with atomic_write(path, "wb") as f:
        sf.write(f, pcm, fs, subtype="PCM_16", format="WAV")


def peak_normalize(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """Scale ``audio`` so that its absolute peak is ``peak_db`` dBFS (silence stays silent)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 1e-9:
        return audio.astype(np.float32)
    return (audio * (10.0 ** (peak_db / 20.0) / peak)).astype(np.float32)


def add_noise(audio: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Add white or pink-ish noise at ``snr_db`` dB below the signal's RMS."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    noise = rng.standard_normal(audio.shape[0])
    if rng.random() < 0.5:  # one-pole low-pass: a darker, pink-ish hiss
        noise = _onepole(noise, 0.9)
    noise /= max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    return (audio + noise * rms * 10.0 ** (-snr_db / 20.0)).astype(np.float32)


def _onepole(x: np.ndarray, a: float) -> np.ndarray:
    return lfilter([1.0 - a], [1.0, -a], x)


#: the recording channels :func:`degrade` draws from
CHANNELS = ("flat", "telephone", "lowpass", "highpass", "peak", "tilt")


def _peaking_sos(f0: float, gain_db: float, q: float, fs: int) -> np.ndarray:
    """One peaking-EQ biquad (RBJ cookbook) as a second-order section."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def degrade(audio: np.ndarray, rng: np.random.Generator, fs: int, snr_db: tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """Pass ``audio`` through a random recording channel and add noise (development-benchmark corpora).

    The channel is one of :data:`CHANNELS`: ``flat``; ``telephone`` (300-3400 Hz band-pass);
    ``lowpass`` (cut-off 2-6 kHz) or ``highpass`` (150-600 Hz), 4th-order Butterworth;
    ``peak`` (one or two peaking EQs of +-6 to 12 dB between 200 Hz and 5 kHz); ``tilt`` (one-pole
    darkening or brightening). Then white or pink-ish noise at an SNR uniform in ``snr_db``.
    The peak level is kept.
    """
    x = np.asarray(audio, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    kind = CHANNELS[int(rng.integers(len(CHANNELS)))]
    nyq = fs / 2.0
    if kind == "telephone":
        x = sosfilt(butter(4, [300.0 / nyq, min(3400.0, 0.9 * nyq) / nyq], "bandpass", output="sos"), x)
    elif kind == "lowpass":
        x = sosfilt(butter(4, min(rng.uniform(2000.0, 6000.0), 0.9 * nyq) / nyq, "lowpass", output="sos"), x)
    elif kind == "highpass":
        x = sosfilt(butter(4, rng.uniform(150.0, 600.0) / nyq, "highpass", output="sos"), x)
    elif kind == "peak":
        for _ in range(int(rng.integers(1, 3))):
            f0 = float(np.exp(rng.uniform(np.log(200.0), np.log(min(5000.0, 0.8 * nyq)))))
            gain = float(rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 12.0))
            x = sosfilt(_peaking_sos(f0, gain, rng.uniform(0.7, 2.0), fs), x)
    elif kind == "tilt":
        a = rng.uniform(0.3, 0.8)
        x = _onepole(x, a) if rng.random() < 0.5 else x - a * np.concatenate([[0.0], x[:-1]])
    if peak > 0:
        x = peak_normalize(x, 20.0 * np.log10(peak))
    return add_noise(np.asarray(x, dtype=np.float32), rng, rng.uniform(*snr_db))


def write_data_dir(data_dir: PathLike, utts: Sequence[Utt], weights: Optional[Mapping[str, float]] = None) -> None:
    """Write ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt`` (and ``utt2weight``) sorted in C order.

    ``text`` holds the labels space-separated, or ``<blank>`` for a clip without
    labels. Without a speaker, ``utt2spk`` is ``uttid uttid``. Raises
    :class:`DataError` on a duplicate utterance id or an empty set.
    """
    data_dir = Path(data_dir)
    if not utts:
        raise DataError("no utterances to write (is the source empty?)", data_dir)
    seen: set[str] = set()
    for u in utts:
        if u.uttid in seen:
            raise DataError(f"duplicate utterance id {u.uttid!r}", data_dir)
        if any(c.isspace() for c in u.uttid):
            raise DataError(f"utterance id contains whitespace: {u.uttid!r}", data_dir)
        seen.add(u.uttid)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_kv(data_dir / "wav.scp", [(u.uttid, u.path) for u in utts])
    write_kv(data_dir / "text", [(u.uttid, " ".join(u.labels) if u.labels else BLANK) for u in utts])
    utt2spk = {u.uttid: (u.spk or u.uttid) for u in utts}
    write_kv(data_dir / "utt2spk", utt2spk.items())
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=str.encode):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    write_kv(data_dir / "spk2utt", [(s, " ".join(v)) for s, v in spk2utt.items()])
    if weights is not None:
        write_kv(data_dir / "utt2weight", [(u.uttid, f"{weights[u.uttid]:.6g}") for u in utts])
    elif (data_dir / "utt2weight").exists():
        (data_dir / "utt2weight").unlink()


def write_splits(
    datadir: PathLike,
    splits: Mapping[str, Sequence[Utt]],
    validate: bool = True,
    weights: Optional[Mapping[str, Mapping[str, float]]] = None,
) -> None:
    """Write each split as ``datadir/<split>`` and validate it; logs the per-class counts.

    ``weights`` optionally maps a split name to its ``utt2weight`` values.
    """
    datadir = Path(datadir)
    for split, utts in splits.items():
        write_data_dir(datadir / split, utts, (weights or {}).get(split))
        counts: dict[str, int] = {}
        for u in utts:
            for lab in u.labels or (BLANK,):
                counts[lab] = counts.get(lab, 0) + 1
        shown = " ".join(f"{k}={v}" for k, v in sorted(counts.items())) if len(counts) <= 30 else "..."
        logger.info("%s: %d utterances, %d classes (%s)", datadir / split, len(utts), len(counts), shown)
        if validate:
            validate_data_dir(datadir / split)


def validate_data_dir(data_dir: PathLike) -> bool:
    """Run ``utils/validate_data_dir.sh --no-feats`` on ``data_dir`` if the repository has it.

    Returns True when it ran and passed, False when the script is absent; raises
    :class:`DataError` with the script's message when validation fails.
    """
    script = REPO_ROOT / "utils" / "validate_data_dir.sh"
    if not script.exists():
        logger.warning("utils/validate_data_dir.sh not found; skipped validation of %s", data_dir)
        return False
    env = dict(os.environ, LC_ALL="C", PATH=f"{REPO_ROOT / 'utils'}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        ["bash", str(script), "--no-feats", str(data_dir)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DataError("validate_data_dir.sh --no-feats failed: " + (msg[-1] if msg else f"exit {proc.returncode}"), data_dir)
    return True


def stratified_split(
    items: Sequence[tuple[str, str]], valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Split ``(key, class)`` pairs into train/valid/test, per class, reproducibly.

    Within each class the keys are shuffled by ``seed`` and the first
    ``round(n * test_fraction)`` go to test, the next ``round(n * valid_fraction)``
    to valid (each at least one when the class has three or more items).
    """
    by_class: dict[str, list[str]] = {}
    for key, cls in items:
        by_class.setdefault(cls, []).append(key)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for cls in sorted(by_class):
        keys = sorted(by_class[cls])
        rng = item_rng(seed, "split", cls)
        order = [keys[i] for i in rng.permutation(len(keys))]
        n = len(order)
        n_test = int(round(n * test_fraction))
        n_valid = int(round(n * valid_fraction))
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_valid = max(n_valid, 1 if valid_fraction > 0 else 0)
        out["test"] += order[:n_test]
        out["valid"] += order[n_test : n_test + n_valid]
        out["train"] += order[n_test + n_valid :]
    return out


def inverse_frequency_weights(utts: Iterable[Utt]) -> dict[str, float]:
    """Per-utterance sampling weight: the sum over its labels of 1 / (label count).

    This is the usual balanced-sampling weight for AudioSet; a clip without labels
    gets the smallest weight found among labelled clips.
    """
    utts = list(utts)
    counts: dict[str, int] = {}
    for u in utts:
        for lab in set(u.labels):
            counts[lab] = counts.get(lab, 0) + 1
    w = {u.uttid: sum(1.0 / counts[lab] for lab in set(u.labels)) for u in utts}
    positive = [v for v in w.values() if v > 0]
    floor = min(positive) if positive else 1.0
    return {k: (v if v > 0 else floor) for k, v in w.items()}


MARKER = ".espnet_cls_generated"


def reset_dir(path: PathLike) -> Path:
    """Empty and recreate a folder of generated audio; returns it.

    A folder is only removed if it is empty or holds the marker file that this
    function leaves, so ``--audio_dir`` pointing at the user's own files is refused
    with a :class:`DataError` instead of deleting them.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir() or (any(path.iterdir()) and not (path / MARKER).exists()):
            raise DataError("exists and was not made by espnet_cls.data; refusing to overwrite it", path)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("generated audio; removed and remade by local/data.sh\n")
    return path


def run_jobs(jobs: Sequence[T], nj: int, fn: Callable[[T], Utt]) -> list[Utt]:
    """Run ``fn`` over ``jobs`` in ``nj`` worker processes (in-process when ``nj`` is 1)."""
    if nj <= 1 or len(jobs) < 2 * nj:
        return [fn(j) for j in jobs]
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(nj) as pool:
        return list(pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (8 * nj))))
