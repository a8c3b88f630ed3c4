"""espnet_cls.contract: the one home of the shared facts (rates, types, token list, decisions, layouts)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from espnet_cls import contract as C


def test_parse_fs_accepts_espnet_spellings():
    good = {16000: 16000, "16000": 16000, "16k": 16000, "16K": 16000, "16kHz": 16000, "16khz": 16000,
            "16000Hz": 16000, "16 k": 16000, "44.1k": 44100, "22.05kHz": 22050, "8k": 8000, 8000.0: 8000,
            np.int64(48000): 48000}
    assert {k: C.parse_fs(k) for k in good} == good


@pytest.mark.parametrize("bad", ["abc", "0", "-16k", "16.5", "16 kbps", "", True, 0, -8000, 16000.5, "16k16"])
def test_parse_fs_rejects(bad):
    with pytest.raises(C.ContractError, match="not a sampling rate"):
        C.parse_fs(bad)


def test_one_parser_everywhere():
    """The frontend, the dump's CLI options and the model facts read '16kHz' alike (it used to fail at stage 5)."""
    from espnet_cls.bin.format_wav_scp import _fs as dump_fs
    from espnet_cls.models.frontend import DefaultFrontend

    assert DefaultFrontend(fs="16kHz").fs == dump_fs("16kHz") == C.model_facts({"frontend_conf": {"fs": "16kHz"}}).fs == 16000
    assert not hasattr(__import__("espnet_cls.audio", fromlist=["x"]), "parse_fs")
    assert not hasattr(__import__("espnet_cls.models.utils", fromlist=["x"]), "parse_fs")


def test_contract_imports_nothing_from_the_package():
    src = Path(C.__file__).read_text(encoding="utf-8")
    mods = [n.module or "" for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)]
    mods += [a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in mods if m.startswith("espnet_cls")], mods


def test_token_list(tmp_path):
    tl = C.TokenList.from_tokens(["dog", "cat", "<blank>", "<unk>"])
    assert tl.classes == ["dog", "cat"] and tl.n_classes == 2 and len(tl) == 4
    assert (tl.blank_id, tl.unk_id) == (2, 3)
    assert tl.token2id() == {"dog": 0, "cat": 1, "<blank>": 2, "<unk>": 3}
    espnet = C.TokenList.from_tokens(["a", "b", "<unk>"])  # ESPnet's lists end with <unk> only
    assert espnet.classes == ["a", "b"] and espnet.blank_id is None and espnet.unk_id == 2
    f = tmp_path / "token_list"
    f.write_text("a\nb\n<blank>\n<unk>\n\n")
    assert C.TokenList.read(f).classes == ["a", "b"] == C.TokenList.of(str(f)).classes
    assert C.with_special_tokens(["x", "y"]) == ["x", "y", "<blank>", "<unk>"]


@pytest.mark.parametrize(
    "lines, line, what",
    [(["a", "<blank>", "b"], 3, "after the special token"), (["a", "a"], 2, "duplicate"),
     (["a", "", "b"], 2, "one token"), (["a b"], 1, "one token"), (["<blank>", "<unk>"], None, "no classes")],
)
def test_token_list_errors_name_file_and_line(tmp_path, lines, line, what):
    f = tmp_path / "tl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(C.ContractError, match=what) as e:
        C.TokenList.read(f)
    assert e.value.path == str(f) and e.value.line == line
    assert str(e.value).startswith(f"{f}:{line}: " if line else f"{f}: ")


def test_scoring_and_model_use_the_same_classes(tmp_path):
    from espnet_cls.scoring import read_classes
    from espnet_cls.tasks.cls import build_model

    f = tmp_path / "tl"
    f.write_text("b\na\n<blank>\n<unk>\n")
    model = build_model({"token_list": str(f), "encoder": "cnn", "encoder_conf": {"channels": [4], "output_size": 8}})
    assert read_classes(f) == model.token_list[: model.n_classes] == C.TokenList.read(f).classes


