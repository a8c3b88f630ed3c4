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
        ("text", "u2 dog\nu1 dog\nu3 dog\n", "not sorted"),
        ("wav.scp", "u1 a\nu1 b\nu2 c\nu3 d\n", "duplicate key 'u1'"),
        ("text", "u1 dog\nu2 dog\n", "differ"),
        ("wav.scp", "u1 a\nu2 b\nu3 c", "does not end in a newline"),
        ("utt2spk", "u1 u1\nu2\nu3 u3\n", "wrong format"),
        ("spk2utt", "u1 u1\nu2 u2 u3\n", "does not match"),
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
    d = make_dir(tmp_path / "fix", utts=("u1", "u2", "u3", "u4"))
    (d / "text").write_text("u4 cat\nu1 dog\nu3 dog\n")  # unsorted, u2 missing
    (d / "utt2num_samples").write_text("u1 10\nu2 20\nu4 40\n")  # u3 missing
    (d / "utt2weight").write_text("u1 1.0\nu2 1.0\nu3 1.0\nu4 0.5\n")
    p = run(["fix_data_dir.sh", "--utt_extra_files", "utt2num_samples utt2weight", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert "fix_data_dir.sh: kept 2 utterances out of 4" in p.stdout
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "utt2num_samples", "utt2weight"):
        keys = [ln.split()[0] for ln in (d / name).read_text().splitlines()]
        assert keys == ["u1", "u4"], name
    assert (d / ".backup" / "text").read_text() == "u4 cat\nu1 dog\nu3 dog\n"


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
    assert p.returncode == 1 and "recordings not in" in p.stderr and str(d / "segments") in p.stderr
    p = run(["fix_data_dir.sh", str(d)], shell_env)
    assert p.returncode == 0, p.stderr
    assert "kept 3 utterances out of 4" in p.stdout
    assert (d / "wav.scp").read_text() == "r1 /x/r1.wav\nr2 /x/r2.wav\n"  # unused recordings dropped
    dest = tmp_path / "seg2"
    p = run(["copy_data_dir.sh", "--utt-prefix", "p-", "--spk-prefix", "p-", str(d), str(dest)], shell_env)
    assert p.returncode == 0, p.stderr
    assert (dest / "segments").read_text().startswith("p-r1-a r1 0.0 1.5\n")
    assert (dest / "wav.scp").read_text() == (d / "wav.scp").read_text()
