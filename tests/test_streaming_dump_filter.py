"""Stages 2 and 3 stream a sorted data dir (memory flat in N, issue 18); other dirs go through
the in-memory tables. Both ways must write the same files: each test runs the streamed path and,
with the fast path switched off, the in-memory one, and compares every output byte for byte."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_cls import dump, filtering
from espnet_cls.dump import dump_begin, dump_end, format_wav_scp
from espnet_cls.fileio import DataError

FS = 16000


def _wav(path: Path, n: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / FS), FS, subtype="PCM_16")
    return str(path)


def _data_dir(root: Path, spk_of) -> Path:
    """data/x: 7 sorted clips (one 2 samples long), text (one empty), utt2spk by ``spk_of``, spk2gender."""
    d = root / "data" / "x"
    d.mkdir(parents=True)
    utts = [f"u{i}" for i in range(7)]
    (d / "wav.scp").write_text(
        "".join(f"{u} {_wav(root / 'wav' / f'{u}.wav', 2 if i == 3 else 1600 + 10 * i)}\n" for i, u in enumerate(utts))
    )
    (d / "text").write_text("".join(f"{u} dog\n" if i != 5 else f"{u}\n" for i, u in enumerate(utts)))
    (d / "utt2spk").write_text("".join(f"{u} {spk_of(i)}\n" for i, u in enumerate(utts)))
    (d / "spk2gender").write_text("".join(f"{s} m\n" for s in sorted({spk_of(i) for i in range(7)})))
    return d


def _stage2_and_3(root: Path, nj: int) -> Path:
    """The driver's steps for data/x into dump/x (split like utils/split_scp.pl), then stage 3."""
    src = root / "data" / "x"
    out = root / "dump" / "x"
    nj = dump_begin(str(src / "wav.scp"), str(out), nj, copy_data_dir=True)
    keys = (out / "logs" / "keys.all").read_text().splitlines()
    for j in range(nj):
        part = out / "logs" / f"keys.{j + 1}.scp"
        part.write_text("".join(f"{k}\n" for k in keys[j * len(keys) // nj : (j + 1) * len(keys) // nj]))
        res = format_wav_scp(str(src / "wav.scp"), str(out / "data" / f"format.{j + 1}"), FS, "flac", keys=str(part))
        assert not res.errors
    dump_end(str(src / "wav.scp"), str(out), nj, FS, copy_data_dir=True)
    (out / "fs").write_text(f"{FS}\n")
    filtering.filter_data_dir(str(out), FS, 0.05)
    return out


def _lists(d: Path) -> dict:
    return {
        p.relative_to(d).as_posix(): p
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.suffix not in (".flac", ".log")
    }


@pytest.mark.parametrize(
    "spk_of", [lambda i: f"s{i // 3}", lambda i: f"s{(7 - i) % 3}"], ids=["speakers_sorted", "speakers_unsorted"]
)
def test_streamed_and_in_memory_paths_write_the_same_files(tmp_path, monkeypatch, spk_of):
    outs = {}
    taken: list = []
    for way in ("streamed", "in_memory"):
        root = tmp_path / way
        _data_dir(root, spk_of)
        with monkeypatch.context() as m:
            if way == "streamed":  # record that the streamed paths were taken (they return None to fall back)
                for mod, fn in ((dump, "_validate_sorted"), (filtering, "_filter_sorted")):
                    orig = getattr(mod, fn)
                    m.setattr(mod, fn, lambda *a, _o=orig, **k: taken.append(_o(*a, **k)) or taken[-1])
            if way == "in_memory":
                m.setattr(dump, "_validate_sorted", lambda *a, **k: None)
                m.setattr(dump, "_ascending", lambda rows: False)
                m.setattr(filtering, "_filter_sorted", lambda *a, **k: None)
            outs[way] = _stage2_and_3(root, nj=2)
    assert len(taken) == 3 and all(r is not None for r in taken)  # begin, end, filter
    a, b = _lists(outs["streamed"]), _lists(outs["in_memory"])
    assert sorted(a) == sorted(b)
    for name in a:
        if name.startswith("data/format.") and name.endswith("wav.scp"):  # the paths name the work dir
            assert a[name].read_text().replace(str(tmp_path / "streamed"), "X") == b[name].read_text().replace(
                str(tmp_path / "in_memory"), "X"
            ), name
        elif name in ("wav.scp", ".filter_backup/wav.scp", ".filter_backup/state.json"):
            continue  # absolute paths inside: compared through the parts and the other lists
        else:
            assert filecmp.cmp(a[name], b[name], shallow=False), name
    d = outs["streamed"]
    assert (d / "wav.scp").read_text().split()[::2] == ["u0", "u1", "u2", "u4", "u6"]  # u3 too short, u5 no label
    assert "u3" not in (d / "spk2utt").read_text()
    assert not [p for p in d.rglob(".*tmp*")]


def test_streamed_job_reports_a_key_missing_from_wav_scp(tmp_path):
    d = _data_dir(tmp_path, lambda i: "s")
    keys = tmp_path / "keys.1.scp"
    keys.write_text("u0\nu1a\nu2\n")
    res = format_wav_scp(str(d / "wav.scp"), str(tmp_path / "format.1"), FS, "flac", keys=str(keys))
    assert [str(e).split(": ", 1)[1] for e in res.errors] == ["set x, utt u1a: not in wav.scp"]
    assert not (tmp_path / "format.1" / "wav.scp").exists()
    assert not list((tmp_path / "format.1").glob(".*tmp*"))


def test_end_names_a_part_that_misses_an_utterance(tmp_path):
    root = tmp_path
    _data_dir(root, lambda i: "s")
    out = _stage2_and_3(root, nj=2)
    part = out / "data" / "format.2" / "utt2num_samples"
    part.write_text("".join(part.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"utt2num_samples parts do not match .*\(1 missing, e\.g\. \['u6'\]"):
        dump_end(str(root / "data" / "x" / "wav.scp"), str(out), 2, FS, copy_data_dir=True)
