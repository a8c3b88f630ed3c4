"""The ``instruments`` and ``instruments_mix`` demo corpora, rendered offline.

Sound comes from the General MIDI SoundFont that ``pretty_midi`` ships
(``pretty_midi/TimGM6mb.sf2``), played by ``tinysoundfont``; nothing is downloaded. A split can
be played by another General MIDI bank installed on the machine (``soundfonts``, :data:`SOUNDFONTS`).

``instruments`` (multi-class): one General MIDI instrument family per clip. A clip
plays one program of its family, the programs taking turns so that each is equally
represented (``programs="core"``, the default: the first four programs of each GM
family, its archetypal instruments, e.g. violin, viola, cello, contrabass for
strings; ``programs="all"``: all eight, which adds outliers such as timpani and harp
to strings or accordion and harmonica to organ and makes the task much harder; the
drum class always uses the SoundFont's eight drum kits), a phrase type (held notes,
chords, arpeggios, melodies, repeated notes; grooves and fills for drums), a
pitch range inside the family's register, velocities, a tempo, a loudness and a
light background noise.

``instruments_mix`` (multi-label): mixtures of one to three different families
at random relative levels; about 5 % of clips have no instrument (noise only) and
are labelled ``<blank>``.

Every clip has its own random stream (:func:`espnet_cls.data.common.item_rng`),
so the same seed gives byte-identical audio whatever the number of workers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from espnet_cls.data.common import SPLITS, Utt, add_noise, degrade, item_rng, peak_normalize, run_jobs, write_wav
from espnet_cls.fileio import DataError

logger = logging.getLogger("espnet_cls.data")


@dataclass(frozen=True)
class Family:
    """A General MIDI instrument family: its programs and a playable key range."""

    name: str
    programs: tuple[int, ...]
    low: int
    high: int


def _gm(first: int) -> tuple[int, ...]:
    return tuple(range(first, first + 8))


#: The classes of the demo corpora (General MIDI families; drums = channel 10 kits).
FAMILIES: tuple[Family, ...] = (
    Family("piano", _gm(0), 36, 96),
    Family("chromatic_percussion", _gm(8), 55, 96),
    Family("organ", _gm(16), 36, 84),
    Family("guitar", _gm(24), 40, 84),
    Family("bass", _gm(32), 28, 55),
    Family("strings", _gm(40), 36, 91),
    Family("brass", _gm(56), 40, 82),
    Family("reed", _gm(64), 45, 86),
    Family("pipe", _gm(72), 60, 96),
    Family("drums", (0, 8, 16, 24, 25, 32, 40, 48), 35, 81),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
PROGRAM_SETS = ("core", "all")


def n_programs(fam: Family, programs: str) -> int:
    """How many of ``fam``'s programs a clip may use: 4 for ``"core"`` (8 drum kits), 8 for ``"all"``."""
    if programs not in PROGRAM_SETS:
        raise DataError(f"programs must be one of {', '.join(PROGRAM_SETS)}, got {programs!r}")
    return len(fam.programs) if programs == "all" or fam.name == "drums" else 4


#: ``program_split``: which of a family's eight programs (or drum kits) each split plays, by
#: position in :attr:`Family.programs`; disjoint, so valid and test hold instruments unseen in training
PROGRAM_SPLIT = {"train": (0, 3, 4, 7), "valid": (1, 5), "test": (2, 6)}


def split_programs(fam: Family, split: str) -> tuple[int, ...]:
    """The programs of ``fam`` that ``split`` plays under ``program_split`` (see :data:`PROGRAM_SPLIT`)."""
    return tuple(fam.programs[i] for i in PROGRAM_SPLIT[split])

DRUM = {
    "kick": (35, 36),
    "snare": (38, 40, 37, 39),
    "hat": (42, 44, 46, 54),
    "tom": (41, 43, 45, 47, 48, 50),
    "cymbal": (49, 51, 52, 55, 57, 59),
    "perc": (56, 60, 61, 62, 63, 64, 75, 76, 77),
}

PHRASES = ("held", "chord", "arpeggio", "melody", "repeated")
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10))
CHORDS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 5, 7), (0, 4, 7, 10), (0, 7, 12))


