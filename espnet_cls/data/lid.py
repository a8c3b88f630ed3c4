"""The ``lid`` demo corpus: spoken language identification with eSpeak NG voices.

Speech is synthesised offline by ``libespeak-ng`` as shipped by the PyPI package
``espeakng-loader`` (library and voice data; no system espeak), driven through
``ctypes`` in synchronous mode with a callback that collects the samples in
memory. Sentences are the short parallel texts in ``resources/lid/<lang>.txt``
(written for this project, CC0; see ``resources/README``).

Variety: regional voices of a language (e.g. ``en-us``, ``en-gb-x-rp``), voice
variants (``+m3``, ``+f2``, ``+klatt``…), speaking rate, pitch and pitch range,
a random 2-s window of the sentence, loudness and light noise. Splits are
disjoint in voices and sentences: training, validation and test use different
variant sets (so no test voice is heard in training), a language with three or
more regional voices keeps one of them for test only, and each split has its
own sentences.

eSpeak NG draws random numbers from its own generator and from the C library's
``rand``; both are seeded before every clip, so the same seed gives byte-identical
audio whatever the order of the clips.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soxr

from espnet_cls.data.common import RESOURCES, Utt, add_noise, degrade, item_rng, peak_normalize, run_jobs, write_wav
from espnet_cls.fileio import DataError, read_lines

logger = logging.getLogger("espnet_cls.data")

#: language -> eSpeak NG regional voices (the last one is test-only when there are three or more)
LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-029"),
    "de": ("de",),
    "fr": ("fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
    "pt": ("pt", "pt-br"),
    "nl": ("nl",),
    "pl": ("pl",),
    "ru": ("ru", "ru-lv"),
    "sv": ("sv",),
}
#: voice variants (timbre) per split; disjoint so that test voices are unseen in training
VARIANTS: dict[str, tuple[str, ...]] = {
    "train": ("", "m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt", "klatt3", "edward", "steph", "max", "john"),
    "valid": ("m5", "f4", "klatt2", "david"),
    "test": ("m6", "m7", "f5", "klatt4", "robert"),
}
#: sentence indices per split (each resources/lid/<lang>.txt has 16 sentences)
SENTENCES = {"train": range(0, 10), "valid": range(10, 13), "test": range(13, 16)}
SIZES = {"small": ((4, 2, 2), 1.0), "default": ((70, 15, 15), 2.0)}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4


class ESpeak:
    """A minimal ctypes binding of libespeak-ng (from ``espeakng-loader``), synthesising to memory."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise DataError("espeakng-loader is not installed (pip install espeakng-loader)") from e
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        self.fs = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.fs <= 0:
            raise DataError("espeak_Initialize failed", espeakng_loader.get_data_path())
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._cb = self._CALLBACK(self._collect)  # keep a reference for the library's lifetime
        lib.espeak_SetSynthCallback(self._cb)
        self._libc = ctypes.CDLL(None)

    def _collect(self, wav, n: int, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        """Speak ``text`` with ``voice`` (e.g. ``"fr-be+m3"``); returns int16 samples at ``self.fs``."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DataError(f"eSpeak NG has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))  # eSpeak NG's own generator
        self._libc.srand(ctypes.c_uint(seed))  # and the C library's, used by some variants
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        rc = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if rc != 0:
            raise DataError(f"espeak_Synth failed with code {rc} for voice {voice!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


_ENGINE: Optional[ESpeak] = None


def _engine() -> ESpeak:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = ESpeak()
    return _ENGINE


def sentences(lang: str) -> list[str]:
    """The shipped sentences of ``lang`` (one per line of ``resources/lid/<lang>.txt``)."""
    path = RESOURCES / "lid" / f"{lang}.txt"
    lines = [ln.strip() for ln in read_lines(path)]
    lines = [ln for ln in lines if ln]
    if len(lines) < 16:
        raise DataError(f"expected 16 sentences, found {len(lines)}", path)
    return lines


def voices_for(lang: str, split: str) -> list[str]:
    """Regional voices of ``lang`` used in ``split`` (a third-or-later region is test-only)."""
    regions = LANGUAGES[lang]
    if len(regions) >= 3:
        return [regions[-1]] if split == "test" else list(regions[:-1])
    return list(regions)


_SENTENCES: dict[str, list[str]] = {}


def _sentences(lang: str) -> list[str]:
    if lang not in _SENTENCES:
        _SENTENCES[lang] = sentences(lang)
    return _SENTENCES[lang]


@dataclass(frozen=True)
class LidJob:
    """One clip: id, output path, language, split, index, seed, duration and sample rate."""

    uttid: str
    path: str
    lang: str
    split: str
    index: int
    seed: int
    duration: float
    fs: int
    degrade: bool = False  # random recording channel and 10-30 dB noise (common.degrade)
    name: str = "lid"  # seed key


def make_clip(job: LidJob) -> Utt:
    """Make one clip in a forked child of a process whose eSpeak NG never spoke.

    libespeak-ng keeps state from one utterance to the next (e.g. the phase of its
    pitch flutter), which ``espeak_Terminate`` does not reset; forking gives every
    clip the same fresh state, so a clip's audio does not depend on which clips came
    before it. Where ``fork`` is missing the clip is made in-process (not reproducible).
    """
    _engine()  # initialise before forking so that children share the same fresh state
    _sentences(job.lang)
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        _render_clip(job)
        return Utt(job.uttid, job.path, (job.lang,))
    pid = os.fork()
    if pid == 0:  # child: render, write, exit without running the parent's cleanup
        code = 1
        try:
            _render_clip(job)
            code = 0
        except BaseException as e:  # report and exit non-zero; the parent raises
            print(f"lid: {job.uttid}: {e}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(job.path):
        raise DataError(f"synthesis of {job.uttid} failed (see the message above)", job.path)
    return Utt(job.uttid, job.path, (job.lang,))


def _draw_voice(job: LidJob) -> tuple[np.random.Generator, str]:
    rng = item_rng(job.seed, job.name, job.split, job.lang, job.index)
    region = str(rng.choice(voices_for(job.lang, job.split)))
    variant = str(rng.choice(VARIANTS[job.split]))
    return rng, region + (f"+{variant}" if variant else "")


def voice_of(job: LidJob) -> str:
    """The eSpeak NG voice (the speaker, e.g. ``"fr-be+m3"``) that speaks ``job``'s clip."""
    return _draw_voice(job)[1]


def _render_clip(job: LidJob) -> None:
    """Synthesise, crop, resample, set loudness, add noise and write one clip."""
    rng, voice = _draw_voice(job)
    text = _sentences(job.lang)[int(rng.choice(list(SENTENCES[job.split])))]
    eng = _engine()
    pcm = eng.synth(text, voice, int(rng.integers(120, 230)), int(rng.integers(20, 81)), int(rng.integers(20, 81)),
                    int(rng.integers(1, 2**31 - 1)))  # fmt: skip
    x = soxr.resample(pcm.astype(np.float32) / 32768.0, eng.fs, job.fs).astype(np.float32)
    n = int(round(job.duration * job.fs))
    if x.shape[0] >= n:
        start = int(rng.integers(0, x.shape[0] - n + 1))
        x = x[start : start + n]
    else:
        pad = n - x.shape[0]
        left = int(rng.integers(0, pad + 1))
        x = np.pad(x, (left, pad - left))
    x = peak_normalize(x, rng.uniform(-20.0, -3.0))
    audio = degrade(x, rng, job.fs) if job.degrade else add_noise(x, rng, rng.uniform(20.0, 40.0))
    if float(np.max(np.abs(audio))) > 0.99:
        audio = peak_normalize(audio, -1.0)
    write_wav(job.path, audio, job.fs)
    logger.debug("%s: %s %r", job.uttid, voice, text)


def make_lid(
    audio_dir: Path, size: str, seed: int, nj: int, fs: int = 16000,
    counts: Optional[Sequence[int]] = None, duration: Optional[float] = None,
    degrade: bool = False, name: str = "lid",
) -> dict[str, list[Utt]]:  # fmt: skip
    """Synthesise the ``lid`` corpus; returns the utterances of each split.

    ``counts`` (clips per language for train, valid, test) and ``duration`` override ``size``.
    ``degrade``: random recording channel and 10-30 dB noise per clip; ``name``: prefix of the
    utterance ids and seed key. The speaker of a clip (its eSpeak NG voice, region+variant,
    :func:`voice_of`) never occurs in another split.
    """
    counts = counts or SIZES[size][0]
    duration = duration or SIZES[size][1]
    out: dict[str, list[Utt]] = {}
    for split, n_per_lang in zip(("train", "valid", "test"), counts):
        jobs = []
        for lang in LANGUAGES:
            for i in range(n_per_lang):
                uttid = f"{name}-{split}-{lang}-{i:04d}"
                path = os.path.abspath(audio_dir / split / f"{uttid}.wav")
                jobs.append(LidJob(uttid, path, lang, split, i, seed, duration, fs, degrade, name))
        out[split] = run_jobs(jobs, nj, make_clip)
    return out
