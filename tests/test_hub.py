"""Stage 10 upload and ``--download_model``, without the network.

Upload: a fake ``HfApi``-compatible object (:class:`FakeHfApi`) is injected; it records
the ``create_repo``/``upload_folder`` calls and copies the uploaded folder into a local
"remote" folder. The CLI test swaps it in for ``huggingface_hub.HfApi``.
Download: a Hugging Face cache laid out by the test (``HF_HOME`` in a temp dir,
``HF_HUB_OFFLINE=1``) is read by the real ``snapshot_download`` in a subprocess.
Every test runs with ``HF_HUB_OFFLINE=1``, so nothing can go out.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_pack_support import make_exp, pack_exp, reference_probs, run_py

from espnet_cls.fileio import DataError
from espnet_cls.model_card import collect_metrics, metrics_from_json, render_model_card, split_front_matter

torch.set_num_threads(1)
SECRET = "hf_TESTsecretTOKEN0123456789abcdef"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("hubexp")
    e = make_exp(root)
    e["zip"] = pack_exp(e)
    return e


def _metrics_json(packed: dict, set_name: str) -> dict:
    """The scorer's numbers for one set (top level of metrics.json; older files nest them under "metrics")."""
    js = json.loads((packed["exp"] / f"cls_{set_name}" / "scoring" / "metrics.json").read_text())
    return js.get("metrics", js)


class FakeHfApi:
    """Records calls; ``upload_folder`` copies the folder to ``remote/<repo_id>``."""

    def __init__(self, remote: Path, fail_with: Exception | None = None):
        self.remote = remote
        self.calls: list[tuple[str, dict]] = []
        self.fail_with = fail_with

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, "private": private, "exist_ok": exist_ok, "repo_type": repo_type}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, folder_path, repo_id, repo_type=None, commit_message=None, revision=None, **kw):
        self.calls.append(("upload_folder", {"repo_id": repo_id, "repo_type": repo_type, "commit_message": commit_message}))
        if self.fail_with is not None:
            raise self.fail_with
        dest = self.remote / repo_id
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder_path, dest)
        return f"https://huggingface.co/{repo_id}/commit/0"


def test_upload_with_fake_api(packed, tmp_path):
    from espnet_cls.hub import upload

    api = FakeHfApi(tmp_path / "remote")
    url = upload(packed["zip"], "alice/tiny-cls", private=True, api=api, datasets=["instruments_demo"], creator="Alice")
    assert url == "https://huggingface.co/alice/tiny-cls"
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1] == {"repo_id": "alice/tiny-cls", "private": True, "exist_ok": True, "repo_type": "model"}
    repo = tmp_path / "remote" / "alice" / "tiny-cls"
    names = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}
    assert names == set(zipfile.ZipFile(packed["zip"]).namelist()) | {"README.md"}
    front, body = split_front_matter((repo / "README.md").read_text())
    assert {"espnet_cls", "audio-classification", "multi-class"} <= set(front["tags"])
    assert front["datasets"] == ["instruments_demo"] and front["license"] == "cc-by-4.0"
    # model-index metrics are the scorer's metrics.json values (written by espnet_cls.scoring in make_exp)
    results = {r["dataset"]["split"]: {m["name"]: m["value"] for m in r["metrics"]} for r in front["model-index"][0]["results"]}
    assert set(results) == {"valid", "test"}
    for set_name in ("valid", "test"):
        real = _metrics_json(packed, set_name)
        assert results[set_name]["Accuracy (acc)"] == pytest.approx(real["acc"], abs=1e-6)
        assert results[set_name]["mAP"] == pytest.approx(real["mAP"], abs=1e-6)
        assert results[set_name]["ROC AUC (mean_auc)"] == pytest.approx(real["mean_auc"], abs=1e-6)
    assert 'Classifier.from_pretrained("alice/tiny-cls")' in body and "--download_model alice/tiny-cls" in body
    table_rows = [ln for ln in (packed["exp"] / "RESULTS.md").read_text().splitlines() if ln.startswith("|cls_")]
    assert table_rows and all(r in body for r in table_rows) and "trained by Alice" in body
    assert "\n### RESULTS\n" in body  # RESULTS.md's headings sit under "## Results"
    assert "normalize_conf" in body and "feats_stats.npz" in body  # the config is shown


def test_upload_cli_never_logs_token(packed, tmp_path, monkeypatch, caplog):
    """The real CLI with HF_TOKEN set; the fake API fails with a message carrying the token."""
    import huggingface_hub

    from espnet_cls.bin import upload as upload_bin

    monkeypatch.setenv("HF_TOKEN", SECRET)
    made: list[FakeHfApi] = []

    def factory(*a, **k):
        made.append(FakeHfApi(tmp_path / "remote", fail_with=RuntimeError(f"401 Unauthorized for Bearer {SECRET}")))
        return made[-1]

    monkeypatch.setattr(huggingface_hub, "HfApi", factory)
    with pytest.raises(DataError) as ei:
        upload_bin.main(["--packed_model", str(packed["zip"]), "--hf_repo", "alice/tiny-cls"])
    assert "401 Unauthorized" in str(ei.value) and SECRET not in str(ei.value) and "***" in str(ei.value)
    assert SECRET not in caplog.text
    assert made and made[0].calls[0][0] == "create_repo"

    # without any token: a clear error before anything is sent
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    r = run_py(["-m", "espnet_cls.bin.upload", "--packed_model", packed["zip"], "--hf_repo", "alice/x"],
               extra_env={"HF_HOME": str(tmp_path / "empty_hf_home"), "HF_TOKEN": ""})
    assert r.returncode == 1 and "no Hugging Face token" in r.stderr and "Traceback" not in r.stderr