#: SoundFonts a corpus can be rendered with: name -> (files to look for, first found wins; what provides them).
#: ``timgm6mb`` ships with ``pretty_midi`` (always there); the others are Debian's General MIDI banks, other
#: samples of the same 128 programs and drum kits (``instruments_bank_dev`` trains on one, tests on others).
SOUNDFONTS: dict[str, tuple[tuple[str, ...], str]] = {
    "timgm6mb": ((), "pip install pretty_midi"),
    "fluidr3": (("/usr/share/sounds/sf2/FluidR3_GM.sf2",), "apt-get install fluid-soundfont-gm"),
    "musescore": (
        ("/usr/share/sounds/sf3/MuseScore_General.sf3", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
        "apt-get install musescore-general-soundfont-small",
    ),
}


def soundfont_path(name: str = "timgm6mb") -> str:
    """Path of SoundFont ``name`` (:data:`SOUNDFONTS`; default: the GM SoundFont shipped with ``pretty_midi``).

    DataError, naming what installs it, when it is not on this machine.
    """
    if name not in SOUNDFONTS:
        raise DataError(f"unknown SoundFont {name!r}; choose from {', '.join(SOUNDFONTS)}")
    files, provider = SOUNDFONTS[name]
    if name == "timgm6mb":
        try:
            import pretty_midi
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise DataError("pretty_midi is not installed (pip install 'espnet_cls[demo]')") from e
        files = (str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"),)
    for f in files:
        if Path(f).exists():
            return f
    raise DataError(f"SoundFont {name!r} not found ({provider})", files[0])


def soundfont_available(name: str) -> bool:
    """Whether :func:`soundfont_path` finds ``name`` on this machine."""
    try:
        soundfont_path(name)
    except DataError:
        return False
    return True


# ----------------------------------------------------------------------------- phrases
Event = tuple[float, int, int]  # (time in seconds, key, velocity; 0 = note off)


def _notes(events: list[Event], t: float, dur: float, keys: Sequence[int], vel: int) -> None:
    for k in keys:
        events.append((t, int(k), int(vel)))
        events.append((t + dur, int(k), 0))


def melodic_phrase(fam: Family, rng: np.random.Generator, duration: float) -> list[Event]:
    """Note events of one phrase for a pitched family, inside the family's key range."""
    beat = 60.0 / rng.uniform(70, 140)
    kind = PHRASES[rng.integers(len(PHRASES))]
    span = fam.high - fam.low
    centre = fam.low + int(rng.integers(span // 3, 2 * span // 3 + 1))
    scale = SCALES[rng.integers(len(SCALES))]
    vel0 = int(rng.integers(70, 121))

    def vel() -> int:
        return int(np.clip(vel0 + rng.integers(-12, 13), 1, 127))

    def clamp(k: int) -> int:
        while k > fam.high:
            k -= 12
        while k < fam.low:
            k += 12
        return k

    def chord_at(root: int) -> list[int]:
        return sorted({clamp(root + iv) for iv in CHORDS[rng.integers(len(CHORDS))]})

    ev: list[Event] = []
    t = float(rng.uniform(0.0, 0.15))
    if kind == "held":
        n = int(rng.integers(1, 3))
        seg = (duration - t) / n
        for _ in range(n):
            _notes(ev, t, seg * rng.uniform(0.7, 1.0), [clamp(centre + int(rng.integers(-7, 8)))], vel())
            t += seg
    elif kind == "chord":
        n = int(rng.integers(1, 4))
        seg = (duration - t) / n
        for _ in range(n):
            _notes(ev, t, seg * rng.uniform(0.6, 1.0), chord_at(centre + int(rng.integers(-5, 6))), vel())
            t += seg
    elif kind == "arpeggio":
        step = beat / (2 if rng.random() < 0.5 else 3)
        notes = chord_at(centre)
        notes = notes + [k + 12 for k in notes if k + 12 <= fam.high]
        i, up = 0, rng.random() < 0.7
        while t < duration:
            k = notes[i % len(notes)] if up else notes[-1 - i % len(notes)]
            _notes(ev, t, step * rng.uniform(0.8, 1.6), [k], vel())
            t += step
            i += 1
    elif kind == "melody":
        deg = int(rng.integers(len(scale)))
        while t < duration:
            deg += int(rng.integers(-2, 3))
            k = clamp(centre - centre % 12 + scale[deg % len(scale)] + 12 * (deg // len(scale)))
            d = beat * (0.5, 0.5, 1.0, 1.0, 1.5, 2.0)[rng.integers(6)]
            _notes(ev, t, d * rng.uniform(0.7, 1.0), [k], vel())
            t += d
    else:  # repeated
        step = beat / (1, 2, 2, 3)[rng.integers(4)]
        k = clamp(centre)
        while t < duration:
            if rng.random() < 0.2:
                k = clamp(k + int(rng.choice([-5, -3, 3, 4, 5, 7])))
            _notes(ev, t, step * rng.uniform(0.5, 0.9), [k], vel())
            t += step
    return ev


def drum_phrase(rng: np.random.Generator, duration: float) -> list[Event]:
    """Note events of a drum groove (kick/snare/hats, sometimes toms, fills, percussion)."""
    beat = 60.0 / rng.uniform(70, 170)
    step = beat / 2 if rng.random() < 0.6 else beat / 4
    kick, snare = int(rng.choice(DRUM["kick"])), int(rng.choice(DRUM["snare"]))
    hat = int(rng.choice(DRUM["hat"]))
    style = int(rng.integers(4))  # 0 rock, 1 sparse, 2 toms/fill, 3 percussion
    vel0 = int(rng.integers(50, 125))
    ev: list[Event] = []
    t, i = float(rng.uniform(0.0, 0.1)), 0
    per_beat = int(round(beat / step))
    while t < duration:
        v = int(np.clip(vel0 + rng.integers(-15, 16), 1, 127))
        pos = i % (4 * per_beat)
        keys = []
        if style != 3 and (rng.random() < 0.85 if style != 1 else rng.random() < 0.5):
            keys.append(hat)
        if pos == 0 or (style == 0 and pos == 2 * per_beat) or rng.random() < 0.08:
            keys.append(kick)
        if pos in (per_beat, 3 * per_beat):
            keys.append(snare)
        if style == 2 and rng.random() < 0.3:
            keys.append(int(rng.choice(DRUM["tom"])))
        if style == 3 and rng.random() < 0.7:
            keys.append(int(rng.choice(DRUM["perc"])))
        if pos == 0 and rng.random() < 0.25:
            keys.append(int(rng.choice(DRUM["cymbal"])))
        _notes(ev, t, step * 0.9, sorted(set(keys)), v)
        t += step
        i += 1
    return ev


# ----------------------------------------------------------------------------- rendering
class Renderer:
    """A tinysoundfont synthesizer with SoundFont ``soundfont`` (:data:`SOUNDFONTS`) loaded, at sample rate ``fs``."""

    def __init__(self, fs: int = 16000, soundfont: str = "timgm6mb") -> None:
        try:
            import tinysoundfont
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise DataError("tinysoundfont is not installed (pip install --no-deps tinysoundfont)") from e
        self.fs = fs
        self.synth = tinysoundfont.Synth(samplerate=fs)
        self.sfid = self.synth.sfload(soundfont_path(soundfont))

    def render(self, fam: Family, rng: np.random.Generator, duration: float, program: Optional[int] = None,
               n_programs: Optional[int] = None) -> np.ndarray:  # fmt: skip
        """One phrase of ``fam`` as mono float32 of ``duration`` seconds (unnormalised).

        ``program`` is the GM program (or drum kit); if None, a random one among the
        family's first ``n_programs`` (all if None).
        """
        is_drums = fam.name == "drums"
        chan = 9 if is_drums else 0
        if program is None:
            program = int(fam.programs[rng.integers(n_programs or len(fam.programs))])
        s = self.synth
        s.sounds_off()
        s.program_select(chan, self.sfid, 128 if is_drums else 0, program, is_drums=is_drums)
        s.set_tuning(chan, 0.0)
        s.pitchbend(chan, 8192)
        events = drum_phrase(rng, duration) if is_drums else melodic_phrase(fam, rng, duration)
        n_total = int(round(duration * self.fs))
        events.sort(key=lambda e: (e[0], e[2] != 0))  # note-offs first at equal times
        out = np.zeros((n_total, 2), dtype=np.float32)
        pos = 0
        for t, key, vel in events:
            at = min(n_total, int(round(t * self.fs)))
            if at > pos:
                out[pos:at] = np.frombuffer(s.generate(at - pos), dtype=np.float32).reshape(-1, 2)
                pos = at
            if pos >= n_total:
                break
            if vel > 0:
                s.noteon(chan, key, vel)
            else:
                s.noteoff(chan, key)
        if pos < n_total:
            out[pos:] = np.frombuffer(s.generate(n_total - pos), dtype=np.float32).reshape(-1, 2)
        self.silence()
        return out.mean(axis=1)

    def silence(self, max_seconds: float = 5.0) -> None:
        """Stop every voice and run the synth until its output is exactly zero.

        Without this, release tails of one clip would leak into the next one and the
        audio would depend on the order in which a worker renders clips.
        """
        self.synth.sounds_off()
        block = self.fs // 10
        for _ in range(int(max_seconds * 10)):
            if not np.any(np.frombuffer(self.synth.generate(block), dtype=np.float32)):
                return
        logger.warning("synth did not fall silent within %.0f s", max_seconds)


# ----------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One clip to make: its id, output path, families (empty = noise only) and seed keys."""

    uttid: str
    path: str
    families: tuple[str, ...]
    keys: tuple
    seed: int
    duration: float
    fs: int
    program: Optional[int] = None  # clip index for balanced programs; None = random program
    programs: str = "core"  # "core" (first four programs of a family) or "all"
    split: Optional[str] = None  # set: play only the programs of this split (PROGRAM_SPLIT)
    degrade: bool = False  # random recording channel and stronger noise (common.degrade)
    level_db: tuple[float, float] = (-8.0, 0.0)  # relative level of the second and later parts
    soundfont: str = "timgm6mb"  # the bank that plays it (SOUNDFONTS)


_RENDERERS: dict[tuple[int, str], Renderer] = {}  # per worker process: one synth per (fs, SoundFont)


def _renderer(fs: int, soundfont: str = "timgm6mb") -> Renderer:
    if (fs, soundfont) not in _RENDERERS:
        _RENDERERS[(fs, soundfont)] = Renderer(fs, soundfont)
    return _RENDERERS[(fs, soundfont)]


def make_clip(job: Job) -> Utt:
    """Render, mix, set loudness, add light noise and write one clip; returns its :class:`Utt`."""
    rng = item_rng(job.seed, *job.keys)
    n = int(round(job.duration * job.fs))
    if job.families:
        mix = np.zeros(n, dtype=np.float64)
        for j, name in enumerate(job.families):
            fam = FAMILY_BY_NAME[name]
            part_rng = item_rng(job.seed, *job.keys, "part", j)
            if job.split is not None:
                usable = split_programs(fam, job.split)
                idx = job.program if job.program is not None else int(part_rng.integers(len(usable)))
                prog = usable[idx % len(usable)]
            else:
                usable = fam.programs[: n_programs(fam, job.programs)]
                prog = None if job.program is None else usable[job.program % len(usable)]
            part = _renderer(job.fs, job.soundfont).render(fam, part_rng, job.duration, prog, len(usable))
            gain_db = 0.0 if j == 0 else rng.uniform(*job.level_db)
            mix += peak_normalize(part, gain_db)
        audio = peak_normalize(mix, rng.uniform(-9.0, -3.0))
        if job.degrade:
            audio = degrade(audio, rng, job.fs)
        else:
            audio = add_noise(audio, rng, rng.uniform(30.0, 45.0))
        if float(np.max(np.abs(audio))) > 0.99:
            audio = peak_normalize(audio, -1.0)
    else:  # noise only, at a low level
        audio = add_noise(np.full(n, 1e-3, dtype=np.float32), rng, 0.0)
        audio = peak_normalize(audio - audio.mean(), rng.uniform(-40.0, -20.0))
    write_wav(job.path, audio, job.fs)
    return Utt(job.uttid, job.path, tuple(sorted(job.families)))


# ----------------------------------------------------------------------------- corpora
def _split_soundfonts(soundfonts: Optional[Mapping[str, str]]) -> dict[str, str]:
    """split -> SoundFont name (``timgm6mb`` where not given); each one checked to be on this machine."""
    given = dict(soundfonts or {})
    unknown = set(given) - set(SPLITS)
    if unknown:
        raise DataError(f"soundfonts: unknown split(s) {', '.join(sorted(unknown))} ({', '.join(SPLITS)})")
    banks = {split: given.get(split, "timgm6mb") for split in SPLITS}
    for name in set(banks.values()):
        soundfont_path(name)  # a clear error before any worker starts
    return banks


SIZES = {
    # per class for instruments; per clip for instruments_mix
    "instruments": {"small": ((4, 2, 2), 1.0), "default": ((150, 20, 30), 2.0)},
    "instruments_mix": {"small": ((40, 12, 12), 1.0), "default": ((800, 150, 150), 2.0)},
}


def make_instruments(
    audio_dir: Path, size: str, seed: int, nj: int, fs: int = 16000,
    counts: Optional[Sequence[int]] = None, duration: Optional[float] = None, programs: str = "core",
    program_split: bool = False, degrade: bool = False, name: str = "instruments",
    soundfonts: Optional[Mapping[str, str]] = None,
) -> dict[str, list[Utt]]:  # fmt: skip
    """Render the multi-class ``instruments`` corpus; returns the utterances of each split.

    ``counts`` (clips per class for train, valid, test) and ``duration`` (seconds)
    override the values of ``size``; ``programs`` is ``"core"`` or ``"all"``.
    ``program_split``: each split plays its own programs of every family (all eight used,
    :data:`PROGRAM_SPLIT`), so valid/test instruments are unseen; ``degrade``: random recording
    channel and 10-30 dB noise per clip; ``name``: prefix of the utterance ids and seed key;
    ``soundfonts``: split -> the SoundFont that plays it (:data:`SOUNDFONTS`; default ``timgm6mb`` for all).
    """
    n_programs(FAMILIES[0], programs)  # checks the value
    banks = _split_soundfonts(soundfonts)
    counts = counts or SIZES["instruments"][size][0]
    duration = duration or SIZES["instruments"][size][1]
    out: dict[str, list[Utt]] = {}
    for split, n_per_class in zip(("train", "valid", "test"), counts):
        jobs = []
        for fam in FAMILIES:
            for i in range(n_per_class):
                uttid = f"{name}-{split}-{fam.name}-{i:04d}"
                path = os.path.abspath(audio_dir / split / f"{uttid}.wav")
                key = (name, split, fam.name, i)
                jobs.append(Job(uttid, path, (fam.name,), key, seed, duration, fs, program=i, programs=programs,
                                split=split if program_split else None, degrade=degrade,
                                soundfont=banks[split]))  # fmt: skip
        out[split] = run_jobs(jobs, nj, make_clip)
    return out


def make_instruments_mix(
    audio_dir: Path, size: str, seed: int, nj: int, fs: int = 16000,
    counts: Optional[Sequence[int]] = None, duration: Optional[float] = None, programs: str = "core",
    program_split: bool = False, degrade: bool = False, name: str = "instruments_mix",
    parts: Sequence[int] = (1, 2, 3), parts_p: Sequence[float] = (0.35, 0.4, 0.25),
    level_db: tuple[float, float] = (-8.0, 0.0), soundfonts: Optional[Mapping[str, str]] = None,
) -> dict[str, list[Utt]]:  # fmt: skip
    """Render the multi-label ``instruments_mix`` corpus; returns the utterances of each split.

    ``counts`` (clips for train, valid, test) and ``duration`` override ``size``;
    ``programs`` is ``"core"`` or ``"all"``. ``program_split``, ``degrade`` and ``name`` as in
    :func:`make_instruments`; ``parts``/``parts_p``: how many families a clip mixes and with
    which probabilities; ``level_db``: relative level range of the second and later parts;
    ``soundfonts`` as in :func:`make_instruments`.
    """
    n_programs(FAMILIES[0], programs)  # checks the value
    banks = _split_soundfonts(soundfonts)
    counts = counts or SIZES["instruments_mix"][size][0]
    duration = duration or SIZES["instruments_mix"][size][1]
    names = [f.name for f in FAMILIES]
    out: dict[str, list[Utt]] = {}
    for split, n_clips in zip(("train", "valid", "test"), counts):
        jobs = []
        for i in range(n_clips):
            rng = item_rng(seed, name, split, i, "labels")
            if rng.random() < 0.05:
                fams: tuple[str, ...] = ()
            else:
                k = int(rng.choice(list(parts), p=list(parts_p)))
                fams = tuple(names[j] for j in rng.choice(len(names), size=k, replace=False))
            uttid = f"{name}-{split}-{i:05d}"
            path = os.path.abspath(audio_dir / split / f"{uttid}.wav")
            jobs.append(
                Job(
                    uttid,
                    path,
                    fams,
                    (name, split, i),
                    seed,
                    duration,
                    fs,
                    programs=programs,
                    split=split if program_split else None,
                    degrade=degrade,
                    level_db=tuple(level_db),
                    soundfont=banks[split],
                )
            )
        out[split] = run_jobs(jobs, nj, make_clip)
    return out
