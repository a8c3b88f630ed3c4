"""Stage 2 with ESPnet's archive formats (--audio_format flac.ark / wav.ark, via kaldiio).

Each job writes one Kaldi ark (each clip a 16-bit flac/wav file inside it) and ``wav.scp``
points at ``<ark>:<offset>``; every reader (espnet_cls.audio.read_entry / load_audio, the
training dataset) reads those entries. The samples are those a flac dump holds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_cls.audio import AudioError, is_ark, load_audio, read_entry
from espnet_cls.contract import pcm16_round
from espnet_cls.train.dataset import ClsDataset, read_audio

SCRIPT = "scripts/audio/format_wav_scp.sh"


@pytest.fixture()
def work(tmp_path) -> Path:
    d = tmp_path / "data" / "x"
    d.mkdir(parents=True)
    rng = np.random.RandomState(0)
    lines, text = [], []
    for i in range(5):
        fs = 22050 if i == 2 else 16000  # one clip is resampled
        p = tmp_path / f"w{i}.wav"
        sf.write(p, 0.3 * rng.randn(int(0.3 * fs) + 37 * i).clip(-1, 1), fs, subtype="PCM_16")
        lines.append(f"u{i} {p}\n")
        text.append(f"u{i} dog\n")
    (d / "wav.scp").write_text("".join(lines))
    (d / "text").write_text("".join(text))
    return tmp_path


def dump(work: Path, fmt: str, env: dict, root: Path, nj: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / SCRIPT), "--cmd", "run.pl", "--nj", str(nj), "--copy-data-dir", "true", "--audio-format", fmt,
         "data/x/wav.scp", f"dump/{fmt}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def kv(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


@pytest.mark.parametrize("fmt", ["flac.ark", "wav.ark"])
def test_ark_dump_equals_the_flac_dump_and_every_reader_reads_it(fmt, work, shell_env, repo_root, monkeypatch):
    monkeypatch.chdir(work)  # wav.scp paths are relative to the recipe dir, as in cls.sh
    r = dump(work, fmt, shell_env, repo_root)
    assert r.returncode == 0, r.stderr
    d = work / "dump" / fmt
    scp = kv(d / "wav.scp")
    assert (d / "audio_format").read_text() == f"{fmt}\n" and (d / "fs").read_text() == "16000\n"
    assert sorted(p.name for p in (d / "data").rglob("*.ark")) == [f"data.{fmt}", f"data.{fmt}"]  # one per job
    src = kv(work / "data/x/wav.scp")
    n2s = kv(d / "utt2num_samples")
    for utt, entry in scp.items():
        assert is_ark(entry) and entry.split(":")[0].endswith(f"data.{fmt}")
        want = pcm16_round(load_audio(src[utt], 16000)[0])  # what a flac dump holds
        x, fs = read_entry(entry)
        assert fs == 16000 and x.shape == (len(want), 1) and int(n2s[utt]) == len(want)
        np.testing.assert_array_equal(x[:, 0], want)
        np.testing.assert_array_equal(read_audio(entry), want)  # the training reader
        np.testing.assert_array_equal(load_audio(entry, 16000)[0], want)  # inference / Classifier
        seg, _ = read_entry(entry, 0.1, 0.2)
        np.testing.assert_array_equal(seg[:, 0], want[1600:3200])
    # stage 6's reader with the loader type cls.sh passes for *.ark dumps (ESPnet's kaldi_ark)
    ds = ClsDataset([f"dump/{fmt}/wav.scp,speech,kaldi_ark", f"dump/{fmt}/text,label,text"], ["dog", "<blank>", "<unk>"])
    _key, item = ds["u2"]
    np.testing.assert_array_equal(item["speech"], pcm16_round(load_audio(src["u2"], 16000)[0]))
    assert item["label"].tolist() == [0]


def test_switching_format_removes_the_old_audio(work, shell_env, repo_root):
    d = work / "dump" / "x"
    base = ["bash", str(repo_root / SCRIPT), "--cmd", "run.pl", "--nj", "2", "--copy-data-dir", "true"]
    for fmt in ("flac", "flac.ark", "flac"):
        r = subprocess.run([*base, "--audio-format", fmt, "data/x/wav.scp", "dump/x"], cwd=work, env=shell_env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        files = sorted(p.name for p in (d / "data").rglob("*") if p.suffix in (".flac", ".ark"))
        if fmt == "flac.ark":
            assert files == ["data.flac.ark", "data.flac.ark"]
        else:
            assert files == [f"u{i}.flac" for i in range(5)]
    assert not list(d.rglob(".*tmp*"))


def test_bad_ark_entries(tmp_path):
    with pytest.raises(AudioError, match="ark file not found"):
        read_entry(f"{tmp_path / 'none.ark'}:3")
    (tmp_path / "junk.ark").write_bytes(b"u1 garbage that is not audio")
    with pytest.raises(AudioError, match="cannot read ark entry"):
        read_entry(f"{tmp_path / 'junk.ark'}:3")


def test_failed_ark_job_leaves_no_ark(work, shell_env, repo_root):
    scp = work / "data/x/wav.scp"
    scp.write_text(scp.read_text().replace(str(work / "w3.wav"), str(work / "missing.wav")))
    r = dump(work, "flac.ark", shell_env, repo_root, nj=1)
    assert r.returncode == 1
    assert "utt u3: file not found" in r.stderr
    d = work / "dump" / "flac.ark"
    assert not (d / "wav.scp").exists() and not list(d.rglob("*.ark")) and not list(d.rglob(".*tmp*"))
