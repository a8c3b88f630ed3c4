"""Demo corpora of stage 1 (instruments, instruments_mix, lid) made through local/data.sh."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_cls.data.common import Utt, inverse_frequency_weights, item_rng, sanitize_label, stratified_split
from espnet_cls.data.instruments import FAMILIES
from espnet_cls.data.lid import LANGUAGES, SENTENCES, VARIANTS, voices_for
from espnet_cls.fileio import read_kv

FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


def run_data_sh(repo_root: Path, env: dict, datadir: Path, *opts: str) -> subprocess.CompletedProcess:
    """Run local/data.sh as cls.sh does (data dir first, from the recipe root)."""
    proc = subprocess.run(
        ["bash", "local/data.sh", str(datadir), *opts], cwd=repo_root, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def digest(datadir: Path) -> dict[str, str]:
    """Hash of every text file (wav.scp with the data dir's own prefix removed) and every clip."""
    out = {}
    for split in ("train", "valid", "test"):
        for name in FILES:
            text = (datadir / split / name).read_text()
            out[f"{split}/{name}"] = hashlib.sha256(text.replace(str(datadir.resolve()), "ROOT").encode()).hexdigest()
        for utt, path in read_kv(datadir / split / "wav.scp").items():
            out[f"{split}/{utt}.wav"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def validate(repo_root: Path, env: dict, d: Path) -> None:
    proc = subprocess.run(["bash", "utils/validate_data_dir.sh", "--no-feats", str(d)], cwd=repo_root, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def small(tmp_path_factory, repo_root, shell_env) -> dict[str, Path]:
    """Each demo corpus made once with --size small --seed 3 (and validated by local/data.sh)."""
    out = {}
    for corpus in ("instruments", "instruments_mix", "lid"):
        out[corpus] = tmp_path_factory.mktemp(corpus) / "data"
        run_data_sh(repo_root, shell_env, out[corpus], "--corpus", corpus, "--size", "small", "--seed", "3")
    return out


@pytest.mark.parametrize("corpus", ["instruments", "instruments_mix", "lid"])
def test_demo_corpus_valid_and_reproducible(corpus, small, tmp_path, repo_root, shell_env):
    a, b = small[corpus], tmp_path / "b" / "data"
    # a second run, in one process (other worker order), must give byte-identical audio
    run_data_sh(repo_root, shell_env, b, "--corpus", corpus, "--size", "small", "--seed", "3", "--nj", "1", "--validate", "false")
    da, db = digest(a), digest(b)
    assert da == db
    n_clips = sum(k.endswith(".wav") for k in da)
    assert n_clips == {"instruments": 80, "instruments_mix": 64, "lid": 80}[corpus]

    for split in ("train", "valid", "test"):
        d = a / split
        validate(repo_root, shell_env, d)
        for name in FILES:
            keys = [ln.split()[0] for ln in (d / name).read_text().splitlines()]
            assert keys == sorted(keys, key=str.encode), f"{d / name} not sorted"
        wav, text = read_kv(d / "wav.scp"), read_kv(d / "text")
        assert set(wav) == set(text)
        assert read_kv(d / "utt2spk") == {u: u for u in wav}
        for path in list(wav.values())[:5]:
            assert Path(path).is_absolute() and str(Path(path)).startswith(str((a / "audio" / corpus).resolve()))
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000)
            x, _ = sf.read(path)
            assert 0.001 < np.abs(x).max() < 1.0
        labels = [v.split() for v in text.values()]
        if corpus == "instruments":
            assert all(len(v) == 1 for v in labels)
            per_class = {f.name: sum(v == [f.name] for v in labels) for f in FAMILIES}
            assert set(per_class.values()) == {4 if split == "train" else 2}
        elif corpus == "lid":
            per_class = {lang: sum(v == [lang] for v in labels) for lang in LANGUAGES}
            assert set(per_class.values()) == {4 if split == "train" else 2}
        else:
            names = {f.name for f in FAMILIES}
            for v in labels:
                assert v == ["<blank>"] or (1 <= len(v) <= 3 and len(set(v)) == len(v) and set(v) <= names)


def test_other_seed_other_audio(small, tmp_path, repo_root, shell_env):
    a, b = small["instruments"], tmp_path / "b"
    run_data_sh(repo_root, shell_env, b, "--corpus", "instruments", "--size", "small", "--seed", "2", "--validate", "false",
                "--audio_dir", str(tmp_path / "elsewhere"))  # fmt: skip
    da, db = digest(a), digest(b)
    assert da["train/text"] == db["train/text"]
    same = [k for k in da if k.endswith(".wav") and da[k] == db[k]]
    assert not same
    assert all(p.startswith(str((tmp_path / "elsewhere").resolve())) for p in read_kv(b / "train" / "wav.scp").values())


def test_program_sets(tmp_path):
    from espnet_cls.data.instruments import FAMILY_BY_NAME, make_instruments, n_programs
    from espnet_cls.fileio import DataError

    assert n_programs(FAMILY_BY_NAME["organ"], "core") == 4 and n_programs(FAMILY_BY_NAME["organ"], "all") == 8
    assert n_programs(FAMILY_BY_NAME["drums"], "core") == 8
    with pytest.raises(DataError, match="programs must be one of"):
        n_programs(FAMILY_BY_NAME["organ"], "some")
    hashes = {}
    for programs in ("core", "all"):
        d = tmp_path / programs
        for s in ("train", "valid", "test"):
            (d / s).mkdir(parents=True)
        # clip index 5 plays program 5 % 4 = 1 (core) or program 5 (all): different sound
        utts = make_instruments(d, "small", 0, 1, counts=(6, 1, 1), duration=0.3, programs=programs)
        hashes[programs] = {Path(u.path).name: hashlib.sha256(Path(u.path).read_bytes()).hexdigest() for u in utts["train"]}
    name = "instruments-train-organ-0005.wav"
    assert hashes["core"][name] != hashes["all"][name]
    assert hashes["core"]["instruments-train-organ-0001.wav"] == hashes["all"]["instruments-train-organ-0001.wav"]


def test_mix_has_blank_clips_at_default_rate():
    # the same draw as make_instruments_mix's label choice
    blank = sum(item_rng(0, "instruments_mix", "train", i, "labels").random() < 0.05 for i in range(800))
    assert 20 <= blank <= 60  # about 5 % of 800


def test_lid_test_voices_unseen_in_training():
    assert not set(VARIANTS["test"]) & set(VARIANTS["train"])
    assert not set(VARIANTS["valid"]) & set(VARIANTS["train"])
    assert not set(SENTENCES["test"]) & set(SENTENCES["train"])
    for lang, regions in LANGUAGES.items():
        if len(regions) >= 3:
            assert not set(voices_for(lang, "test")) & set(voices_for(lang, "train"))


def test_audio_dir_of_the_user_is_not_deleted(tmp_path):
    from espnet_cls.data.common import reset_dir
    from espnet_cls.fileio import DataError

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.wav").write_bytes(b"x")
    with pytest.raises(DataError, match="refusing to overwrite"):
        reset_dir(tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.wav").exists()
    made = reset_dir(tmp_path / "gen")
    (made / "a.wav").write_bytes(b"x")
    assert list(reset_dir(tmp_path / "gen").glob("*.wav")) == []  # ours: emptied and remade


def test_common_helpers():
    assert sanitize_label(" Male speech, man speaking ") == "Male_speech_man_speaking"
    items = [(f"u{i:02d}", "a" if i < 10 else "b") for i in range(20)]
    s1, s2 = stratified_split(items, 0.2, 0.2, seed=5), stratified_split(items, 0.2, 0.2, seed=5)
    assert s1 == s2 and sorted(sum(s1.values(), [])) == sorted(k for k, _ in items)
    assert [len(s1[s]) for s in ("train", "valid", "test")] == [12, 4, 4]
    w = inverse_frequency_weights([Utt("x", "p", ("a",)), Utt("y", "p", ("a", "b")), Utt("z", "p", ())])
    assert w["x"] == pytest.approx(0.5) and w["y"] == pytest.approx(1.5) and w["z"] == pytest.approx(0.5)


def test_baseline_runs_on_small_sets(small):
    from espnet_cls.data.baseline import evaluate

    for corpus in ("instruments", "instruments_mix"):
        d = small[corpus]
        res = evaluate(d / "train", d / "test")
        key = "accuracy" if corpus == "instruments" else "mAP"
        assert 0.0 <= res[key] <= 1.0 and res["n_test"] == (20 if corpus == "instruments" else 12)
