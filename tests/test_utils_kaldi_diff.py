"""Differential cases: our utils/ against Kaldi's own scripts (egs/wsj/s5/utils), on the same inputs.

Each case builds a few files, runs one util command line in a recipe-like work dir whose ``utils`` is a
symlink to our utils/ (ESPnet's layout), with a bare environment (``env -i PATH=/usr/bin:/bin``: the system
python3, no venv, no espnet_cls installed), and compares with what Kaldi's script did on the same input
(recorded in tests/test_utils_kaldi_expected.json):

* the exit status (a perl ``die`` exits with errno or 255: any non-zero status counts as the same),
* stdout, byte for byte, for the table tools (filter_scp.pl, apply_map.pl, ...),
* every file of the data dir afterwards, byte for byte, for the data-dir tools (fix_data_dir.sh, ...).

validate_data_dir.sh is compared by exit status only (its messages are ours: they name the file and line).
Cases in DELIBERATE differ from Kaldi on purpose; docs/espnet_compat.md ("Kaldi utils") gives each reason,
and the test checks our documented behaviour instead.

Re-record or re-compare against a Kaldi checkout (perl and GNU coreutils needed)::

    python tests/test_utils_kaldi_diff.py compare /tmp/kaldi_utils/egs/wsj/s5/utils   # agree / differ counts
    python tests/test_utils_kaldi_diff.py record  /tmp/kaldi_utils/egs/wsj/s5/utils   # rewrite the json
    python tests/test_utils_kaldi_diff.py compare /tmp/kaldi_utils/egs/wsj/s5/utils ps_ sd_   # only some cases
    KALDI_UTILS=/tmp/kaldi_utils/egs/wsj/s5/utils python -m pytest tests/test_utils_kaldi_diff.py  # Kaldi too
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED = Path(__file__).with_name("test_utils_kaldi_expected.json")

BASE = {
    "utt2spk": "a1 a\na2 a\nb1 b\n",
    "spk2utt": "a a1 a2\nb b1\n",
    "text": "a1 dog\na2 cat\nb1 dog\n",
    "wav.scp": "a1 /x/a1.wav\na2 /x/a2.wav\nb1 /x/b1.wav\n",
}
SEG = {
    "utt2spk": "a1 a\na2 a\nb1 b\n",
    "spk2utt": "a a1 a2\nb b1\n",
    "text": "a1 dog\na2 cat\nb1 dog\n",
    "wav.scp": "ra /x/ra.wav\nrb /x/rb.wav\n",
    "segments": "a1 ra 0.0 1.5\na2 ra 1.5 3.0\nb1 rb 0 2\n",
}


def dd(base: Dict[str, str] = BASE, _dir: str = "d", **over: Optional[str]) -> Dict[str, str]:
    """Files of data dir ``d``: ``base`` with some files replaced (None deletes; ``wav_scp`` = wav.scp)."""
    files = dict(base)
    for k, v in over.items():
        k = k.replace("_scp", ".scp")
        if v is None:
            files.pop(k, None)
        else:
            files[k] = v
    return {f"{_dir}/{k}": v for k, v in files.items()}


E = {  # a second data dir, e/
    "utt2spk": "c1 c\nc2 c\n",
    "spk2utt": "c c1 c2\n",
    "text": "c1 bird\nc2 dog\n",
    "wav.scp": "c1 /x/c1.wav\nc2 /x/c2.wav\n",
}
FIVE = {
    "utt2spk": "a1 a\na2 a\na3 a\nb1 b\nc1 c\n",
    "spk2utt": "a a1 a2 a3\nb b1\nc c1\n",
    "text": "a1 x\na2 y\na3 z\nb1 x\nc1 y\n",
    "wav.scp": "a1 /a1.wav\na2 /a2.wav\na3 /a3.wav\nb1 /b1.wav\nc1 /c1.wav\n",
    "spk2gender": "a m\nb f\nc m\n",
    "utt2dur": "a1 3\na2 1.5\na3 2\nb1 0.5\nc1 9\n",
}


@dataclass
class Case:
    """One command line on one input.  kind: rc (exit status only), stdout (and stdout), dir (and the files)."""

    id: str
    cmd: str
    files: Dict[str, str] = field(default_factory=dict)
    kind: str = "rc"
    stdin: Optional[str] = None
    outdirs: List[str] = field(default_factory=lambda: ["d"])


V = "utils/validate_data_dir.sh"
VN = "utils/validate_data_dir.sh --no-feats"
F = "utils/fix_data_dir.sh d"

CASES: List[Case] = [
    # ---- validate_data_dir.sh
    Case("v_good", f"{VN} d", dd()),
    Case("v_good_segments", f"{VN} d", dd(SEG)),
    Case("v_no_dir", f"{VN} nodir"),
    Case("v_usage_two_dirs", f"{VN} d d", dd()),
    Case("v_unknown_option", f"{V} --bogus d", dd()),
    Case("v_no_spk2utt", f"{VN} d", dd(spk2utt=None)),
    Case("v_no_utt2spk", f"{VN} d", dd(utt2spk=None)),
    Case("v_empty_utt2spk", f"{VN} d", dd(utt2spk="")),
    Case("v_utt2spk_3_fields", f"{VN} d", dd(utt2spk="a1 a x\na2 a\nb1 b\n")),
    Case("v_utt2spk_crlf", f"{VN} d", dd(utt2spk="a1 a\r\na2 a\r\nb1 b\r\n")),
    Case("v_utt2spk_tabs", f"{VN} d", dd(utt2spk="a1\ta\na2\ta\nb1\tb\n")),
    Case("v_utt2spk_unsorted", f"{VN} d", dd(utt2spk="a2 a\na1 a\nb1 b\n")),
    Case("v_utt2spk_duplicate", f"{VN} d", dd(utt2spk="a1 a\na1 a\na2 a\nb1 b\n")),
    Case("v_utt2spk_no_final_newline", f"{VN} d", dd(utt2spk="a1 a\na2 a\nb1 b")),
    Case("v_utt2spk_bom", f"{VN} d", dd(utt2spk="\ufeffa1 a\na2 a\nb1 b\n")),
    Case(
        "v_not_spk_sorted",
        f"{VN} d",
        dd(utt2spk="a1 b\na2 a\nb1 b\n", spk2utt="a a2\nb a1 b1\n"),
    ),
    Case(
        "v_not_spk_sorted_no_spk_sort",
        f"{VN} --no-spk-sort d",
        dd(utt2spk="a1 b\na2 a\nb1 b\n", spk2utt="a a2\nb a1 b1\n"),
    ),
    Case("v_spk2utt_order_within_line", f"{VN} d", dd(spk2utt="a a2 a1\nb b1\n")),
    Case("v_spk2utt_missing_utt", f"{VN} d", dd(spk2utt="a a1\nb b1\n")),
    Case("v_spk2utt_unsorted", f"{VN} d", dd(spk2utt="b b1\na a1 a2\n")),
    Case("v_spk2utt_crlf", f"{VN} d", dd(spk2utt="a a1 a2\r\nb b1\r\n")),
    Case("v_spk2utt_speaker_without_utts", f"{VN} d", dd(spk2utt="a a1 a2\nb b1\nc\n")),
    Case("v_one_speaker", f"{VN} d", dd(utt2spk="a1 a\na2 a\nb1 a\n", spk2utt="a a1 a2 b1\n")),
    Case("v_no_text", f"{VN} d", dd(text=None)),
    Case("v_no_text_flag", f"{VN} --no-text d", dd(text=None)),
    Case("v_no_text_flag_bad_text", f"{VN} --no-text d", dd(text="b1 dog\na1 dog\n")),
    Case("v_text_unsorted", f"{VN} d", dd(text="a2 cat\na1 dog\nb1 dog\n")),
    Case("v_text_missing_utt", f"{VN} d", dd(text="a1 dog\nb1 dog\n")),
    Case("v_text_extra_utt", f"{VN} d", dd(text="a1 dog\na2 cat\nb1 dog\nc1 dog\n")),
    Case("v_text_sos", f"{VN} d", dd(text="a1 <s> dog\na2 cat\nb1 dog\n")),
    Case("v_text_eos", f"{VN} d", dd(text="a1 dog </s>\na2 cat\nb1 dog\n")),
    Case("v_text_hash0", f"{VN} d", dd(text="a1 dog\na2 #0\nb1 dog\n")),
    Case("v_text_sos_inside_word", f"{VN} d", dd(text="a1 x<s>y\na2 cat\nb1 dog\n")),
    Case("v_text_hash0_after_letter", f"{VN} d", dd(text="a1 dog\na2 a#0\nb1 dog\n")),
    Case("v_text_control_char", f"{VN} d", dd(text="a1 do\x01g\na2 cat\nb1 dog\n")),
    Case("v_text_control_char_non_print", f"{VN} --non-print d", dd(text="a1 do\x01g\na2 cat\nb1 dog\n")),
    Case("v_text_del_char", f"{VN} d", dd(text="a1 do\x7fg\na2 cat\nb1 dog\n")),
    Case("v_text_crlf", f"{VN} d", dd(text="a1 dog\r\na2 cat\r\nb1 dog\r\n")),
    Case("v_text_nbsp", f"{VN} d", dd(text="a1 hot\u00a0dog\na2 cat\nb1 dog\n")),
    Case("v_text_ideographic_space", f"{VN} d", dd(text="a1 hot\u3000dog\na2 cat\nb1 dog\n")),
    Case("v_text_utf8_letters", f"{VN} d", dd(text="a1 café\na2 猫\nb1 dog\n")),
    Case("v_text_not_utf8", f"{VN} d", dd(text="a1 caf\udce9\na2 cat\nb1 dog\n")),
    Case("v_text_empty_file", f"{VN} d", dd(text="")),
    Case("v_text_empty_transcript", f"{VN} d", dd(text="a1\na2 cat\nb1 dog\n")),
    Case("v_text_blank_first_line", f"{VN} d", dd(text="\na1 dog\na2 cat\nb1 dog\n")),
    Case("v_text_no_final_newline", f"{VN} d", dd(text="a1 dog\na2 cat\nb1 dog")),
    Case("v_text_tab", f"{VN} d", dd(text="a1\tdog\na2 cat\nb1 dog\n")),
    Case("v_no_wav", f"{VN} d", dd(wav_scp=None)),
    Case("v_no_wav_flag", f"{VN} --no-wav d", dd(wav_scp=None)),
    Case("v_no_wav_flag_bad_wav", f"{VN} --no-wav d", dd(wav_scp="b1 x\na1 y\na2 z\n")),
    Case("v_wav_tilde", f"{VN} d", dd(wav_scp="a1 ~/a1.wav\na2 /x/a2.wav\nb1 /x/b1.wav\n")),
    Case("v_wav_tilde_in_command", f"{VN} d", dd(wav_scp="a1 sox ~/a1.wav -t wav - |\na2 /x/a2.wav\nb1 /x/b1.wav\n")),
    Case("v_wav_missing_utt", f"{VN} d", dd(wav_scp="a1 /x/a1.wav\nb1 /x/b1.wav\n")),
    Case("v_wav_unsorted", f"{VN} d", dd(wav_scp="a2 /x/a2.wav\na1 /x/a1.wav\nb1 /x/b1.wav\n")),
    Case("v_wav_pipe", f"{VN} d", dd(wav_scp="a1 sox /x/a1.flac -t wav - |\na2 /x/a2.wav\nb1 /x/b1.wav\n")),
    Case("v_seg_end_minus_one", f"{VN} d", dd(SEG, segments="a1 ra 0.0 -1\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_end_equals_start", f"{VN} d", dd(SEG, segments="a1 ra 1.5 1.5\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_negative_start", f"{VN} d", dd(SEG, segments="a1 ra -0.5 1.5\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_3_fields", f"{VN} d", dd(SEG, segments="a1 ra 1.5\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_text_times", f"{VN} d", dd(SEG, segments="a1 ra x y\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_numeric_compare", f"{VN} d", dd(SEG, segments="a1 ra 9 10\na2 ra 1.5 3.0\nb1 rb 0 2\n")),
    Case("v_seg_missing_recording", f"{VN} d", dd(SEG, wav_scp="ra /x/ra.wav\n")),
    Case("v_seg_unused_recording", f"{VN} d", dd(SEG, wav_scp="ra /x/ra.wav\nrb /x/rb.wav\nrc /x/rc.wav\n")),
    Case("v_seg_no_wav", f"{VN} --no-wav d", dd(SEG, wav_scp=None)),
    Case("v_seg_utts_differ", f"{VN} d", dd(SEG, segments="a1 ra 0.0 1.5\nb1 rb 0 2\n")),
    Case("v_seg_utts_differ_no_text", f"{VN} --no-text d", dd(SEG, text=None, segments="a1 ra 0.0 1.5\nb1 rb 0 2\n")),
    Case("v_seg_unsorted", f"{VN} d", dd(SEG, segments="a2 ra 1.5 3.0\na1 ra 0.0 1.5\nb1 rb 0 2\n")),
    Case("v_r2fc_good", f"{VN} d", dd(SEG, reco2file_and_channel="ra fa A\nrb fb B\n")),
    Case("v_r2fc_channel_1", f"{VN} d", dd(SEG, reco2file_and_channel="ra fa 1\nrb fb A\n")),
    Case("v_r2fc_channel_x", f"{VN} d", dd(SEG, reco2file_and_channel="ra fa X\nrb fb A\n")),
    Case("v_r2fc_missing_reco", f"{VN} d", dd(SEG, reco2file_and_channel="ra fa A\n")),
    Case("v_no_feats", f"{V} d", dd()),
    Case("v_feats_good", f"{V} d", dd(feats_scp="a1 f.ark:1\na2 f.ark:2\nb1 f.ark:3\n")),
    Case("v_feats_mismatch", f"{V} d", dd(feats_scp="a1 f.ark:1\nb1 f.ark:3\n")),
    Case("v_cmvn_good", f"{VN} d", dd(cmvn_scp="a c.ark:1\nb c.ark:2\n")),
    Case("v_cmvn_mismatch", f"{VN} d", dd(cmvn_scp="a c.ark:1\n")),
    Case("v_spk2gender_good", f"{VN} d", dd(spk2gender="a m\nb f\n")),
    Case("v_spk2gender_word", f"{VN} d", dd(spk2gender="a male\nb f\n")),
    Case("v_spk2gender_missing_spk", f"{VN} d", dd(spk2gender="a m\n")),
    Case("v_spk2gender_uppercase", f"{VN} d", dd(spk2gender="a M\nb f\n")),
    Case("v_spk2warp_good", f"{VN} d", dd(spk2warp="a 0.9\nb 1.1\n")),
    Case("v_spk2warp_out_of_range", f"{VN} d", dd(spk2warp="a 2.0\nb 1.1\n")),
    Case("v_utt2warp_good", f"{VN} d", dd(utt2warp="a1 1.0\na2 0.95\nb1 1.05\n")),
    Case("v_utt2warp_text_value", f"{VN} d", dd(utt2warp="a1 fast\na2 0.95\nb1 1.05\n")),
    Case("v_utt2lang_mismatch", f"{VN} d", dd(utt2lang="a1 en\nb1 fr\n")),
    Case("v_utt2uniq_good", f"{VN} d", dd(utt2uniq="a1 x1\na2 x2\nb1 x1\n")),
    Case("v_vad_unsorted", f"{VN} d", dd(vad_scp="a2 v:1\na1 v:2\nb1 v:3\n")),
    Case("v_utt2dur_good", f"{VN} d", dd(utt2dur="a1 1.5\na2 2\nb1 0.01\n")),
    Case("v_utt2dur_zero", f"{VN} d", dd(utt2dur="a1 1.5\na2 0\nb1 0.01\n")),
    Case("v_utt2dur_negative", f"{VN} d", dd(utt2dur="a1 1.5\na2 -2\nb1 0.01\n")),
    Case("v_utt2dur_word", f"{VN} d", dd(utt2dur="a1 1.5\na2 abc\nb1 0.01\n")),
    Case("v_utt2dur_3_fields", f"{VN} d", dd(utt2dur="a1 1.5 s\na2 2\nb1 0.01\n")),
    Case("v_utt2dur_mismatch", f"{VN} d", dd(utt2dur="a1 1.5\nb1 0.01\n")),
    Case("v_utt2num_frames_good", f"{VN} d", dd(utt2num_frames="a1 100\na2 1e2\nb1 7\n")),
    Case("v_utt2num_frames_fraction", f"{VN} d", dd(utt2num_frames="a1 10.5\na2 100\nb1 7\n")),
    Case("v_utt2num_frames_zero", f"{VN} d", dd(utt2num_frames="a1 0\na2 100\nb1 7\n")),
    Case("v_utt2num_frames_word", f"{VN} d", dd(utt2num_frames="a1 ten\na2 100\nb1 7\n")),
    Case("v_reco2dur_segments_good", f"{VN} d", dd(SEG, reco2dur="ra 3.0\nrb 2.0\n")),
    Case("v_reco2dur_zero", f"{VN} d", dd(SEG, reco2dur="ra 3.0\nrb 0\n")),
    Case("v_reco2dur_no_segments", f"{VN} d", dd(reco2dur="a1 1\na2 2\nb1 3\n")),
    Case("v_reco2dur_no_segments_mismatch", f"{VN} d", dd(reco2dur="a1 1\nb1 3\n")),
    Case("v_utt2num_samples_mismatch", f"{VN} d", dd(utt2num_samples="a1 16000\n")),
    Case("v_utt2category_unsorted", f"{VN} d", dd(utt2category="b1 x\na1 y\n")),
    # ---- fix_data_dir.sh (exit status and every file afterwards)
    Case("f_good", F, dd(), "dir"),
    Case("f_text_unsorted", F, dd(text="b1 dog\na2 cat\na1 dog\n"), "dir"),
    Case("f_wav_duplicate", F, dd(wav_scp="a1 /x/first.wav\na1 /x/second.wav\na2 /x/a2.wav\nb1 /x/b1.wav\n"), "dir"),
    Case("f_text_missing_utt", F, dd(text="a1 dog\nb1 dog\n"), "dir"),
    Case("f_wav_missing_utt", F, dd(wav_scp="a2 /x/a2.wav\nb1 /x/b1.wav\n"), "dir"),
    Case("f_no_utt_left", F, dd(text="c1 dog\nc2 cat\n"), "dir"),
    Case("f_no_utt_left_unsorted", F, dd(text="c2 dog\nc1 cat\n", wav_scp="b1 x\na1 y\n"), "dir"),
    Case("f_utt2spk_crlf", F, dd(utt2spk="a1 a\r\na2 a\r\nb1 b\r\n"), "dir"),
    Case("f_text_crlf", F, dd(text="a1 dog\r\na2 cat\r\nb1 dog\r\n"), "dir"),
    Case("f_spk2utt_stale", F, dd(spk2utt="a a1\n"), "dir"),
    Case("f_no_spk2utt", F, dd(spk2utt=None), "dir"),
    Case("f_seg_unused_recording", F, dd(SEG, wav_scp="ra /x/ra.wav\nrb /x/rb.wav\nrc /x/rc.wav\n"), "dir"),
    Case("f_seg_missing_recording", F, dd(SEG, wav_scp="ra /x/ra.wav\n"), "dir"),
    Case("f_seg_whitespace", F, dd(SEG, segments="a1\tra 0.0   1.5\na2 ra 1.5 3.0\nb1 rb 0 2 extra\n"), "dir"),
    Case("f_seg_no_wav", F, dd(SEG, wav_scp=None), "dir"),
    Case("f_seg_r2fc_reco2dur", F, dd(SEG, reco2file_and_channel="ra fa A\nrb fb A\n", reco2dur="ra 3\nrb 2\n", wav_scp="ra /x/ra.wav\n"), "dir"),
    Case("f_spk2gender_extra", F, dd(spk2gender="a m\nb f\nc m\n"), "dir"),
    Case("f_spk2gender_missing_spk", F, dd(spk2gender="a m\n"), "dir"),
    Case("f_cmvn_missing_spk", F, dd(cmvn_scp="b c.ark:2\n"), "dir"),
    Case("f_utt2dur_zero", F, dd(utt2dur="a1 1.5\na2 0\nb1 2\n"), "dir"),
    Case("f_utt2num_frames_zero", F, dd(utt2num_frames="a1 0\na2 10\nb1 20\n"), "dir"),
    Case("f_feats_missing_utt", F, dd(feats_scp="a1 f:1\nb1 f:3\n"), "dir"),
    Case("f_utt2lang_filter", F, dd(utt2lang="a1 en\na2 en\n"), "dir"),
    Case("f_utt2uniq_vad_filtered", F, dd(text="a1 dog\nb1 dog\n", utt2uniq="a1 x\na2 x\nb1 y\n", vad_scp="a1 v:1\na2 v:2\nb1 v:3\n"), "dir"),
    Case("f_utt2spk_3_fields", F, dd(utt2spk="a1 a x\na2 a\nb1 b\n"), "dir"),
    Case("f_not_spk_sorted", F, dd(utt2spk="a1 b\na2 a\nb1 b\n", spk2utt="a a2\nb a1 b1\n"), "dir"),
    Case("f_no_utt2spk", F, dd(utt2spk=None), "dir"),
    Case("f_no_dir", "utils/fix_data_dir.sh nodir", {}, "rc"),
    Case("f_usage", "utils/fix_data_dir.sh d d", dd(), "dir"),
    Case("f_bad_option", "utils/fix_data_dir.sh --bogus x d", dd(), "dir"),
    Case("f_option_with_equals", "utils/fix_data_dir.sh --utt_extra_files=utt2category d", dd(), "dir"),
    Case(
        "f_utt_extra_files",
        "utils/fix_data_dir.sh --utt_extra_files utt2category d",
        dd(text="a1 dog\nb1 dog\n", utt2category="a1 x\na2 y\nb1 z\n"),
        "dir",
    ),
    Case(
        "f_utt_extra_files_dashes",
        "utils/fix_data_dir.sh --utt-extra-files 'utt2category utt2weight' d",
        dd(text="a1 dog\nb1 dog\n", utt2category="a1 x\na2 y\nb1 z\n", utt2weight="b1 1\na2 2\na1 3\n"),
        "dir",
    ),
    Case("f_spk_extra_files", "utils/fix_data_dir.sh --spk_extra_files spk2age d", dd(spk2age="a 3\nc 4\n"), "dir"),
    Case("f_text_blank_line", F, dd(text="a1 dog\n\na2 cat\nb1 dog\n"), "dir"),
    Case("f_text_no_final_newline", F, dd(text="a1 dog\na2 cat\nb1 dog"), "dir"),
    Case("f_utt2num_samples_untouched", F, dd(text="a1 dog\nb1 dog\n", utt2num_samples="a1 1\na2 2\nb1 3\n"), "dir"),
    Case("f_text_duplicate_key", F, dd(text="a1 dog\na1 cat\na2 cat\nb1 dog\n"), "dir"),
    # ---- filter_scp.pl
    Case("fs_basic", "utils/filter_scp.pl ids in.scp", {"ids": "a1\nb1 x\n", "in.scp": "a1 p\na2 q\nb1 r\n"}, "stdout"),
    Case("fs_exclude", "utils/filter_scp.pl --exclude ids in.scp", {"ids": "a1\n", "in.scp": "a1 p\na2 q\nb1 r\n"}, "stdout"),
    Case("fs_field2", "utils/filter_scp.pl -f 2 ids in.scp", {"ids": "q\nr\n", "in.scp": "a1 p\na2 q\nb1 r\n"}, "stdout"),
    Case("fs_field2_exclude", "utils/filter_scp.pl -f 2 --exclude ids in.scp", {"ids": "q\n", "in.scp": "a1 p\na2 q\n"}, "stdout"),
    Case("fs_field_short_line", "utils/filter_scp.pl -f 3 ids in.scp", {"ids": "q\n", "in.scp": "a1 p x\na2 q\n"}, "stdout"),
    Case("fs_stdin", "utils/filter_scp.pl ids", {"ids": "a2\n"}, "stdout", stdin="a1 p\na2 q\n"),
    Case("fs_dash_stdin", "utils/filter_scp.pl ids -", {"ids": "a2\n"}, "stdout", stdin="a1 p\na2 q\n"),
    Case("fs_two_inputs", "utils/filter_scp.pl ids in.scp in2.scp", {"ids": "a1\n", "in.scp": "a1 p\n", "in2.scp": "a1 q\n"}, "stdout"),
    Case("fs_blank_id_line", "utils/filter_scp.pl ids in.scp", {"ids": "a1\n\nb1\n", "in.scp": "a1 p\nb1 r\n"}, "stdout"),
    Case("fs_blank_input_line", "utils/filter_scp.pl ids in.scp", {"ids": "a1\nb1\n", "in.scp": "a1 p\n\nb1 r\n"}, "stdout"),
    Case("fs_no_final_newline", "utils/filter_scp.pl ids in.scp", {"ids": "a1\nb1\n", "in.scp": "a1 p\nb1 r"}, "stdout"),
    Case("fs_crlf_ids", "utils/filter_scp.pl ids in.scp", {"ids": "a1\r\nb1\r\n", "in.scp": "a1 p\r\nb1 r\n"}, "stdout"),
    Case("fs_duplicate_input_keys", "utils/filter_scp.pl ids in.scp", {"ids": "a1\n", "in.scp": "a1 p\na1 q\n"}, "stdout"),
    Case("fs_leading_space", "utils/filter_scp.pl ids in.scp", {"ids": "  a1 z\n", "in.scp": "  a1 p\nb1 q\n"}, "stdout"),
    Case("fs_missing_id_list", "utils/filter_scp.pl nofile in.scp", {"in.scp": "a1 p\n"}, "stdout"),
    Case("fs_missing_input", "utils/filter_scp.pl ids nofile", {"ids": "a1\n"}, "stdout"),
    Case("fs_usage", "utils/filter_scp.pl", {}, "stdout"),
    # ---- utt2spk_to_spk2utt.pl / spk2utt_to_utt2spk.pl
    Case("u2s_basic", "utils/utt2spk_to_spk2utt.pl u", {"u": "a1 a\nb1 b\na2 a\n"}, "stdout"),
    Case("u2s_stdin", "utils/utt2spk_to_spk2utt.pl", {}, "stdout", stdin="x1 x\ny1 y\n"),
    Case("u2s_blank_line", "utils/utt2spk_to_spk2utt.pl u", {"u": "a1 a\n\nb1 b\n"}, "stdout"),
    Case("u2s_3_fields", "utils/utt2spk_to_spk2utt.pl u", {"u": "a1 a\nb1 b c\n"}, "stdout"),
    Case("u2s_crlf", "utils/utt2spk_to_spk2utt.pl u", {"u": "a1 a\r\nb1 b\r\n"}, "stdout"),
    Case("u2s_two_args", "utils/utt2spk_to_spk2utt.pl u u", {"u": "a1 a\n"}, "stdout"),
    Case("s2u_basic", "utils/spk2utt_to_utt2spk.pl s", {"s": "a a1 a2\nb b1\n"}, "stdout"),
    Case("s2u_no_utts", "utils/spk2utt_to_utt2spk.pl s", {"s": "a a1 a2\nb\nc c1\n"}, "stdout"),
    Case("s2u_blank_line", "utils/spk2utt_to_utt2spk.pl s", {"s": "a a1\n\nb b1\n"}, "stdout"),
    # ---- apply_map.pl
    Case("am_basic", "utils/apply_map.pl m < in", {"m": "A a1 a2\nB b\n", "in": "A B\nB\n"}, "stdout"),
    Case("am_field1", "utils/apply_map.pl -f 1 m < in", {"m": "u1 x1\nu2 x2\n", "in": "u1 keep this\nu2 u1\n"}, "stdout"),
    Case("am_field_range", "utils/apply_map.pl -f 2- m < in", {"m": "A a\nB b\n", "in": "k A B\nj B\n"}, "stdout"),
    Case("am_field_colon", "utils/apply_map.pl -f 2:3 m < in", {"m": "A a\nB b\n", "in": "k A B C\n"}, "stdout"),
    Case("am_undefined", "utils/apply_map.pl m < in", {"m": "A a\n", "in": "A\nA C\nA\n"}, "stdout"),
    Case("am_permissive", "utils/apply_map.pl --permissive m < in", {"m": "A a\n", "in": "A C\n"}, "stdout"),
    Case("am_empty_map_line", "utils/apply_map.pl m < in", {"m": "A a\n\n", "in": "A\n"}, "stdout"),
    Case("am_key_only_map", "utils/apply_map.pl m < in", {"m": "A\nB b\n", "in": "A B A\n"}, "stdout"),
    Case("am_later_line_wins", "utils/apply_map.pl m < in", {"m": "A a\nA z\n", "in": "A\n"}, "stdout"),
    Case("am_usage", "utils/apply_map.pl < in", {"in": "A\n"}, "stdout"),
    Case("am_bad_field", "utils/apply_map.pl -f x m < in", {"m": "A a\n", "in": "A\n"}, "stdout"),
    # ---- sym2int.pl / int2sym.pl
    Case("s2i_basic", "utils/sym2int.pl -f 2- w t", {"w": "<eps> 0\ndog 1\ncat 2\n", "t": "u1 dog cat\nu2 cat\n"}, "stdout"),
    Case("s2i_oov", "utils/sym2int.pl -f 2- w t", {"w": "dog 1\n", "t": "u1 dog bird\n"}, "stdout"),
    Case("s2i_map_oov", "utils/sym2int.pl --map-oov '<unk>' -f 2- w t", {"w": "<unk> 9\ndog 1\n", "t": "u1 dog bird fish\n"}, "stdout"),
    Case("s2i_map_oov_number", "utils/sym2int.pl --map-oov 7 w t", {"w": "dog 1\n", "t": "dog bird\n"}, "stdout"),
    Case("s2i_map_oov_undefined", "utils/sym2int.pl --map-oov '<unk>' w t", {"w": "dog 1\n", "t": "dog\n"}, "stdout"),
    Case("s2i_bad_symtab", "utils/sym2int.pl w t", {"w": "dog 1 x\n", "t": "dog\n"}, "stdout"),
    Case("s2i_stdin", "utils/sym2int.pl w", {"w": "dog 01\n"}, "stdout", stdin="dog dog\n"),
    Case("i2s_basic", "utils/int2sym.pl -f 2- w t", {"w": "dog 1\ncat 2\n", "t": "u1 1 2\nu2 2\n"}, "stdout"),
    Case("i2s_noninteger", "utils/int2sym.pl w t", {"w": "dog 1\n", "t": "1 x\n"}, "stdout"),
    Case("i2s_unknown", "utils/int2sym.pl w t", {"w": "dog 1\n", "t": "1 3\n"}, "stdout"),
    Case("i2s_usage", "utils/int2sym.pl", {}, "stdout"),
    # ---- shuffle_list.pl
    Case("sh_default_seed", "utils/shuffle_list.pl in", {"in": "".join(f"line{i}\n" for i in range(12))}, "stdout"),
    Case("sh_srand", "utils/shuffle_list.pl --srand 7 in", {"in": "".join(f"u{i} x\n" for i in range(20))}, "stdout"),
    Case("sh_stdin", "utils/shuffle_list.pl --srand 3", {}, "stdout", stdin="a\nb\nc\nd\ne\n"),
    Case("sh_bad_srand", "utils/shuffle_list.pl --srand x in", {"in": "a\n"}, "stdout"),
    Case("sh_usage_option", "utils/shuffle_list.pl -x", {}, "stdout"),
    # ---- filter_scps.pl
    Case(
        "fss_basic",
        "utils/filter_scps.pl JOB=1:2 s/JOB/ids in.scp o/out.JOB.scp && cat o/out.1.scp o/out.2.scp",
        {"s/1/ids": "a1\n", "s/2/ids": "b1\na2\n", "in.scp": "a1 p\na2 q\nb1 r\nc1 s\n", "o/.keep": ""},
        "stdout",
    ),
    Case("fss_single_filter", "utils/filter_scps.pl JOB=1:2 ids in.scp out.JOB", {"ids": "a1\n", "in.scp": "a1 p\n"}, "stdout"),
    Case("fss_bad_range", "utils/filter_scps.pl JOB1:2 ids in.scp out", {"ids": "a1\n", "in.scp": "a1 p\n"}, "stdout"),
    Case("fss_usage", "utils/filter_scps.pl JOB=1:2 ids in.scp", {"ids": "a1\n", "in.scp": "a1 p\n"}, "stdout"),
    # ---- split_scp.pl
    Case("sp_three", "utils/split_scp.pl in o1 o2 o3 && cat o1 && echo -- && cat o2 && echo -- && cat o3",
         {"in": "".join(f"u{i} x\n" for i in range(8))}, "stdout"),
    Case("sp_too_many", "utils/split_scp.pl in o1 o2 o3", {"in": "u1 x\nu2 y\n"}, "stdout"),
    Case("sp_job", "utils/split_scp.pl -j 3 1 in", {"in": "".join(f"u{i} x\n" for i in range(7))}, "stdout"),
    Case("sp_job_one_based", "utils/split_scp.pl -j 3 3 --one-based in", {"in": "".join(f"u{i} x\n" for i in range(7))}, "stdout"),
    Case("sp_job_out_of_range", "utils/split_scp.pl -j 3 3 in", {"in": "u1 x\nu2 y\nu3 z\n"}, "stdout"),
    Case(
        "sp_utt2spk",
        "utils/split_scp.pl --utt2spk=u in o1 o2 && cat o1 && echo -- && cat o2",
        {"in": "a1 x\na2 x\na3 x\nb1 x\nc1 x\nc2 x\n", "u": "a1 a\na2 a\na3 a\nb1 b\nc1 c\nc2 c\n"},
        "stdout",
    ),
    Case("sp_utt2spk_too_few_speakers", "utils/split_scp.pl --utt2spk=u in o1 o2 o3", {"in": "a1 x\nb1 x\n", "u": "a1 a\nb1 b\n"}, "stdout"),
    Case("sp_empty_input", "utils/split_scp.pl in o1", {"in": ""}, "stdout"),
    # ---- parse_options.sh (through a script that sources it, as Kaldi's scripts do)
    Case("po_value", "bash s.sh --nj 3 --use-gpu true x", {"s.sh": "nj=1\nuse_gpu=false\n. utils/parse_options.sh\necho $nj $use_gpu $#\n"}, "stdout"),
    Case("po_bool_bad", "bash s.sh --use-gpu yes x", {"s.sh": "use_gpu=false\n. utils/parse_options.sh\necho $use_gpu\n"}, "stdout"),
    Case("po_unknown", "bash s.sh --nope 1 x", {"s.sh": "nj=1\n. utils/parse_options.sh\necho $nj\n"}, "stdout"),
    Case("po_equals", "bash s.sh --nj=3 x", {"s.sh": "nj=1\n. utils/parse_options.sh\necho $nj\n"}, "stdout"),
    Case("po_help", "bash s.sh --help", {"s.sh": "nj=1\nhelp_message=usage\n. utils/parse_options.sh\necho $nj\n"}, "stdout"),
    Case("po_empty_cmd", "bash s.sh --cmd '' x", {"s.sh": "cmd=run.pl\n. utils/parse_options.sh\necho $cmd\n"}, "stdout"),
    Case("po_config", "bash s.sh --config c.conf x", {"c.conf": "nj=5\n", "s.sh": "nj=1\nconfig=\n. utils/parse_options.sh\necho $nj $#\n"}, "stdout"),
    Case("po_stops_at_positional", "bash s.sh a --nj 3", {"s.sh": "nj=1\n. utils/parse_options.sh\necho $nj $@\n"}, "stdout"),
    # ---- copy_data_dir.sh
    Case("c_basic", "utils/copy_data_dir.sh d e", dd(), "dir", outdirs=["d", "e"]),
    Case("c_same_dir", "utils/copy_data_dir.sh d d", dd(), "dir"),
    Case("c_no_utt2spk", "utils/copy_data_dir.sh d e", dd(utt2spk=None), "dir", outdirs=["d", "e"]),
    Case("c_option_equals", "utils/copy_data_dir.sh --utt-prefix=p- d e", dd(), "rc"),
    Case("c_utt_prefix", "utils/copy_data_dir.sh --utt-prefix p- --spk-prefix p- d e", dd(), "dir", outdirs=["d", "e"]),
    Case("c_invalid_result", "utils/copy_data_dir.sh d e", dd(text="a1 dog\n"), "rc"),
    Case("c_crlf_and_spaces", "utils/copy_data_dir.sh d e", dd(text="a1  hot\tdog\r\na2 cat\r\nb1 dog\r\n", utt2spk="a1 a\r\na2 a\r\nb1 b\r\n"), "dir", outdirs=["d", "e"]),
    Case("c_segments", "utils/copy_data_dir.sh --utt-suffix -x d e", dd(SEG, reco2dur="ra 3\nrb 2\n", reco2file_and_channel="ra fa A\nrb fb A\n"), "dir", outdirs=["d", "e"]),
    Case("c_validate_opts", "utils/copy_data_dir.sh --validate-opts --non-print d e", dd(text="a1 do\x01g\na2 cat\nb1 dog\n"), "rc"),
]

CASES += [
    # ---- combine_data.sh
    Case("cb_basic", "utils/combine_data.sh out d e", {**dd(), **dd(E, _dir="e")}, "dir", outdirs=["out"]),
    Case("cb_text_not_everywhere", "utils/combine_data.sh out d e", {**dd(), **dd(E, _dir="e", text=None)}, "dir", outdirs=["out"]),
    Case("cb_utt2uniq_one_side", "utils/combine_data.sh out d e", {**dd(utt2uniq="a1 a1\na2 a1\nb1 b1\n"), **dd(E, _dir="e")}, "dir", outdirs=["out"]),
    Case(
        "cb_segments_one_side",
        "utils/combine_data.sh out d e",
        {**dd(SEG), **dd(E, _dir="e", utt2dur="c1 1.5\nc2 2\n")},
        "dir",
        outdirs=["out"],
    ),
    Case(
        "cb_extra_files",
        "utils/combine_data.sh --extra-files 'utt2category utt2uniq' out d e",
        {**dd(utt2category="a1 x\na2 y\nb1 z\n"), **dd(E, _dir="e", utt2category="c1 x\nc2 y\n")},
        "dir",
        outdirs=["out"],
    ),
    Case("cb_skip_fix", "utils/combine_data.sh --skip-fix true out d e", {**dd(), **dd(E, _dir="e", text="c2 dog\n")}, "dir", outdirs=["out"]),
    Case("cb_fix_drops", "utils/combine_data.sh out d e", {**dd(), **dd(E, _dir="e", text="c2 dog\n")}, "dir", outdirs=["out"]),
    Case("cb_same_ids_twice", "utils/combine_data.sh out d d2", {**dd(), **dd(_dir="d2", text="a1 other\na2 cat\nb1 dog\n")}, "dir", outdirs=["out"]),
    Case("cb_no_utt2spk", "utils/combine_data.sh out d e", {**dd(), **dd(E, _dir="e", utt2spk=None)}, "rc"),
    Case("cb_usage", "utils/combine_data.sh out", {}, "rc"),
    Case("cb_replaces_dest", "utils/combine_data.sh out d", {**dd(), "out/junk": "x\n"}, "dir", outdirs=["out"]),
    # ---- subset_data_dir.sh
    Case("ss_first", "utils/subset_data_dir.sh --first d 2 out", dd(FIVE), "dir", outdirs=["out"]),
    Case("ss_last", "utils/subset_data_dir.sh --last d 2 out", dd(FIVE), "dir", outdirs=["out"]),
    Case("ss_default", "utils/subset_data_dir.sh d 3 out", dd(FIVE), "dir", outdirs=["out"]),
    Case("ss_speakers", "utils/subset_data_dir.sh --speakers d 2 out", dd(FIVE), "dir", outdirs=["out"]),
    Case("ss_per_spk", "utils/subset_data_dir.sh --per-spk d 2 out", dd(FIVE), "dir", outdirs=["out"]),
    Case("ss_utt_list", "utils/subset_data_dir.sh --utt-list l d out", {**dd(FIVE), "l": "b1\na2 x\n"}, "dir", outdirs=["out"]),
    Case("ss_spk_list", "utils/subset_data_dir.sh --spk-list l d out", {**dd(FIVE), "l": "c\na\n"}, "dir", outdirs=["out"]),
    Case("ss_shortest", "utils/subset_data_dir.sh --shortest d 2 out", dd(FIVE, feats_scp="a1 f:1\na2 f:2\na3 f:3\nb1 f:4\nc1 f:5\n", utt2num_frames="a1 30\na2 10\na3 10\nb1 200\nc1 5\n"), "dir", outdirs=["out"]),
    Case("ss_shortest_no_feats", "utils/subset_data_dir.sh --shortest d 2 out", dd(FIVE), "rc"),
    Case("ss_segments", "utils/subset_data_dir.sh --first d 2 out", dd(SEG, reco2dur="ra 3\nrb 2\n"), "dir", outdirs=["out"]),
    Case("ss_too_many", "utils/subset_data_dir.sh d 9 out", dd(FIVE), "rc"),
    Case("ss_invalid_option", "utils/subset_data_dir.sh --bogus d 2 out", dd(FIVE), "rc"),
    Case("ss_usage", "utils/subset_data_dir.sh d out", dd(FIVE), "rc"),
    Case("ss_no_utt2spk", "utils/subset_data_dir.sh d 1 out", dd(FIVE, utt2spk=None), "rc"),
    # ---- split_data.sh
    Case("sd_per_spk", "utils/split_data.sh d 2", dd(FIVE), "dir"),
    Case("sd_per_utt", "utils/split_data.sh --per-utt d 2", dd(FIVE), "dir"),
    Case("sd_data_path", "utils/data/split_data.sh d 3", dd(FIVE, cmvn_scp="a c:1\nb c:2\nc c:3\n"), "dir"),
    Case("sd_segments", "utils/split_data.sh --per-utt d 2", dd(SEG, reco2file_and_channel="ra fa A\nrb fb A\n"), "dir"),
    Case("sd_too_many_speakers", "utils/split_data.sh d 4", dd(FIVE), "rc"),
    Case("sd_invalid_num", "utils/split_data.sh d x", dd(FIVE), "rc"),
    Case("sd_usage", "utils/split_data.sh d", dd(FIVE), "rc"),
    # ---- utils/data/get_utt2dur.sh, get_reco2dur.sh, get_segments_for_data.sh
    Case("gu_segments", "utils/data/get_utt2dur.sh d", dd(SEG, segments="a1 ra 0.0 1.5\na2 ra 1.5 3.25\nb1 rb 0 2\n"), "dir"),
    Case("gu_frames", "utils/data/get_utt2dur.sh d", dd(frame_shift="0.01\n", utt2num_frames="a1 100\na2 250\nb1 7\n"), "dir"),
    Case("gu_already", "utils/data/get_utt2dur.sh d", dd(utt2dur="a1 1\na2 2\nb1 3\n"), "dir"),
    Case("gu_nothing", "utils/data/get_utt2dur.sh d", dd(wav_scp=None), "rc"),
    Case("gu_usage", "utils/data/get_utt2dur.sh", {}, "rc"),
    Case("gr_copy_utt2dur", "utils/data/get_reco2dur.sh d", dd(utt2dur="a1 1\na2 2\nb1 3\n"), "dir"),
    Case("gr_already", "utils/data/get_reco2dur.sh d", dd(SEG, reco2dur="ra 3\nrb 2\n"), "dir"),
    Case("gs_from_utt2dur", "utils/data/get_segments_for_data.sh d", dd(utt2dur="a1 1\na2 2.5\nb1 3\n"), "stdout"),
    Case("gs_from_frames", "utils/data/get_segments_for_data.sh d", dd(frame_shift="0.01\n", utt2num_frames="a1 100\na2 250\nb1 7\n"), "stdout"),
    # ---- subset_scp.pl
    Case("sc_default", "utils/subset_scp.pl 3 in", {"in": "".join(f"u{i} x\n" for i in range(10))}, "stdout"),
    Case("sc_default_7", "utils/subset_scp.pl 7 in", {"in": "".join(f"u{i} x\n" for i in range(11))}, "stdout"),
    Case("sc_first", "utils/subset_scp.pl --first 2 in", {"in": "a\nb\nc\n"}, "stdout"),
    Case("sc_last", "utils/subset_scp.pl --last 2 in", {"in": "a\nb\nc\n"}, "stdout"),
    Case("sc_too_many", "utils/subset_scp.pl 5 in", {"in": "a\nb\n"}, "stdout"),
    Case("sc_quiet", "utils/subset_scp.pl --quiet 5 in", {"in": "a\nb\n"}, "stdout"),
    Case("sc_zero", "utils/subset_scp.pl 0 in", {"in": "a\nb\n"}, "stdout"),
]

SOX = {"bin/sox": "#!/bin/sh\nexit 0\n"}  # perturb_data_dir_speed.sh only checks that sox exists
PS = "chmod +x bin/sox && PATH=$PWD/bin:$PATH utils/perturb_data_dir_speed.sh"
CASES += [
    # ---- perturb_data_dir_speed.sh
    Case("ps_basic", f"{PS} 0.9 d out", {**SOX, **dd(utt2dur="a1 1.5\na2 3\nb1 0.7\n", reco2dur="a1 1.5\na2 3\nb1 0.7\n", spk2gender="a m\nb f\n")}, "dir", outdirs=["out"]),
    Case(
        "ps_segments",
        f"{PS} 1.1 d out",
        {**SOX, **dd(SEG, utt2dur="a1 1.5\na2 1.5\nb1 2\n", reco2dur="ra 3\nrb 2\n", reco2file_and_channel="ra fa A\nrb fb A\n",
                     segments="a1 ra 0.0 1.5\na2 ra 1.5 1.505\nb1 rb 0 2\n")},
        "dir",
        outdirs=["out"],
    ),
    Case("ps_no_spk_prefix", f"{PS} --include-spk-prefix false 1.1 d out", {**SOX, **dd(utt2dur="a1 1\na2 2\nb1 3\n", reco2dur="a1 1\na2 2\nb1 3\n")}, "dir", outdirs=["out"]),
    Case(
        "ps_pipes_and_arks",
        f"{PS} 0.9 d out",
        {**SOX, **dd(wav_scp="a1 flac -c -d /x/a1.flac |\na2 /x/w.ark:123\nb1 cat /x/b1.wav|\n", utt2dur="a1 1\na2 2\nb1 3\n", reco2dur="a1 1\na2 2\nb1 3\n")},
        "dir",
        outdirs=["out"],
    ),
    Case("ps_utt2uniq", f"{PS} 0.9 d out", {**SOX, **dd(utt2uniq="a1 x\na2 x\nb1 y\n", utt2dur="a1 1\na2 2\nb1 3\n", reco2dur="a1 1\na2 2\nb1 3\n")}, "dir", outdirs=["out"]),
    Case("ps_no_sox", "utils/perturb_data_dir_speed.sh 0.9 d out", dd(utt2dur="a1 1\na2 2\nb1 3\n"), "rc"),
    Case("ps_same_dir", f"{PS} 0.9 d d", {**SOX, **dd()}, "rc"),
    Case("ps_usage", f"{PS} 0.9 d", {**SOX, **dd()}, "rc"),
]

# Cases where we differ from Kaldi on purpose: id -> (our exit status, reason; docs/espnet_compat.md says the same).
DELIBERATE: Dict[str, tuple] = {
    "v_utt2spk_3_fields": (1, "Kaldi prints 'utt2spk has wrong format' but exits 0 (a bare `exit`); we exit 1"),
    "fs_missing_input": (1, "Kaldi's perl warns 'Can't open' and exits 0 with empty output; we exit 1"),
    "f_no_utt_left_unsorted": (1, "Kaldi has already sorted the files when it finds no utterance left; we leave the dir as it was"),
    "f_utt2spk_3_fields": (1, "Kaldi's perl dies after truncating spk2utt to nothing; we leave the dir as it was"),
    "f_not_spk_sorted": (1, "Kaldi has rewritten utt2spk and spk2utt in speaker order before it refuses; we leave the dir as it was"),
    "f_text_blank_line": (1, "Kaldi has sorted text (blank line first) before its perl dies; we leave the dir as it was"),
}


# The system PATH, without our venv; where /usr/bin has no python3, the base interpreter (not the venv's).
BARE_PATH = "/usr/bin:/bin"
if shutil.which("python3", path=BARE_PATH) is None:
    BARE_PATH += os.pathsep + os.path.join(sys.base_prefix, "bin")


def _enc(s: str) -> bytes:
    return s.encode("utf-8", errors="surrogateescape")


def _dec(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


def run_case(case: Case, utils_dir: Path, work: Path, kaldi: bool) -> dict:
    """Run one case in ``work`` (whose utils is a symlink to ``utils_dir``); rc, stdout and the output files."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "utils").symlink_to(utils_dir)
    for rel, text in case.files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_enc(text))
    path = f"{work / 'utils'}:{BARE_PATH}"  # utils/ on PATH as a recipe's path.sh does (combine_data.sh needs it)
    if kaldi:  # Kaldi's validate_data_dir.sh looks for a UTF-8 locale named "C.UTF-8" in `locale -a`
        shim = work.parent / "shim"
        shim.mkdir(exist_ok=True)
        (shim / "locale").write_text("#!/bin/sh\nprintf 'C\\nC.UTF-8\\nPOSIX\\n'\n")
        (shim / "locale").chmod(0o755)
        path = f"{shim}:{path}"
    env = {"PATH": path, "LC_ALL": "C", "HOME": str(work)}
    p = subprocess.run(
        ["bash", "-c", case.cmd], cwd=work, env=env, input=_enc(case.stdin or ""), capture_output=True, timeout=60
    )
    out = {"rc": p.returncode}
    if case.kind in ("stdout", "dir"):
        out["stdout"] = _dec(p.stdout) if case.kind == "stdout" else None  # noqa: E501
    if case.kind == "dir":
        files = {}
        for d in case.outdirs:
            base = work / d
            if not base.is_dir():
                continue
            for f in sorted(base.rglob("*")):
                rel = f.relative_to(work).as_posix()
                if f.is_file() and "/.backup/" not in f"/{rel}" and not rel.endswith((".tmp", ".ok")):
                    files[rel] = _dec(f.read_bytes())
        out["files"] = files
        out.pop("stdout")
    out["stderr"] = _dec(p.stderr)
    return out


