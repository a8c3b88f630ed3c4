"""ESPnet-trained cls1 models score in espnet_cls exactly as in real ESPnet (marker ``espnet``).

Real ESPnet 202611 (``$ESPNET_ORACLE_VENV``, tools/install_espnet_oracle.sh) trains tiny
transformer / conformer / BEATs models for one epoch on tone clips made here
(``espnet2.bin.cls_train``), scores the test clips (``espnet2.bin.cls_inference
--output_all_probabilities true``) and packs one (``espnet2.bin.pack cls``). The same exp dir,
zip and a Hub snapshot of it are then scored by our stage 7 (``espnet_cls.bin.cls_inference``,
batched and batch 1) and ``Classifier.from_pretrained``: every probability within 1e-4 and the
same ``text``. The max differences are printed (run with ``-s``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import espnet_oracle as eo  # noqa: E402

pytestmark = [
    pytest.mark.espnet,
    pytest.mark.skipif(eo.oracle_python() is None, reason="ESPnet oracle venv missing: run tools/install_espnet_oracle.sh"),
]

TOL = 1e-4
SIZES = {"train": 12, "valid": 4, "test": 7}
COMMON = dict(
    batch_type="folded", batch_size=4, max_epoch=1, optim="adam", optim_conf={"lr": 0.002}, seed=0,
    best_model_criterion=[["valid", "acc", "max"]], keep_nbest_models=1, num_att_plot=0,
    frontend="default", frontend_conf={"fs": "16k", "n_mels": 40},
    decoder="linear", model_conf={"classification_type": "multi-class"},
)
RESULTS: dict = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("espnet_oracle")
    eo.make_corpus(r, SIZES)
    return r


def ours_stage7(exp_config: Path, model_file: Path, data_dir: Path, out: Path, batch_size: int, packed: bool = False) -> dict:
    """Our stage 7 in-process: espnet_cls.bin.cls_inference with ESPnet's arguments."""
    from espnet_cls.bin import cls_inference

    args = ["--ngpu", "0", "--data_path_and_name_and_type", f"{data_dir / 'wav.scp'},speech,sound",
            "--output_dir", str(out), "--output_all_probabilities", "true", "--batch_size", str(batch_size)]
    if packed:
        args += ["--model_file", str(model_file)]
    else:
        args += ["--classification_train_config", str(exp_config), "--classification_model_file", str(model_file)]
    assert cls_inference.main(args) == 0
    return eo.read_prediction(out / "prediction")


def check_same(name: str, ours: dict, theirs: dict) -> float:
    worst, bad_text = eo.compare(ours, theirs)
    print(f"\n[espnet oracle] {name}: max |p_ours - p_espnet| = {worst:.3g} over {len(theirs)} clips", flush=True)
    RESULTS[name] = worst
    assert worst <= TOL, f"{name}: max probability difference {worst} > {TOL}"
    assert not bad_text, f"{name}: text differs (key, ours, ESPnet): {bad_text}"
    return worst


def score_everywhere(name: str, root: Path, exp: Path, theirs: dict) -> None:
    """Our stage 7 batched and batch 1, and the Python API, against ESPnet's scores."""
    from espnet_cls import Classifier

    mf = eo.model_file_of(exp)
    test = root / "dump" / "test"
    for bs in (4, 1):
        check_same(f"{name} stage7 batch_size={bs}", ours_stage7(exp / "config.yaml", mf, test, root / f"ours_{name}_b{bs}", bs), theirs)
    clf = Classifier.from_pretrained(exp)
    keys = sorted(theirs)
    wavs = dict(line.split(maxsplit=1) for line in (test / "wav.scp").read_text().splitlines())
    preds = clf.predict_files([wavs[k] for k in keys], batch_size=3)
    api = {k: (" ".join(p.labels), p.probs.astype(np.float64)) for k, p in zip(keys, preds)}
    check_same(f"{name} Classifier.from_pretrained(exp dir)", api, theirs)


