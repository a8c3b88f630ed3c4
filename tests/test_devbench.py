"""Development-benchmark corpora (espnet_cls.data.devbench) and the degradation they use."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from espnet_cls.data import devbench, instruments
from espnet_cls.data.common import CHANNELS, degrade, item_rng
from espnet_cls.data.instruments import FAMILIES, PROGRAM_SPLIT, soundfont_available, split_programs
from espnet_cls.data.lid import LANGUAGES, LidJob, voice_of
from espnet_cls.fileio import DataError, read_kv

#: Debian's SoundFonts (.ci/run installs them); the bank corpora are skipped without them
BANKS_HERE = all(soundfont_available(b) for b in devbench.BANK_SPLIT.values())
needs_banks = pytest.mark.skipif(
    not BANKS_HERE, reason="Debian SoundFonts fluid-soundfont-gm / musescore-general-soundfont-small not installed"
)


def digest(datadir: Path) -> dict[str, str]:
    out = {}
    for split in ("train", "valid", "test"):
        out[f"{split}/text"] = (datadir / split / "text").read_text()
        for utt, path in read_kv(datadir / split / "wav.scp").items():
            out[utt] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize(
    "corpus",
    ["instruments_dev", "instruments_mix_dev", "lid_dev", pytest.param("instruments_bank_dev", marks=needs_banks)],
)
def test_dev_corpus_is_deterministic_per_seed(corpus, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert devbench.main([str(a), "--corpus", corpus, "--small", "true", "--seed", "5", "--nj", "2"]) == 0
    assert devbench.main([str(b), "--corpus", corpus, "--small", "true", "--seed", "5", "--nj", "1",
                          "--validate", "false"]) == 0  # fmt: skip
    da = digest(a)
    assert da == digest(b)  # same seed: byte-identical whatever nj
    clips = [k for k in da if "/" not in k]
    assert len(clips) >= 12
    if corpus == "instruments_dev":  # another seed: every clip differs (checked on the fastest corpus)
        c = tmp_path / "c"
        assert devbench.main([str(c), "--corpus", corpus, "--small", "true", "--seed", "6", "--validate", "false"]) == 0
        dc = digest(c)
        assert sum(da[k] != dc[k] for k in clips) == len(clips)


def test_instrument_programs_are_disjoint_between_splits():
    for fam in FAMILIES:
        sets = {s: set(split_programs(fam, s)) for s in PROGRAM_SPLIT}
        assert sets["train"].isdisjoint(sets["valid"]) and sets["train"].isdisjoint(sets["test"])
        assert sets["valid"].isdisjoint(sets["test"])
        assert set().union(*sets.values()) == set(fam.programs)  # every GM program of the family is used


def test_lid_dev_speakers_are_disjoint_between_splits():
    kw = devbench.DEV_CORPORA["lid_dev"]["kwargs"]
    voices: dict[str, set[str]] = {}
    for split, n in zip(("train", "valid", "test"), kw["counts"]):
        voices[split] = {voice_of(LidJob("u", "p", lang, split, i, 0, 2.0, 16000, True, "lid_dev"))
                         for lang in LANGUAGES for i in range(n)}  # fmt: skip
    assert voices["train"].isdisjoint(voices["valid"]) and voices["train"].isdisjoint(voices["test"])
    assert voices["valid"].isdisjoint(voices["test"])
    assert len(voices["test"]) >= 20 and len(voices["train"]) >= 50  # several voices per language


def test_degrade_channels():
    fs = 16000
    t = np.arange(fs) / fs
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    outs = [degrade(x, item_rng(0, "deg", i), fs, (20.0, 20.0)) for i in range(40)]
    assert all(o.shape == x.shape and o.dtype == np.float32 and np.isfinite(o).all() for o in outs)
    again = degrade(x, item_rng(0, "deg", 3), fs, (20.0, 20.0))
    np.testing.assert_array_equal(again, outs[3])
    # the 5 kHz partial is attenuated by some channels (telephone, low-pass), kept by others
    ratio = [np.abs(np.fft.rfft(o))[5000] / np.abs(np.fft.rfft(x))[5000] for o in outs]
    assert min(ratio) < 0.1 and max(ratio) > 0.5
    assert len(CHANNELS) == 6


@needs_banks
def test_bank_corpora_play_each_split_with_its_own_soundfont(tmp_path, monkeypatch):
    """Train, valid and test of the *_bank_dev corpora are rendered by three different SoundFonts."""
    assert len(set(devbench.BANK_SPLIT.values())) == 3
    used: dict[str, set[str]] = {}
    real = instruments.make_clip

    def spy(job):
        used.setdefault(job.uttid.split("-")[1], set()).add(job.soundfont)
        return real(job)

    monkeypatch.setattr(instruments, "make_clip", spy)
    for corpus in ("instruments_bank_dev", "instruments_mix_bank_dev"):
        used.clear()
        splits = devbench.make_dev_corpus(corpus, tmp_path / corpus, seed=0, nj=1, small=True)
        assert {s: len(u) > 0 for s, u in splits.items()} == {"train": True, "valid": True, "test": True}
        assert used == {s: {b} for s, b in devbench.BANK_SPLIT.items()}
    # the same clip (seed, program, phrase) played by two banks is different audio
    fam = instruments.FAMILY_BY_NAME["strings"]
    a = instruments.Renderer(16000, "timgm6mb").render(fam, item_rng(0, "x"), 1.0, program=40)
    b = instruments.Renderer(16000, "fluidr3").render(fam, item_rng(0, "x"), 1.0, program=40)
    assert a.shape == b.shape and np.abs(a).max() > 1e-3 and np.abs(b).max() > 1e-3
    assert np.abs(a - b).max() > 1e-2


def test_missing_or_unknown_soundfont_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(
        instruments.SOUNDFONTS, "fluidr3", (("/nonexistent/FluidR3_GM.sf2",), "apt-get install fluid-soundfont-gm")
    )
    with pytest.raises(DataError, match="fluid-soundfont-gm"):
        instruments.make_instruments(Path("/nonexistent"), "small", 0, 1, soundfonts={"test": "fluidr3"})
    with pytest.raises(DataError, match="unknown SoundFont 'nope'"):
        instruments.soundfont_path("nope")
    with pytest.raises(DataError, match="unknown split"):
        instruments.make_instruments(Path("/nonexistent"), "small", 0, 1, soundfonts={"dev": "timgm6mb"})