def same(case: Case, ours: dict, theirs: dict) -> bool:
    """Agreement: same exit status (any non-zero for a perl die), same stdout / files where compared."""
    rc_ok = ours["rc"] == theirs["rc"] or (ours["rc"] != 0 and theirs["rc"] not in (0, 1))
    return rc_ok and all(ours.get(k) == theirs.get(k) for k in ("stdout", "files") if k in theirs)


def load_expected() -> dict:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kaldi_case(case, tmp_path):
    want = load_expected()[case.id]
    ours = run_case(case, REPO / "utils", tmp_path / "w", kaldi=False)
    if case.id in DELIBERATE:
        rc, reason = DELIBERATE[case.id]
        assert ours["rc"] == rc, f"{case.id}: {reason}; got {ours}"
        assert not same(case, ours, want), f"{case.id} is listed as a deliberate difference but agrees with Kaldi"
        return
    assert same(case, ours, want), f"{case.cmd}\nKaldi: {want}\nours:  {ours}"
    kaldi = os.environ.get("KALDI_UTILS")
    if kaldi:
        theirs = run_case(case, Path(kaldi).resolve(), tmp_path / "k", kaldi=True)
        theirs.pop("stderr")
        assert same(case, theirs, want) and theirs["rc"] == want["rc"], f"Kaldi now gives {theirs}, recorded {want}"