def test_transformer_exp_dir(root: Path) -> None:
    conf = {**COMMON, "normalize": "global_mvn", "encoder": "transformer",
            "encoder_conf": dict(output_size=32, attention_heads=2, linear_units=48, num_blocks=2, input_layer="conv2d")}
    exp = eo.train(root, "transformer", conf, stats_tag="fbank40")
    theirs = eo.infer(root, exp, root / "dump" / "test", root / "espnet_transformer")
    score_everywhere("transformer", root, exp, theirs)


def test_conformer_packed_zip_and_hub(root: Path, tmp_path: Path, monkeypatch) -> None:
    """Conformer with ESPnet's defaults (legacy relative positions, no macaron) + macaron
    variant options, utterance_mvn, max pooling; scored from the exp dir, ESPnet's packed
    zip (stage 7 --model_file and from_pretrained), and a Hub snapshot of the unpacked zip."""
    from espnet_cls import Classifier

    conf = {**COMMON, "normalize": "utterance_mvn", "encoder": "conformer", "decoder_conf": {"pooling": "max"},
            "encoder_conf": dict(output_size=32, attention_heads=2, linear_units=48, num_blocks=2, cnn_module_kernel=7,
                                 input_layer="conv2d6", macaron_style=True)}
    exp = eo.train(root, "conformer", conf, stats_tag="fbank40")
    theirs = eo.infer(root, exp, root / "dump" / "test", root / "espnet_conformer")
    score_everywhere("conformer", root, exp, theirs)

    zip_path = eo.pack(root, exp, root / "conformer_packed.zip")
    check_same("conformer packed zip stage7 --model_file",
               ours_stage7(None, zip_path, root / "dump" / "test", root / "ours_conformer_zip", 4, packed=True), theirs)

    # cls.sh --download_model: espnet_cls.bin.download converts it to our layout, stage 7 scores that
    from espnet_cls.bin import download

    conv = root / "exp" / "downloaded_conformer"
    assert download.main(["--repo_id", str(zip_path), "--output_dir", str(conv)]) == 0
    check_same("conformer --download_model (converted) stage7",
               ours_stage7(conv / "config.yaml", conv / "model.safetensors", root / "dump" / "test", root / "ours_conformer_dl", 4),
               theirs)

    # a Hub repo in ESPnet's layout = the unpacked zip, served from a local HF cache (no network)
    import zipfile

    cache = tmp_path / "hf"
    snap = cache / "models--someone--espnet_conformer" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(snap)
    (cache / "models--someone--espnet_conformer" / "refs").mkdir()
    (cache / "models--someone--espnet_conformer" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # paths inside the zip must resolve from the snapshot, not the recipe dir
    test_wavs = [line.split(maxsplit=1) for line in (root / "dump" / "test" / "wav.scp").read_text().splitlines()]
    for label, src in (("zip", zip_path), ("hub", "someone/espnet_conformer")):
        clf = Classifier.from_pretrained(src)
        preds = clf.predict_files([w for _, w in test_wavs], batch_size=4)
        got = {k: (" ".join(p.labels), p.probs.astype(np.float64)) for (k, _), p in zip(test_wavs, preds)}
        check_same(f"conformer Classifier.from_pretrained({label})", got, theirs)


def _tiny_beats_checkpoint(path: Path) -> None:
    """An official-format BEATs checkpoint ``{"cfg", "model"}`` with tiny dims (random weights)."""
    from espnet_cls.models.encoders.beats import BeatsEncoder

    cfg = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=48, encoder_attention_heads=2, embed_dim=24,
               input_patch_size=16, conv_pos=8, conv_pos_groups=4, relative_position_embedding=True, num_buckets=32,
               max_distance=64, gru_rel_pos=True, deep_norm=True, layer_norm_first=False, dropout=0.0,
               attention_dropout=0.0, activation_dropout=0.0, dropout_input=0.0, encoder_layerdrop=0.0, conv_bias=False)
    torch.manual_seed(0)
    enc = BeatsEncoder(beats_config=cfg)
    torch.save({"cfg": cfg, "model": enc.beats_state_dict()}, path)


