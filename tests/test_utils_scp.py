"""split_scp.pl / filter_scp.pl / utt2spk<->spk2utt run as executables."""

import subprocess

import pytest

from espnet_cls.kaldi.scp import ScpError, chunk_sizes


def run(args, env, cwd=None, stdin=None):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, input=stdin)


@pytest.mark.parametrize("n, k, sizes", [(10, 3, [4, 3, 3]), (5, 5, [1] * 5), (7, 2, [4, 3]), (3, 1, [3])])
def test_chunk_sizes(n, k, sizes):
    assert chunk_sizes(n, k) == sizes


def test_chunk_sizes_too_many():
    with pytest.raises(ScpError):
        chunk_sizes(2, 3)


def test_split_scp_files(tmp_path, shell_env):
    lines = [f"u{i:02d} x{i}\n" for i in range(10)]
    (tmp_path / "in.scp").write_text("".join(lines))
    p = run(["split_scp.pl", "in.scp", "o1", "o2", "o3"], shell_env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    parts = [(tmp_path / f"o{i}").read_text().splitlines(keepends=True) for i in (1, 2, 3)]
    assert [len(x) for x in parts] == [4, 3, 3]
    assert sum(parts, []) == lines
    p = run(["split_scp.pl", "-j", "3", "1", "in.scp"], shell_env, cwd=tmp_path)
    assert p.stdout == "".join(lines[4:7])


def test_split_scp_error_when_too_many(tmp_path, shell_env):
    (tmp_path / "in.scp").write_text("a 1\nb 2\n")
    p = run(["split_scp.pl", "in.scp", "o1", "o2", "o3"], shell_env, cwd=tmp_path)
    assert p.returncode != 0
    assert "too many pieces" in p.stderr


def test_split_scp_utt2spk_keeps_speakers_together(tmp_path, shell_env):
    utts = [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"), ("c2", "c"), ("c3", "c")]
    (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utts))
    p = run(["split_scp.pl", "--utt2spk=utt2spk", "utt2spk", "o1", "o2"], shell_env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    o1 = {ln.split()[1] for ln in (tmp_path / "o1").read_text().splitlines()}
    o2 = {ln.split()[1] for ln in (tmp_path / "o2").read_text().splitlines()}
    assert o1 == {"a", "b"} and o2 == {"c"}
    p = run(["split_scp.pl", "--utt2spk=utt2spk", "utt2spk", "o1", "o2", "o3", "o4"], shell_env, cwd=tmp_path)
    assert p.returncode != 0 and "number of speakers 3" in p.stderr


def test_filter_scp(tmp_path, shell_env):
    (tmp_path / "ids").write_text("b\nd\n")
    (tmp_path / "in").write_text("a 1 x\nb 2 d\nc 3 b\nd 4 y\n")
    assert run(["filter_scp.pl", "ids", "in"], shell_env, cwd=tmp_path).stdout == "b 2 d\nd 4 y\n"
    assert run(["filter_scp.pl", "--exclude", "ids", "in"], shell_env, cwd=tmp_path).stdout == "a 1 x\nc 3 b\n"
    assert run(["filter_scp.pl", "-f", "3", "ids", "in"], shell_env, cwd=tmp_path).stdout == "b 2 d\nc 3 b\n"
    assert run(["filter_scp.pl", "ids"], shell_env, cwd=tmp_path, stdin="d 9\ne 1\n").stdout == "d 9\n"


def test_spk2utt_roundtrip(tmp_path, shell_env):
    u2s = "a1 a\na2 a\nb1 b\n"
    s2u = run(["utt2spk_to_spk2utt.pl"], shell_env, stdin=u2s).stdout
    assert s2u == "a a1 a2\nb b1\n"
    assert run(["spk2utt_to_utt2spk.pl"], shell_env, stdin=s2u).stdout == u2s


def test_closed_pipe_stops_quietly(tmp_path, shell_env):
    (tmp_path / "big.scp").write_text("".join(f"u{i} x\n" for i in range(50000)))
    for cmd in ("filter_scp.pl big.scp big.scp | head -1", "validate_data_dir.sh --help | head -1"):
        p = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], cwd=tmp_path, env=shell_env, capture_output=True, text=True)
        assert p.returncode in (0, 141), (cmd, p.stderr)
        assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, (cmd, p.stderr)