def test_case_count_and_expectations_cover_every_case():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 126
    assert set(ids) <= set(load_expected())
    assert set(DELIBERATE) <= set(ids)


def main(argv: List[str]) -> int:
    """``record KALDI_UTILS`` rewrites the json from Kaldi's scripts; ``compare KALDI_UTILS`` counts agree/differ."""
    if len(argv) < 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    mode, kaldi = argv[0], Path(argv[1]).resolve()
    only = argv[2:]  # optional case-id prefixes: record/compare just those (record merges into the json)
    cases = [c for c in CASES if not only or c.id.startswith(tuple(only))]
    with tempfile.TemporaryDirectory() as tmp:
        results = load_expected() if only and EXPECTED.exists() else {}
        agree, differ = [], []
        for case in cases:
            theirs = run_case(case, kaldi, Path(tmp) / "k", kaldi=True)
            theirs.pop("stderr")
            results[case.id] = theirs
            if mode == "compare":
                ours = run_case(case, REPO / "utils", Path(tmp) / "w", kaldi=False)
                (agree if same(case, ours, theirs) else differ).append((case, ours, theirs))
    if mode == "record":
        EXPECTED.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"recorded {len(cases)} cases in {EXPECTED}")
        return 0
    for case, ours, theirs in differ:
        tag = "deliberate" if case.id in DELIBERATE else "DIFFER"
        print(f"{tag}: {case.id}: {case.cmd}\n  Kaldi: {theirs}\n  ours:  {ours}")
    print(f"{len(cases)} cases: {len(agree)} agree, {len(differ)} differ ({sum(c.id in DELIBERATE for c, _, _ in differ)} deliberate)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