def test_upload_bad_repo_and_missing_zip(packed, tmp_path):
    from espnet_cls.hub import upload

    with pytest.raises(DataError, match="user/name"):
        upload(packed["zip"], "noslash", api=FakeHfApi(tmp_path))
    with pytest.raises(DataError, match="stage 9"):
        upload(tmp_path / "missing.zip", "a/b", api=FakeHfApi(tmp_path))


def _lay_out_hf_cache(hf_home: Path, repo_id: str, files_from: Path) -> Path:
    """A huggingface_hub cache holding one snapshot of ``repo_id`` (refs/main -> commit)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    shutil.copytree(files_from, snap)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snap


def test_download_from_offline_cache_for_stage7(packed, tmp_path):
    from espnet_cls.hub import stage_upload_folder

    uploaded = stage_upload_folder(packed["zip"], tmp_path / "uploaded", "alice/tiny-cls")
    hf_home = tmp_path / "hf_home"
    _lay_out_hf_cache(hf_home, "alice/tiny-cls", uploaded)
    work = tmp_path / "recipe"
    work.mkdir()
    extra = {"HF_HOME": str(hf_home)}
    r = run_py(["-m", "espnet_cls.bin.download", "--repo_id", "alice/tiny-cls", "--output_dir", "exp/alice_tiny-cls"],
               cwd=work, extra_env=extra)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "model.safetensors"  # cls.sh sets inference_model=model.safetensors
    out = work / "exp" / "alice_tiny-cls"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["normalize_conf"]["stats_file"] == "exp/alice_tiny-cls/feats_stats.npz"  # relative to the recipe dir
    ref = reference_probs(packed["model"], packed["clips"])
    # what stage 7 does: load_model(config, model_file) from the recipe dir (plus --write_pth's model.pth)
    r = run_py(["-m", "espnet_cls.bin.download", "--repo_id", "alice/tiny-cls", "--output_dir", "exp/alice_tiny-cls",
                "--write_pth", "true"], cwd=work, extra_env=extra)
    assert r.returncode == 0 and r.stdout.strip() == "model.pth", r.stderr
    script = (
        "import json, sys, torch; torch.set_num_threads(1)\n"
        "from espnet_cls.audio import load_audio\n"
        "from espnet_cls.tasks.cls import load_model\n"
        "from espnet_cls import Classifier\n"
        "out = {}\n"
        "for w in ('model.safetensors', 'model.pth'):\n"
        "    m, _ = load_model('exp/alice_tiny-cls/config.yaml', 'exp/alice_tiny-cls/' + w)\n"
        "    out[w] = []\n"
        "    for c in sys.argv[1:]:\n"
        "        x, _ = load_audio(c, fs=16000)\n"
        "        out[w].append(m.predict_proba(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0].tolist())\n"
        "hub = [p.probs.tolist() for p in Classifier.from_pretrained('alice/tiny-cls').predict_files(sys.argv[1:])]\n"
        "print(json.dumps({'stage7': out, 'hub': hub}))\n"
    )
    r = run_py(["-c", script, *packed["clips"]], cwd=work, extra_env=extra)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(res["stage7"]["model.safetensors"]), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(res["stage7"]["model.pth"]), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(res["hub"]), ref, rtol=0, atol=1e-6)

    # a repo missing from the offline cache: one clear line, no traceback
    r = run_py(["-m", "espnet_cls.bin.download", "--repo_id", "alice/absent", "--output_dir", "exp/x"], cwd=work, extra_env=extra)
    assert r.returncode == 1 and "cannot download alice/absent" in r.stderr and "Traceback" not in r.stderr


def test_download_with_injected_snapshot(packed, tmp_path):
    from espnet_cls.hub import download

    calls = []

    def fake_snapshot_download(repo_id, revision=None):
        calls.append((repo_id, revision))
        d = tmp_path / "snap"
        if not d.exists():  # a repo holding just the zip also works
            d.mkdir()
            shutil.copy(packed["zip"], d / "model.zip")
        return str(d)

    info = download("bob/m", tmp_path / "out", revision="v1", snapshot_download=fake_snapshot_download, write_pth=True)
    assert calls == [("bob/m", "v1")]
    assert Path(info["model_file"]).name == "model.pth" and Path(info["config"]).is_file()
    sd = torch.load(info["model_file"], weights_only=True)
    ref = torch.load(packed["model_file"], weights_only=True)
    assert all(torch.equal(sd[k], v) for k, v in ref.items())


def test_model_card_metrics_from_json():
    assert metrics_from_json({"acc": 0.875, "d_prime": 1.5, "n_clips": 8, "per_class": [{"ap": 0.1}]}) == {"acc": 0.875, "d_prime": 1.5}


def test_model_card_never_parses_results_md(packed, tmp_path):
    """Numbers come from metrics/*.json only; without them the card has no model-index but
    still shows RESULTS.md as text."""
    from espnet_cls.pack import unpack

    d = tmp_path / "m"
    unpack(packed["zip"], d)
    got = collect_metrics(d)
    for set_name in ("valid", "test"):
        real = _metrics_json(packed, set_name)
        assert got[set_name]["acc"] == real["acc"] and got[set_name]["mAP"] == real["mAP"]
    shutil.rmtree(d / "metrics")
    assert collect_metrics(d) == {}
    front, body = split_front_matter(render_model_card(d, "a/b"))
    assert "model-index" not in front and "## Results" in body
    assert "datasets" not in front