def test_decide():
    p = np.array([[0.2, 0.7, 0.6], [0.1, 0.2, 0.3], [0.5, 0.5, 0.1]])
    assert C.decide(p, "multi-class").tolist() == [[False, True, False], [False, False, True], [True, False, False]]
    assert C.decided_ids(p, "multi-class") == [[1], [2], [0]]  # ties: the first
    assert C.decided_ids(p, "multi-label") == [[1, 2], [], [0, 1]]  # p >= 0.5, possibly none
    assert C.decided_ids(p, "multi-label", [0.1, 0.8, 0.25]) == [[0, 2], [0, 2], [0]]
    assert C.decided_ids(p[0], "multi-class") == [[1]]
    with pytest.raises(C.ContractError):
        C.decide(p, "multi-label", [0.5, 0.5])
    with pytest.raises(C.ContractError, match="multi-class, multi-label"):
        C.decide(p, "multiclass")


def test_model_facts():
    f = C.model_facts({})
    assert (f.fs, f.classification_type, f.frontend, f.normalize, f.uses_global_mvn) == (16000, "multi-class", "default", "utterance_mvn", False)
    f = C.model_facts({"frontend_conf": {"fs": "8k"}, "normalize": "global_mvn", "normalize_conf": {"stats_file": "s.npz"},
                       "model_conf": {"classification_type": "multi-label"}})
    assert (f.fs, f.classification_type, f.uses_global_mvn, f.stats_file) == (8000, "multi-label", True, "s.npz")
    assert C.model_facts({"frontend": "none", "normalize": "global_mvn"}).uses_global_mvn is False
    assert C.model_facts({}, fs="22.05k").fs == 22050
    with pytest.raises(C.ContractError, match="8000 Hz but the recipe's fs is 16000"):
        C.model_facts({"frontend_conf": {"fs": 8000}}, fs="16k")
    with pytest.raises(C.ContractError, match="classification_type"):
        C.model_facts({"model_conf": {"classification_type": "binary"}}, source="c.yaml")


def test_model_defaults_come_from_the_contract():
    import inspect

    from espnet_cls.models.cls_model import CLSModel
    from espnet_cls.tasks.cls import MODEL_DEFAULTS

    assert MODEL_DEFAULTS["frontend"] == C.DEFAULT_FRONTEND and MODEL_DEFAULTS["normalize"] == C.DEFAULT_NORMALIZE
    assert inspect.signature(CLSModel).parameters["classification_type"].default == C.DEFAULT_CLASSIFICATION_TYPE


def test_dump_layout_fs(tmp_path):
    d = C.DumpLayout(tmp_path / "dump" / "train")
    assert d.read_fs() is None
    assert "does not record its sampling rate" in d.check_fs("16k")  # a legacy dump: a warning, no error
    d.write_fs("16k")
    assert d.fs_file.read_text() == "16000\n" and d.read_fs() == 16000
    assert d.check_fs(16000) is None
    with pytest.raises(C.ContractError, match="the dump is at 16000 Hz but the model takes 8000 Hz") as e:
        d.check_fs("8k")
    assert e.value.path == str(d.fs_file)
    assert C.dump_of(d.wav_scp) == d
    assert d.job_dir(3) == d.root / "data" / "format.3" and d.filter_backup.name == ".filter_backup"


def test_exp_layout():
    e = C.ExpLayout("exp/cls_train_cnn")
    assert e.metrics_json("test") == Path("exp/cls_train_cnn/cls_test/scoring/metrics.json")
    assert e.packed_model("valid.acc.best.pth") == Path("exp/cls_train_cnn/cls_train_cnn_valid.acc.best.zip")
    assert C.best_model_file("acc") == "valid.acc.best.pth" and C.averaged_model_file("mAP", 3) == "valid.mAP.ave_3best.pth"
    assert C.epoch_model_file(3) == "3epoch.pth" and C.stats_dir_name("16k") == "cls_stats_16k"
    assert (C.key_metric("multi-class"), C.key_metric("multi-label")) == ("acc", "mAP")


def test_pcm16_round_matches_what_stage_2_writes(tmp_path):
    import soundfile as sf

    from espnet_cls.audio import write_audio

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, 4000), [1.2, -1.3, 0.99999, 1e-6, -1e-6, 0.5 / 32768, 1.5 / 32768]]).astype(np.float32)
    write_audio(str(tmp_path / "a.flac"), x, 16000)
    y, _ = sf.read(tmp_path / "a.flac", dtype="float32")
    np.testing.assert_array_equal(C.pcm16_round(x), y)
    np.testing.assert_array_equal(C.pcm16_round(y), y)  # already on the grid: unchanged
