"""Stage 2 (wav dump): scripts/audio/format_wav_scp.sh + espnet_cls.bin.format_wav_scp + espnet_cls.audio.

The fixture writes small real audio files in many formats (stereo 44.1 kHz, 8 kHz, 8/24/32-bit
int, float32, flac, ogg), a Kaldi pipe entry, a segments file over a long recording and an
unsorted wav.scp; the tests run the driver script through run.pl exactly as cls.sh does and
check every output file (mono, rate, length, content).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_cls.audio import AudioError, SegmentError, load_audio, resample, segment_frames
from espnet_cls.contract import parse_fs

FS = 16000
SCRIPT = "scripts/audio/format_wav_scp.sh"


def sine(freq: float, fs: int, dur: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(dur * fs))) / fs
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def peak_freq(x: np.ndarray, fs: int) -> float:
    """Frequency of the strongest FFT bin (Hann window)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * fs / len(x))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[200 : n - 200], b[200 : n - 200]  # skip the resampler's edges
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def run_script(args: list[str], cwd: Path, env: dict, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


_ERR = re.compile(r"^(?:\S+ \S+ \(\w+:\d+\) )?(ERROR: .*)$")


def error_lines(stderr: str) -> list[str]:
    """The ``ERROR: ...`` lines (with or without the log line's time/place prefix), not the driver's summary."""
    return [m.group(1) for m in map(_ERR.match, stderr.splitlines()) if m]


def read_kv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, v = line.split(maxsplit=1)
        out[k] = v
    return out


# name -> (writer kwargs, native fs, frequency, duration, expected mono signal at native fs)
def _make_corpus(d: Path) -> dict[str, dict]:
    """Write the audio files; return {utt: {"entry", "fs_in", "n_in", "freq", "mono"}}."""
    d.mkdir(parents=True, exist_ok=True)
    spec = {}

    def add(utt, fname, data, fs_in, freq, mono, **kw):
        sf.write(d / fname, data, fs_in, **kw)
        spec[utt] = {"entry": str(d / fname), "fs_in": fs_in, "n_in": len(data), "freq": freq, "mono": mono}

    # stereo 44.1 kHz, the channels differ: the mono mix is their mean
    left, right = sine(440, 44100, 0.5), sine(440, 44100, 0.5, amp=0.2)
    add("u_stereo44k", "stereo44k.wav", np.stack([left, right], 1), 44100, 440, (left + right) / 2, subtype="PCM_16")
    x = sine(300, 8000, 0.5)
    add("u_8k", "8k.wav", x, 8000, 300, x, subtype="PCM_16")
    x = sine(1000, 48000, 0.5)
    add("u_24bit", "24bit.wav", x, 48000, 1000, x, subtype="PCM_24")
    x = sine(500, 16000, 0.5)
    add("u_float", "float.wav", x, 16000, 500, x, subtype="FLOAT")
    x = sine(700, 22050, 0.5)
    add("u_flac", "a.flac", x, 22050, 700, x, subtype="PCM_16")
    x = sine(600, 16000, 0.5)
    add("u_ogg", "a.ogg", x, 16000, 600, x, format="OGG", subtype="VORBIS")
    x = sine(250, 11025, 0.5)
    add("u_8bit", "8bit.wav", x, 11025, 250, x, subtype="PCM_U8")
    x = sine(800, 32000, 0.5)
    add("u_32bit", "32bit.wav", x, 32000, 800, x, subtype="PCM_32")
    # a Kaldi pipe: "cat file |"
    x = sine(350, 44100, 0.5)
    sf.write(d / "piped.wav", x, 44100, subtype="PCM_16")
    spec["u_pipe"] = {"entry": f"cat {d / 'piped.wav'} |", "fs_in": 44100, "n_in": len(x), "freq": 350, "mono": x}
    return spec


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A work dir with data/mix/wav.scp (unsorted) over the corpus."""
    work = tmp_path_factory.mktemp("dump")
    spec = _make_corpus(work / "audio")
    (work / "data" / "mix").mkdir(parents=True)
    utts = sorted(spec)
    order = utts[1::2] + utts[0::2]  # not sorted
    assert order != sorted(order)
    (work / "data" / "mix" / "wav.scp").write_text("".join(f"{u} {spec[u]['entry']}\n" for u in order))
    return work, spec


@pytest.fixture(scope="module")
def dumped(corpus, repo_root, shell_env):
    """Stage 2 over data/mix with nj=2 through run.pl (as cls.sh)."""
    work, spec = corpus
    p = run_script(
        ["--nj", "2", "--cmd", "run.pl", "--audio-format", "flac", "--fs", "16k", "data/mix/wav.scp", "dump/mix"],
        work,
        shell_env,
        repo_root,
    )
    assert p.returncode == 0, p.stderr
    return work, spec, p


def test_every_output_is_mono_at_fs_with_right_length_and_content(dumped):
    work, spec, _ = dumped
    scp = read_kv(work / "dump/mix/wav.scp")
    n2s = read_kv(work / "dump/mix/utt2num_samples")
    assert sorted(scp) == sorted(spec) == sorted(n2s)
    # sorted in C locale, one job folder per part
    lines = (work / "dump/mix/wav.scp").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == sorted(spec, key=str.encode)
    assert {Path(v).parent.name for v in scp.values()} == {"format.1", "format.2"}
    assert (work / "dump/mix/feats_type").read_text().strip() == "raw"
    for utt, s in spec.items():
        path = work / scp[utt]
        assert path.suffix == ".flac" and path.parent.parent == work / "dump/mix/data"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (FS, 1, "FLAC", "PCM_16"), utt
        y, _ = sf.read(path, dtype="float64")
        expected_n = s["n_in"] * FS / s["fs_in"]
        assert abs(len(y) - expected_n) <= 1, (utt, len(y), expected_n)
        assert int(n2s[utt]) == len(y)
        assert abs(peak_freq(y, FS) - s["freq"]) <= FS / len(y), utt  # within one FFT bin
        ref = resample(s["mono"].astype(np.float32), s["fs_in"], FS)
        c = corr(y, ref)
        assert c > (0.95 if utt in ("u_ogg", "u_8bit") else 0.999), (utt, c)
        # level preserved (the stereo mix is the channel mean, not the sum)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.05), utt


def test_logs_and_parts(dumped):
    work, spec, p = dumped
    logs = sorted((work / "dump/mix/logs").glob("format_wav_scp.*.log"))
    assert [x.name for x in logs] == ["format_wav_scp.1.log", "format_wav_scp.2.log"]
    text = "".join(x.read_text() for x in logs)
    assert text.count("clips/s") == 2 and "failed" in text
    assert "Wrote dump/mix/wav.scp" in p.stderr and "clips/s" in p.stderr


def _mtimes(d: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in d.rglob("*.flac")}


def test_rerun_redoes_only_the_missing_output(dumped, repo_root, shell_env):
    work, spec, _ = dumped
    data = work / "dump/mix/data"
    scp = read_kv(work / "dump/mix/wav.scp")
    victim = work / scp["u_flac"]
    before = _mtimes(data)
    victim.unlink()
    # a temp file left by a killed job is cleaned up
    (victim.parent / ".u_24bit.flac.tmp999").write_bytes(b"half")
    p = run_script(["--nj", "2", "--cmd", "run.pl", "--fs", "16k", "data/mix/wav.scp", "dump/mix"], work, shell_env, repo_root)
    assert p.returncode == 0, p.stderr
    after = _mtimes(data)
    assert set(after) == set(before)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"u_flac.flac"}
    logs = "".join(x.read_text() for x in (work / "dump/mix/logs").glob("format_wav_scp.*.log"))
    n_written = sum(int(w) for w in _grab(logs, r"\((\d+) written"))
    n_reused = sum(int(w) for w in _grab(logs, r"(\d+) reused"))
    assert (n_written, n_reused) == (1, len(spec) - 1)
    assert not list(data.rglob(".*.tmp*"))
    assert read_kv(work / "dump/mix/wav.scp") == scp


def _grab(text: str, pattern: str) -> list[str]:
    return re.findall(pattern, text)


def test_changed_entry_or_nj_is_handled(corpus, repo_root, shell_env, tmp_path):
    """An edited wav.scp line is redone (source tag); another nj moves files instead of redoing them."""
    work0, spec = corpus
    work = tmp_path
    (work / "data/x").mkdir(parents=True)
    utts = ["u_8k", "u_float", "u_flac", "u_24bit"]
    (work / "data/x/wav.scp").write_text("".join(f"{u} {spec[u]['entry']}\n" for u in utts))
    args = ["--cmd", "run.pl", "--fs", "16k", "data/x/wav.scp", "dump/x"]
    assert run_script(["--nj", "2", *args], work, shell_env, repo_root).returncode == 0
    before = _mtimes(work / "dump/x/data")
    # point u_float at another file: only it is redone
    (work / "data/x/wav.scp").write_text(
        "".join(f"{u} {spec['u_8k' if u == 'u_float' else u]['entry']}\n" for u in utts)
    )
    p = run_script(["--nj", "2", *args], work, shell_env, repo_root)
    assert p.returncode == 0, p.stderr
    after = _mtimes(work / "dump/x/data")
    assert {k for k in after if after[k] != before[k]} == {"u_float.flac"}
    y, _ = sf.read(work / read_kv(work / "dump/x/wav.scp")["u_float"])
    assert abs(peak_freq(y, FS) - 300) < 5
    # nj 2 -> 1: files are moved to format.1, not decoded again; format.2 is removed
    before = after
    p = run_script(["--nj", "1", *args], work, shell_env, repo_root)
    assert p.returncode == 0, p.stderr
    after = _mtimes(work / "dump/x/data")
    assert after == before
    assert sorted(x.name for x in (work / "dump/x/data").iterdir()) == ["format.1"]
    assert all("/format.1/" in v for v in read_kv(work / "dump/x/wav.scp").values())
    # another format: wav files replace the flac ones
    p = run_script(["--nj", "1", "--audio-format", "wav", *args], work, shell_env, repo_root)
    assert p.returncode == 0, p.stderr
    assert sorted(x.suffix for x in (work / "dump/x/data/format.1").glob("u_*")) == [".wav"] * 4


@pytest.fixture(scope="module")
def long_rec(corpus) -> tuple[Path, list[float]]:
    """A 6 s recording at 16 kHz whose second k is a sine of 200*(k+1) Hz, written as 48 kHz stereo."""
    work, _ = corpus
    freqs = [200.0 * (k + 1) for k in range(6)]
    x = np.concatenate([sine(f, 48000, 1.0) for f in freqs])
    sf.write(work / "audio/long.wav", np.stack([x, x], 1), 48000, subtype="PCM_16")
    return work / "audio/long.wav", freqs


def test_segments_over_a_long_recording(corpus, long_rec, repo_root, shell_env, tmp_path):
    _, spec = corpus
    rec, freqs = long_rec
    work = tmp_path
    (work / "data/seg").mkdir(parents=True)
    (work / "data/seg/wav.scp").write_text(f"recB cat {rec} |\nrecA {rec}\n")
    segs = {  # utt: (rec, start, end, expected freq, expected seconds)
        "s3": ("recA", 2.0, 3.0, freqs[2], 1.0),
        "s1": ("recA", 0.0, 1.0, freqs[0], 1.0),
        "s_end": ("recA", 5.0, -1, freqs[5], 1.0),
        "s_over": ("recA", 5.25, 6.2, freqs[5], 0.75),  # ends 0.2 s past the end: truncated
        "p4": ("recB", 3.0, 4.0, freqs[3], 1.0),
        "p2": ("recB", 1.25, 1.75, freqs[1], 0.5),
    }
    (work / "data/seg/segments").write_text("".join(f"{u} {r} {s} {e}\n" for u, (r, s, e, _, _) in segs.items()))
    p = run_script(
        ["--nj", "2", "--cmd", "run.pl", "--fs", "16k", "--segments", "data/seg/segments", "data/seg/wav.scp", "dump/seg"],
        work,
        shell_env,
        repo_root,
    )
    assert p.returncode == 0, p.stderr
    scp = read_kv(work / "dump/seg/wav.scp")
    n2s = read_kv(work / "dump/seg/utt2num_samples")
    assert sorted(scp) == sorted(segs)
    for utt, (_, _, _, f, dur) in segs.items():
        y, fs = sf.read(work / scp[utt])
        assert fs == FS and y.ndim == 1
        assert abs(len(y) - dur * FS) <= 1, utt
        assert int(n2s[utt]) == len(y)
        assert abs(peak_freq(y, FS) - f) <= 2 * FS / len(y), utt


# ---- bad input: one line naming set, utt, file:line and cause; exit != 0; no wav.scp ----

BAD_CASES = {
    # case: (how to make the bad entry, expected cause fragment)
    "missing": ("missing.wav", "file not found"),
    "unreadable": ("garbage.wav", "cannot read audio file"),
    "zero_samples": ("empty.wav", "zero samples"),
    "nan": ("nan.wav", "NaN/Inf"),
    "failing_pipe": ("pipe", "pipe command failed (exit status 3)"),
}


def _bad_file(d: Path, case: str) -> str:
    if case == "missing":
        return str(d / "does_not_exist.wav")
    if case == "unreadable":
        (d / "garbage.wav").write_bytes(b"RIFF this is not really a wav file" * 10)
        return str(d / "garbage.wav")
    if case == "zero_samples":
        sf.write(d / "empty.wav", np.zeros(0), 16000, subtype="PCM_16")
        return str(d / "empty.wav")
    if case == "nan":
        x = sine(440, 16000, 0.2)
        x[100] = np.nan
        sf.write(d / "nan.wav", x, 16000, subtype="FLOAT")
        return str(d / "nan.wav")
    if case == "failing_pipe":
        return f"{sys.executable} -c 'import sys; sys.stderr.write(\"boom\\n\"); sys.exit(3)' |"
    raise ValueError(case)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_fails_with_one_clear_line(case, corpus, repo_root, shell_env, tmp_path):
    _, spec = corpus
    work = tmp_path
    (work / "data/bad").mkdir(parents=True)
    entry = _bad_file(work, case)
    lines = [f"a_ok {spec['u_8k']['entry']}", f"b_bad {entry}", f"c_ok {spec['u_float']['entry']}"]
    (work / "data/bad/wav.scp").write_text("\n".join(lines) + "\n")
    (work / "dump/bad").mkdir(parents=True)
    (work / "dump/bad/wav.scp").write_text("a_ok stale\n")  # an old list must not survive
    p = run_script(["--nj", "2", "--cmd", "run.pl", "--fs", "16k", "data/bad/wav.scp", "dump/bad"], work, shell_env, repo_root)
    assert p.returncode != 0
    err_lines = error_lines(p.stderr)
    assert len(err_lines) == 1, p.stderr
    assert err_lines[0].startswith("ERROR: data/bad/wav.scp:2: set bad, utt b_bad: "), err_lines[0]
    assert BAD_CASES[case][1] in err_lines[0]
    if case == "failing_pipe":
        assert "boom" in err_lines[0]
    assert not (work / "dump/bad/wav.scp").exists()
    assert not (work / "dump/bad/utt2num_samples").exists()
    assert not list((work / "dump/bad").glob(".*tmp*"))


SEG_BAD = {
    "beyond_end": ("rec 1.0 3.0", "ends beyond the recording"),  # the recording is 2 s; 1 s over > 0.5 s
    "start_beyond_end": ("rec 2.5 2.8", "at or beyond the end of the recording"),
    "end_before_start": ("rec 1.0 0.5", "is not after its start"),
    "unknown_recording": ("nosuchrec 0 1", "recording 'nosuchrec' is not in"),
}


@pytest.mark.parametrize("case", sorted(SEG_BAD))
def test_bad_segment(case, tmp_path, repo_root, shell_env):
    work = tmp_path
    (work / "data/sg").mkdir(parents=True)
    sf.write(work / "rec.wav", sine(440, 16000, 2.0), 16000, subtype="PCM_16")
    (work / "data/sg/wav.scp").write_text(f"rec {work / 'rec.wav'}\n")
    (work / "data/sg/segments").write_text(f"s1 rec 0 1\ns2 rec 1.0 2.2\ns3 {SEG_BAD[case][0]}\n")
    p = run_script(
        ["--nj", "1", "--cmd", "run.pl", "--fs", "16k", "--segments", "data/sg/segments", "data/sg/wav.scp", "dump/sg"],
        work,
        shell_env,
        repo_root,
    )
    assert p.returncode != 0
    err_lines = error_lines(p.stderr)
    assert len(err_lines) == 1, p.stderr
    assert err_lines[0].startswith("ERROR: data/sg/segments:3: set sg, utt s3: "), err_lines[0]
    assert SEG_BAD[case][1] in err_lines[0]
    assert not (work / "dump/sg/wav.scp").exists()
    if case in ("end_before_start", "unknown_recording"):
        # found by the source validation: nothing is written under dump/sg
        assert not (work / "dump/sg").exists()
        return
    # found when decoding: the good segments were written (and will be reused by a fixed re-run)
    assert (work / "dump/sg/data/format.1/s1.flac").exists()
    if case != "beyond_end":
        return
    (work / "data/sg/segments").write_text("s1 rec 0 1\ns2 rec 1.0 2.2\n")
    p = run_script(
        ["--nj", "1", "--cmd", "run.pl", "--fs", "16k", "--segments", "data/sg/segments", "data/sg/wav.scp", "dump/sg"],
        work,
        shell_env,
        repo_root,
    )
    assert p.returncode == 0, p.stderr
    assert "(0 written, 2 reused" in (work / "dump/sg/logs/format_wav_scp.1.log").read_text()
    assert read_kv(work / "dump/sg/utt2num_samples") == {"s1": "16000", "s2": "16000"}  # s2 truncated at 2.0 s


def test_malformed_segments_file(tmp_path, repo_root, shell_env):
    """A malformed input file fails every job the same way: reported once, with file and line."""
    sf.write(tmp_path / "rec.wav", sine(440, 16000, 2.0), 16000, subtype="PCM_16")
    (tmp_path / "data/m").mkdir(parents=True)
    (tmp_path / "data/m/wav.scp").write_text(f"rec {tmp_path / 'rec.wav'}\n")
    (tmp_path / "data/m/segments").write_text("s1 rec 0 1\ns2 rec zero 1\n")
    p = run_script(
        ["--nj", "2", "--cmd", "run.pl", "--fs", "16k", "--segments", "data/m/segments", "data/m/wav.scp", "dump/m"],
        tmp_path,
        shell_env,
        repo_root,
    )
    assert p.returncode != 0
    err_lines = error_lines(p.stderr)
    assert err_lines == ["ERROR: data/m/segments:2: start/end are not numbers: 'zero' '1'"], p.stderr
    assert not (tmp_path / "dump/m/wav.scp").exists()


# ---- the library API (also used by the Python Classifier) ----


def test_parse_fs():
    assert [parse_fs(v) for v in ("16k", "16000", "8k", "44.1k", "22.05k", "48kHz", 16000)] == [
        16000, 16000, 8000, 44100, 22050, 48000, 16000,
    ]
    for bad in ("abc", "0", "-16k", "16.5"):
        with pytest.raises(ValueError):
            parse_fs(bad)


def test_load_audio_api(corpus):
    _, spec = corpus
    s = spec["u_stereo44k"]
    x, fs = load_audio(s["entry"], fs=None)
    assert fs == 44100 and x.dtype == np.float32 and x.ndim == 1 and len(x) == s["n_in"]
    np.testing.assert_allclose(x, s["mono"], atol=2e-4)
    y, fs = load_audio(s["entry"], fs=16000, start=0.1, end=0.3)
    assert fs == 16000 and abs(len(y) - 3200) <= 1
    z, _ = load_audio(spec["u_pipe"]["entry"], fs=8000)
    assert abs(len(z) - 4000) <= 1
    with pytest.raises(AudioError, match="file not found"):
        load_audio("/nonexistent.wav")
    with pytest.raises(SegmentError):
        load_audio(s["entry"], start=1.0, end=2.0)


def test_segment_frames_tolerance():
    assert segment_frames(16000, 16000, 0.5, None, 0.5) == (8000, 16000)
    assert segment_frames(16000, 16000, 0.5, 1.4, 0.5) == (8000, 16000)  # 0.4 s over: truncated
    with pytest.raises(SegmentError):
        segment_frames(16000, 16000, 0.5, 1.6, 0.5)


def test_write_wav_format_and_clipping(tmp_path):
    """Direct worker call: --audio_format wav; out-of-range float input is clipped, not wrapped."""
    from espnet_cls.bin.format_wav_scp import main

    x = sine(100, 16000, 0.1, amp=2.0)
    sf.write(tmp_path / "loud.wav", x, 16000, subtype="FLOAT")
    (tmp_path / "wav.scp").write_text(f"loud {tmp_path / 'loud.wav'}\n")
    rc = main(["--fs", "16000", "--audio_format", "wav", str(tmp_path / "wav.scp"), str(tmp_path / "out")])
    assert rc == 0
    y, fs = sf.read(tmp_path / "out/loud.wav", dtype="int16")
    assert sf.info(tmp_path / "out/loud.wav").format == "WAV" and fs == 16000
    assert y.max() == 32767 and y.min() == -32768
    assert np.all(np.sign(y[x > 1.0]) > 0)  # clipped high, never wrapped to negative
    assert (tmp_path / "out/wav.scp").read_text() == f"loud {tmp_path / 'out' / 'loud.wav'}\n"
    assert os.path.exists(tmp_path / "out/utt2num_samples")



def test_killed_job_leaves_only_complete_files_and_resumes(tmp_path, shell_env):
    """SIGKILL a worker mid-run: every <utt>.flac left is complete, and a re-run redoes only the rest."""
    import signal
    import time

    n = 40
    x = sine(440, 44100, 1.0)
    sf.write(tmp_path / "src.wav", np.stack([x, x], 1), 44100, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text("".join(f"u{i:03d} {tmp_path / 'src.wav'}\n" for i in range(n)))
    out = tmp_path / "format.1"
    cmd = [sys.executable, "-m", "espnet_cls.bin.format_wav_scp", "--fs", "16k", str(tmp_path / "wav.scp"), str(out)]
    proc = subprocess.Popen(cmd, env=shell_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("u*.flac"))) < 3 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("u*.flac"))
    if len(done) == n:
        pytest.skip("the job finished before it could be killed")
    assert not (out / "wav.scp").exists()
    for f in done:  # complete: all 16000 samples decode
        assert sf.info(f).frames == 16000
        assert len(sf.read(f)[0]) == 16000
    p = subprocess.run(cmd, env=shell_env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"({n - len(done)} written, {len(done)} reused, 0 failed)" in p.stderr
    assert len((out / "wav.scp").read_text().splitlines()) == n
    assert not list(out.glob(".*tmp*"))


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_pipe_with_streamed_wav_header(tmp_path, size):
    """A WAV written to a pipe has unknown sizes in its header (0 or 0xFFFFFFFF): still read in full."""
    import io
    import struct

    x = sine(440, 16000, 0.5)
    b = io.BytesIO()
    sf.write(b, x, 16000, format="WAV", subtype="PCM_16")
    data = bytearray(b.getvalue())
    i = data.find(b"data")
    data[4:8] = struct.pack("<I", size)
    data[i + 4 : i + 8] = struct.pack("<I", size)
    (tmp_path / "streamed.wav").write_bytes(bytes(data))
    y, fs = load_audio(f"cat {tmp_path / 'streamed.wav'} |", fs=None)
    assert fs == 16000 and len(y) == len(x)
    np.testing.assert_allclose(y, x, atol=1e-4)
