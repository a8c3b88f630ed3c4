"""validate_data_dir.sh / fix_data_dir.sh / copy_data_dir.sh run as executables (LC_ALL=C, utils on PATH)."""

import subprocess
from pathlib import Path

import pytest


def run(args, env, cwd=None):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)


def make_dir(d: Path, utts=("u1", "u2", "u3")) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "wav.scp").write_text("".join(f"{u} /x/{u}.wav\n" for u in utts))
    (d / "text").write_text("".join(f"{u} dog\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    (d / "spk2utt").write_text("".join(f"{u} {u}\n" for u in utts))
    return d


def test_validate_accepts_good_dir(tmp_path, shell_env):
    d = make_dir(tmp_path / "good")
    p = run(["validate_data_dir.sh", "--no-feats", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert "Successfully validated" in p.stdout


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("text", "u2 dog\nu1 dog\nu3 dog\n", "not sorted or has duplicates (key out of order 'u1' at line 2"),
        ("wav.scp", "u1 a\nu1 b\nu2 c\nu3 d\n", "duplicate key 'u1'"),
        ("text", "u1 dog\nu2 dog\n", "lacks 'u3'"),
        ("wav.scp", "u1 a\nu2 b\nu3 c", "invalid newline"),
        ("utt2spk", "u1 u1\nu2\nu3 u3\n", "wrong format"),
        ("spk2utt", "u1 u1\nu2 u2 u3\n", "do not seem to match"),
    ],
)
def test_validate_rejects(tmp_path, shell_env, name, content, expect):
    d = make_dir(tmp_path / "bad")
    (d / name).write_text(content)
    p = run(["validate_data_dir.sh", "--no-feats", str(d)], shell_env)
    assert p.returncode == 1
    assert expect in p.stderr
    assert str(d / name) in p.stderr  # the message names the file


def test_validate_non_print(tmp_path, shell_env):
    d = make_dir(tmp_path / "np")
    (d / "text").write_text("u1 dog\nu2 d\x01g\nu3 dog\n")
    assert run(["validate_data_dir.sh", "--no-feats", str(d)], shell_env).returncode == 1
    assert run(["validate_data_dir.sh", "--no-feats", "--non-print", str(d)], shell_env).returncode == 0


def test_fix_keeps_intersection(tmp_path, shell_env):
    """Kaldi's rule: utts are kept when in every one of feats.scp, text, segments, utt2lang, wav.scp (no segments),
    utt2dur and utt2num_frames (value > 0); --utt_extra_files are only filtered to the kept utts."""
    d = make_dir(tmp_path / "fix", utts=("u1", "u2", "u3", "u4"))
    (d / "text").write_text("u4 cat\nu1 dog\nu3 dog\n")  # unsorted, u2 missing
    (d / "utt2num_samples").write_text("u1 10\nu2 20\nu4 40\n")  # u3 missing: not a reason to drop u3
    (d / "utt2weight").write_text("u1 1.0\nu2 1.0\nu3 1.0\nu4 0.5\n")
    (d / "utt2dur").write_text("u1 1.0\nu2 1.0\nu3 0\nu4 0.5\n")  # u3 has no duration
    p = run(["fix_data_dir.sh", "--utt_extra_files", "utt2num_samples utt2weight", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert "fix_data_dir.sh: kept 2 utterances out of 4" in p.stdout
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2num_samples", "utt2weight", "utt2dur"):
        keys = [ln.split()[0] for ln in (d / name).read_text().splitlines()]
        assert keys == ["u1", "u4"], name
    assert (d / ".backup" / "text").read_text() == "u4 cat\nu1 dog\nu3 dog\n"


def test_fix_never_empties_a_dir(tmp_path, shell_env):
    d = make_dir(tmp_path / "fix")
    (d / "text").write_text("x9 cat\nx1 dog\n")  # no utterance in common with utt2spk, and unsorted
    before = {f.name: f.read_bytes() for f in d.iterdir()}
    p = run(["fix_data_dir.sh", str(d)], shell_env)
    assert p.returncode == 1
    assert "no utterances remained" in p.stderr
    assert {f.name: f.read_bytes() for f in d.iterdir()} == before  # untouched, no .backup either


def test_fix_crlf_as_kaldi(tmp_path, shell_env):
    """utt2spk is rebuilt from spk2utt by perl's split, so its CRs go; text keeps its CRs (filtered as is)."""
    d = make_dir(tmp_path / "fix")
    (d / "utt2spk").write_text("u1 u1\r\nu2 u2\r\nu3 u3\r\n")
    (d / "text").write_text("u1 dog\r\nu2 dog\r\nu3 dog\r\n")
    p = run(["fix_data_dir.sh", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (d / "utt2spk").read_bytes() == b"u1 u1\nu2 u2\nu3 u3\n"
    assert (d / "text").read_bytes() == b"u1 dog\r\nu2 dog\r\nu3 dog\r\n"


def test_copy_data_dir_with_prefix(tmp_path, shell_env):
    src = make_dir(tmp_path / "src")
    (src / "utt2num_samples").write_text("u1 1\nu2 2\nu3 3\n")
    dest = tmp_path / "dest"
    p = run(["copy_data_dir.sh", "--utt-prefix", "sp-", "--validate_opts", "--non-print", str(src), str(dest)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (dest / "utt2spk").read_text() == "sp-u1 u1\nsp-u2 u2\nsp-u3 u3\n"
    assert (dest / "utt2num_samples").read_text().startswith("sp-u1 1\n")
    assert (dest / "wav.scp").read_text().startswith("sp-u1 /x/u1.wav\n")


def test_segments_dir(tmp_path, shell_env):
    d = tmp_path / "seg"
    d.mkdir()
    (d / "wav.scp").write_text("r1 /x/r1.wav\nr2 /x/r2.wav\nr3 /x/r3.wav\n")
    (d / "segments").write_text("r1-a r1 0.0 1.5\nr1-b r1 1.5 3.0\nr2-a r2 0 2\nr9-a r9 0 1\n")
    (d / "text").write_text("r1-a dog\nr1-b cat\nr2-a dog\nr9-a dog\n")
    (d / "utt2spk").write_text("r1-a r1-a\nr1-b r1-b\nr2-a r2-a\nr9-a r9-a\n")
    (d / "spk2utt").write_text("r1-a r1-a\nr1-b r1-b\nr2-a r2-a\nr9-a r9-a\n")
    p = run(["validate_data_dir.sh", "--no-feats", str(d)], shell_env)
    assert p.returncode == 1 and "recording-ids extracted from segments and wav.scp differ" in p.stderr
    assert str(d / "wav.scp") in p.stderr
    p = run(["fix_data_dir.sh", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert "kept 3 utterances out of 4" in p.stdout
    assert (d / "wav.scp").read_text() == "r1 /x/r1.wav\nr2 /x/r2.wav\n"  # unused recordings dropped
    dest = tmp_path / "seg2"
    p = run(["copy_data_dir.sh", "--utt-prefix", "p-", "--spk-prefix", "p-", str(d), str(dest)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (dest / "segments").read_text().startswith("p-r1-a r1 0.0 1.5\n")
    assert (dest / "wav.scp").read_text() == (d / "wav.scp").read_text()


def test_utils_through_espnet_symlinks_with_bare_system_python(tmp_path, repo_root):
    """egs2/x/cls1/utils -> ../../TEMPLATE/asr1/utils -> our utils/, run with `env -i PATH=/usr/bin:/bin`:
    the system python3, no venv, no PYTHONPATH, espnet_cls not installed."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3")
    template = tmp_path / "egs2" / "TEMPLATE" / "asr1"
    template.mkdir(parents=True)
    (template / "utils").symlink_to(repo_root / "utils")
    recipe = tmp_path / "egs2" / "x" / "cls1"
    recipe.mkdir(parents=True)
    (recipe / "utils").symlink_to("../../TEMPLATE/asr1/utils")
    train = make_dir(recipe / "data" / "train")
    for u in ("u1", "u2", "u3"):
        write_wav(recipe / f"{u}.wav", 8000, 4000)
    (train / "wav.scp").write_text("".join(f"{u} {recipe / u}.wav\n" for u in ("u1", "u2", "u3")))
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(tmp_path)}
    probe = subprocess.run(["python3", "-c", "import espnet_cls"], env=env, cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0  # the bare python really does not see our package
    cmds = [
        ["utils/validate_data_dir.sh", "--no-feats", "data/train"],
        ["utils/fix_data_dir.sh", "data/train"],
        ["utils/copy_data_dir.sh", "data/train", "data/copy"],
        ["utils/combine_data.sh", "data/comb", "data/train", "data/copy"],
        ["utils/subset_data_dir.sh", "--first", "data/train", "2", "data/sub"],
        ["utils/split_data.sh", "data/train", "2"],
        ["utils/data/get_utt2dur.sh", "data/train"],
        ["utils/run.pl", "JOB=1:2", "log/x.JOB.log", "utils/filter_scp.pl", "data/train/split2/JOB/utt2spk",
         "data/train/text"],
        ["bash", "-c", "utils/utt2spk_to_spk2utt.pl data/train/utt2spk | utils/spk2utt_to_utt2spk.pl | "
         "utils/apply_map.pl -f 2 data/train/utt2spk | utils/shuffle_list.pl | utils/split_scp.pl - log/a log/b"],
    ]  # fmt: skip
    for cmd in cmds:
        p = subprocess.run(cmd, env=env, cwd=recipe, capture_output=True, text=True)
        assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        assert "No module named" not in p.stderr
    assert (train / "utt2dur").read_text() == "u1 0.5\nu2 0.5\nu3 0.5\n"
    assert (recipe / "log" / "x.2.log").read_text().count("dog") == 1


def write_wav(path: Path, rate: int, n: int, channels: int = 1) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * n * channels)


def test_get_utt2dur_reads_wav_headers_and_pipes(tmp_path, shell_env, repo_root):
    g = str(repo_root / "utils" / "data" / "get_utt2dur.sh")
    d = make_dir(tmp_path / "d")
    write_wav(tmp_path / "a.wav", 16000, 24000)
    write_wav(tmp_path / "b.wav", 8000, 2000, channels=2)
    (d / "wav.scp").write_text(f"u1 {tmp_path}/a.wav\nu2 cat {tmp_path}/b.wav |\nu3 sox-free {tmp_path}/a.wav\n")
    p = run([g, str(d)], shell_env)  # u3: the command does not exist
    assert p.returncode == 1 and "line 3" in p.stderr and not (d / "utt2dur").exists()
    (d / "wav.scp").write_text(f"u1 {tmp_path}/a.wav\nu2 cat {tmp_path}/b.wav |\nu3 {tmp_path}/b.wav\n")
    p = run([g, str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (d / "utt2dur").read_text() == "u1 1.5\nu2 0.25\nu3 0.25\n"
    p = run([g, str(d)], shell_env)
    assert "already exists with the expected length" in p.stdout
    sf = pytest.importorskip("soundfile")
    import numpy as np

    sf.write(str(tmp_path / "c.flac"), np.zeros(4000, dtype="int16"), 16000)
    (d / "wav.scp").write_text(f"u1 {tmp_path}/c.flac\nu2 {tmp_path}/a.wav\nu3 {tmp_path}/b.wav\n")
    (d / "utt2dur").unlink()
    p = run([g, str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (d / "utt2dur").read_text() == "u1 0.25\nu2 1.5\nu3 0.25\n"
    p = run([str(repo_root / "utils" / "data" / "get_reco2dur.sh"), str(d)], shell_env)
    assert p.returncode == 0 and (d / "reco2dur").read_text() == (d / "utt2dur").read_text()
