import pytest

from espnet_cls.fileio import DataError, atomic_write, read_kv, write_kv


def test_read_kv_and_errors(tmp_path):
    p = tmp_path / "wav.scp"
    p.write_text("a /x.wav\nb sox y.wav -t wav - |\n")
    assert read_kv(p) == {"a": "/x.wav", "b": "sox y.wav -t wav - |"}
    p.write_text("a /x.wav\na /y.wav\n")
    with pytest.raises(DataError, match=r"wav.scp:2: duplicate key 'a'"):
        read_kv(p)
    p.write_text("a /x.wav\nb\n")
    with pytest.raises(DataError, match=r"wav.scp:2: .*no value"):
        read_kv(p)
    assert read_kv(p, allow_empty_value=True)["b"] == ""


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    write_kv(out, [("b", "2"), ("a", "1")])
    assert out.read_text() == "a 1\nb 2\n"


def test_atomic_write_permissions_follow_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_kv(tmp_path / "x", [("a", "1")])
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644