def test_beats_finetuned_by_espnet(root: Path) -> None:
    ckpt = root / "tiny_beats.pt"
    _tiny_beats_checkpoint(ckpt)
    conf = {**COMMON, "frontend": None, "frontend_conf": {}, "input_size": 1, "encoder": "beats",
            "encoder_conf": {"beats_ckpt_path": str(ckpt), "use_weighted_representation": True}}
    conf.pop("frontend_conf")
    exp = eo.train(root, "beats", conf, stats_tag="fbank40")
    theirs = eo.infer(root, exp, root / "dump" / "test", root / "espnet_beats")
    score_everywhere("beats", root, exp, theirs)


def test_export_espnet_scored_by_espnet(root: Path, tmp_path: Path) -> None:
    """Stretch: one of our models (built by espnet_cls, ESPnet-expressible options) written by
    ``espnet_cls.bin.export_espnet`` is loaded and scored by ESPnet's cls_inference like ours."""
    import numpy as np

    from espnet_cls import Classifier
    from espnet_cls.bin import export_espnet
    from espnet_cls.fileio import atomic_write
    from espnet_cls.tasks.cls import build_model

    rng = np.random.default_rng(1)
    stats = tmp_path / "feats_stats.npz"
    mean = rng.normal(-8.0, 1.0, 40)
    np.savez(stats, count=np.array(100), sum=100 * mean, sum_square=100 * (mean**2 + rng.uniform(1.0, 4.0, 40)))
    config = {
        "token_list": ["high", "low", "mid", "<unk>"],
        "frontend": "default", "frontend_conf": {"fs": 16000, "hop_length": 160, "n_mels": 40, "pad_mode": "reflect"},
        "normalize": "global_mvn", "normalize_conf": {"stats_file": str(stats)},
        "encoder": "transformer", "encoder_conf": {"output_size": 32, "attention_heads": 2, "linear_units": 40,
                                                   "num_blocks": 2, "input_layer": "conv2d", "layer_norm_eps": 1e-12},
        "decoder": "linear", "decoder_conf": {"pooling": "mean"}, "model_conf": {"pcm16_input": False},
    }
    torch.manual_seed(3)
    model = build_model(config).eval()
    ours_dir = tmp_path / "ours_model"
    ours_dir.mkdir()
    import yaml
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ours_dir / "model.safetensors"))
    with atomic_write(ours_dir / "config.yaml") as f:
        yaml.safe_dump(config, f)
    esp_dir = root / "exp" / "cls_exported"
    assert export_espnet.main([str(ours_dir), "--output_dir", str(esp_dir)]) == 0
    theirs = eo.infer(root, esp_dir, root / "dump" / "test", root / "espnet_exported", model_file=esp_dir / "valid.acc.best.pth")
    clf = Classifier.from_pretrained(ours_dir)
    test_wavs = [line.split(maxsplit=1) for line in (root / "dump" / "test" / "wav.scp").read_text().splitlines()]
    preds = clf.predict_files([w for _, w in test_wavs], batch_size=4)
    got = {k: (" ".join(p.labels), p.probs.astype(np.float64)) for (k, _), p in zip(test_wavs, preds)}
    check_same("export_espnet: our transformer scored by ESPnet", got, theirs)


def test_unsupported_part_is_named(root: Path, tmp_path: Path) -> None:
    """An ESPnet model with a part espnet_cls lacks: one clear error naming it."""
    import yaml

    from espnet_cls import Classifier
    from espnet_cls.espnet import EspnetModelError

    exp = root / "exp" / "cls_transformer"
    if not exp.is_dir():
        pytest.skip("needs the transformer exp dir")
    bad = tmp_path / "cls_bad"
    shutil.copytree(exp, bad, symlinks=True)
    cfg = yaml.safe_load((bad / "config.yaml").read_text())
    cfg["encoder_conf"]["input_layer"] = "conv1d2"
    (bad / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(EspnetModelError, match=r"input_layer='conv1d2' is not implemented"):
        Classifier.from_pretrained(bad)
    cfg["encoder"] = "e_branchformer"
    (bad / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(EspnetModelError, match=r"encoder: 'e_branchformer' is not implemented"):
        Classifier.from_pretrained(bad)


def test_zz_summary() -> None:
    """Print every max difference measured in this module (one line per comparison)."""
    for k, v in RESULTS.items():
        print(f"[espnet oracle] max diff {v:.3g}  {k}")
    assert not RESULTS or max(RESULTS.values()) <= TOL
