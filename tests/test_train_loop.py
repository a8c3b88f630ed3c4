"""The trainer on tiny synthetic corpora: learning, resume, averaging, checkpoints, <blank>, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet_cls.bin.cls_train import main as cls_train
from espnet_cls.train.checkpoint import safe_load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_helpers import make_corpus, train_args, write_yaml  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mc_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc")
    return root, make_corpus(root, multilabel=False)


@pytest.fixture(scope="module")
def ml_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    return root, make_corpus(root, multilabel=True, n_train=60, n_valid=24)


@pytest.fixture(scope="module")
def mc_run(mc_corpus):
    """One multi-class run shared by several tests (5 epochs, plots on)."""
    root, c = mc_corpus
    out = root / "exp_mc"
    cls_train(train_args(c, write_yaml(root), out, "--max_epoch", "5", "--keep_nbest_models", "3",
                         "--use_matplotlib", "false"))
    return out


def _history(out: Path) -> list[dict]:
    return json.loads((out / "train_history.json").read_text())


def test_multiclass_learns_and_writes_outputs(mc_run):
    out = mc_run
    hist = _history(out)
    assert [e["epoch"] for e in hist] == [1, 2, 3, 4, 5]
    best = max(e["valid"]["acc"] for e in hist)
    assert best >= 0.8, hist  # chance is 1/3
    for e in hist:
        assert set(e) >= {"epoch", "train", "valid", "lr", "time"}
        assert set(e["valid"]) >= {"loss", "acc", "macro_f1"}
    for name in ("config.yaml", "checkpoint.pth", "valid.acc.best.pth", "valid.acc.ave_3best.pth",
                 "valid.acc.ave.pth"):
        assert (out / name).exists(), name
    # only the 3 best epochs (+ possibly the last) keep their weights
    kept = sorted(p.name for p in out.glob("*epoch.pth"))
    assert 3 <= len(kept) <= 4
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["token_list"] == ["low", "mid", "high", "<blank>", "<unk>"]
    assert cfg["frontend_conf"]["fs"] == "16k" and cfg["max_epoch"] == 5
    # every file loads with weights_only=True; the best link points at the best epoch
    ck = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ck["epoch"] == 5 and len(ck["history"]) == 5
    order = sorted(hist, key=lambda e: (-e["valid"]["acc"], e["epoch"]))
    assert os.readlink(out / "valid.acc.best.pth") == f"{order[0]['epoch']}epoch.pth"
    # the saved model reproduces the logged validation accuracy through the public API
    from espnet_cls.tasks.cls import load_model

    model, _ = load_model(out / "config.yaml", out / "valid.acc.best.pth")
    assert model.classification_type == "multi-class"


def test_curves(mc_run, tmp_path):
    from espnet_cls.train.reporter import plot_curves

    plot_curves(tmp_path, _history(mc_run))
    for m in ("loss", "acc", "macro_f1", "lr"):
        png = tmp_path / "images" / f"{m}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", m


def test_average_equals_mean_of_kept(mc_run):
    out = mc_run
    hist = _history(out)
    order = [e["epoch"] for e in sorted(hist, key=lambda e: (-e["valid"]["acc"], e["epoch"]))][:3]
    sds = [torch.load(out / f"{ep}epoch.pth", weights_only=True) for ep in order]
    avg = torch.load(out / "valid.acc.ave_3best.pth", weights_only=True)
    assert set(avg) == set(sds[0])
    n_float = 0
    for k, v in avg.items():
        if v.is_floating_point():
            ref = sum(sd[k].double() for sd in sds) / 3
            torch.testing.assert_close(v.double(), ref, rtol=1e-6, atol=1e-7)
            n_float += 1
        else:
            assert torch.equal(v, sds[0][k])
    assert n_float > 5
    assert os.readlink(out / "valid.acc.ave.pth") == "valid.acc.ave_3best.pth"


def test_resume_equals_uninterrupted(mc_corpus):
    root, c = mc_corpus
    y = write_yaml(root, extra="specaug: specaug\nspecaug_conf: {apply_time_warp: false}\n")
    y.write_text(y.read_text().replace("dropout: 0.0", "dropout: 0.2").replace("scheduler: none", "scheduler: warmuplr")
                 + "scheduler_conf: {warmup_steps: 10}\n")
    args = ("--use_matplotlib", "false", "--batch_size", "16")
    cls_train(train_args(c, y, root / "straight", "--max_epoch", "3", *args))
    cls_train(train_args(c, y, root / "resumed", "--max_epoch", "2", *args))
    # "crash" after epoch 2, then re-run the full job with --resume true
    cls_train(train_args(c, y, root / "resumed", "--max_epoch", "3", "--resume", "true", *args))
    a = torch.load(root / "straight" / "3epoch.pth", weights_only=True)
    b = torch.load(root / "resumed" / "3epoch.pth", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha, hb = _history(root / "straight"), _history(root / "resumed")
    assert [e["valid"] for e in ha] == [e["valid"] for e in hb]
    assert [e["lr"] for e in ha] == [e["lr"] for e in hb]


def test_loader_workers_persist_and_do_not_change_results(mc_corpus, monkeypatch):
    """num_workers 1: one loader per dataset for the whole run (its workers forked once, not per
    epoch), and the same weights as num_workers 0 (the loaders draw no training randomness)."""
    root, c = mc_corpus
    y = write_yaml(root, extra="specaug: specaug\nspecaug_conf: {apply_time_warp: false}\n")
    y.write_text(y.read_text().replace("dropout: 0.0", "dropout: 0.2"))
    args = ("--use_matplotlib", "false", "--batch_size", "16", "--max_epoch", "3")
    made = []
    init = torch.utils.data.DataLoader.__init__

    def counting_init(self, *a, **kw):
        made.append((kw.get("num_workers", 0), kw.get("persistent_workers", False)))
        init(self, *a, **kw)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", counting_init)
    cls_train(train_args(c, y, root / "nw1", "--num_workers", "1", *args))
    assert made == [(1, True), (1, True)]  # train + valid, for 3 epochs
    made.clear()
    cls_train(train_args(c, y, root / "nw0", "--num_workers", "0", *args))
    assert len(made) == 6 and all(nw == 0 for nw, _ in made)  # a plain loader per epoch and set
    a = torch.load(root / "nw1" / "3epoch.pth", weights_only=True)
    b = torch.load(root / "nw0" / "3epoch.pth", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [e["valid"] for e in _history(root / "nw1")] == [e["valid"] for e in _history(root / "nw0")]


def test_ema_weights_are_validated_saved_and_resumed(mc_corpus):
    """ema_decay: the epoch files (and so the inference models) hold the weight average, checkpoint.pth
    both; a resumed run equals an uninterrupted one."""
    root, c = mc_corpus
    y = write_yaml(root)
    args = ("--use_matplotlib", "false", "--batch_size", "16", "--ema_decay", "0.9")
    cls_train(train_args(c, y, root / "ema", "--max_epoch", "3", *args))
    ck = torch.load(root / "ema" / "checkpoint.pth", weights_only=True)
    ep = torch.load(root / "ema" / "3epoch.pth", weights_only=True)
    ema = {k[len("module."):]: v for k, v in ck["ema"].items() if k.startswith("module.")}
    assert ema.keys() == ep.keys() == ck["model"].keys()
    assert all(torch.equal(ep[k], ema[k]) for k in ep)
    assert not all(torch.equal(ep[k], ck["model"][k]) for k in ep)  # the average, not the last step's weights
    assert int(ck["ema"]["n_averaged"]) == _history(root / "ema")[-1]["counts"]["train"]  # one update per step
    cls_train(train_args(c, y, root / "ema_r", "--max_epoch", "2", *args))
    cls_train(train_args(c, y, root / "ema_r", "--max_epoch", "3", "--resume", "true", *args))
    b = torch.load(root / "ema_r" / "3epoch.pth", weights_only=True)
    assert all(torch.equal(ep[k], b[k]) for k in ep)
    from espnet_cls.fileio import DataError

    with pytest.raises(DataError, match="ema_decay must be in"):
        cls_train(train_args(c, y, root / "ema_bad", "--max_epoch", "1", "--ema_decay", "1.5"))


def test_multilabel_with_blank_learns(ml_corpus):
    root, c = ml_corpus
    texts = (c["train"] / "text").read_text()
    assert "<blank>" in texts  # some clips have no label
    out = root / "exp_ml"
    y = write_yaml(root, multilabel=True)
    y.write_text(y.read_text().replace("best_model_criterion: [[valid, acc, max]]",
                                       "best_model_criterion: [[valid, mAP, max]]"))
    cls_train(train_args(c, y, out, "--max_epoch", "5", "--use_matplotlib", "false", "--fold_length", "5"))
    hist = _history(out)
    best = max(e["valid"]["mAP"] for e in hist)
    assert best >= 0.85, hist  # chance mAP ~ label frequency (~0.4)
    assert set(hist[-1]["valid"]) >= {"loss", "acc", "mAP", "micro_f1"}
    for name in ("valid.mAP.best.pth", "valid.acc.best.pth", "valid.mAP.ave.pth"):
        assert (out / name).exists(), name


def test_blank_gives_zero_target(ml_corpus):
    root, c = ml_corpus
    from espnet_cls.tasks.cls import build_model
    from espnet_cls.train.dataset import ClsDataset, collate

    ds = ClsDataset([f"{c['train']}/wav.scp,speech,sound", f"{c['train']}/text,label,text"],
                    (c["token_list"]).read_text().split())
    blank = [k for k, v in (line.split(" ", 1) for line in (c["train"] / "text").read_text().splitlines())
             if v.strip() == "<blank>"]
    full = [k for k in ds.keys if k not in blank][:2]
    _keys, batch = collate([ds[blank[0]], ds[full[0]], ds[full[1]]])
    assert batch["label_lengths"][0] == 0 and (batch["label"][0] == -1).all()
    cfg = yaml.safe_load(write_yaml(root, multilabel=True).read_text())
    cfg["token_list"] = ds.token2id and list(ds.token2id)
    model = build_model(cfg)
    target, valid = model.label_to_target(batch["label"], batch["label_lengths"])
    assert target[0].sum() == 0 and bool(valid[0]) and target[1].sum() >= 1
    loss, _stats, _w = model(batch["speech"], batch["speech_lengths"], batch["label"], batch["label_lengths"])
    loss.backward()
    assert torch.isfinite(loss)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_on_cpu(mc_corpus, repo_root):
    root, c = mc_corpus
    y = write_yaml(root)
    out2 = root / "exp_ddp"
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    args = train_args(c, y, out2, "--max_epoch", "5", "--use_matplotlib", "false")
    procs = [subprocess.Popen([sys.executable, "-m", "espnet_cls.bin.cls_train", *args],
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "rank 1/2" in logs[1]
    hist = _history(out2)
    assert len(hist) == 5 and max(e["valid"]["acc"] for e in hist) >= 0.7, hist
    # validation covered the whole set (metrics computed on all 18 valid clips, not half)
    accs = [e["valid"]["acc"] * 18 for e in hist]
    assert all(abs(a - round(a)) < 1e-6 for a in accs)
    one = root / "exp_one"
    cls_train(train_args(c, y, one, "--max_epoch", "5", "--use_matplotlib", "false"))
    def names(d: Path) -> set[str]:
        return {p.name for p in d.iterdir() if not p.name.endswith("epoch.pth")}
    assert names(out2) == names(one)
    # same global batches: the 2-process run sees the same clips per step, so it learns alike
    h1 = _history(one)
    assert abs(max(e["valid"]["acc"] for e in hist) - max(e["valid"]["acc"] for e in h1)) <= 0.35
    assert np.isfinite([e["valid"]["loss"] for e in hist]).all()
    assert safe_load(out2 / "valid.acc.best.pth")


def test_options_accum_numel_init_freeze_steplr_patience(mc_corpus, mc_run):
    """Less common options run end to end: accum_grad, numel batches, init_param from another
    run with a frozen encoder, steplr, and early stopping by patience."""
    root, c = mc_corpus
    out = root / "exp_opts"
    cls_train(train_args(c, write_yaml(root), out, "--max_epoch", "6", "--use_matplotlib", "false",
                         "--accum_grad", "2", "--batch_type", "numel", "--batch_bins", "40000",
                         "--init_param", f"{mc_run}/valid.acc.best.pth", "--freeze_param", "encoder",
                         "--scheduler", "steplr", "--scheduler_conf", "step_size=1,gamma=0.5",
                         "--patience", "1", "--early_stopping_criterion", "[valid, loss, min]"))
    hist = _history(out)
    assert 1 <= len(hist) <= 6
    assert [e["lr"] for e in hist][:2] == [0.003, 0.0015]  # steplr halves every epoch
    init = torch.load(mc_run / "valid.acc.best.pth", weights_only=True)
    last = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    enc = [k for k in init if k.startswith("encoder.") and init[k].is_floating_point() and "running" not in k]
    assert enc and all(torch.equal(init[k], last[k]) for k in enc)  # frozen and initialised
    assert not torch.equal(init["decoder.linear.weight"], last["decoder.linear.weight"])  # still trained
    if len(hist) < 6:  # stopped early (ESPnet's rule): the best valid loss is `patience` + 1 epochs back
        losses = [e["valid"]["loss"] for e in hist]
        assert losses.index(min(losses)) == len(hist) - 3


@pytest.mark.slow
def test_kill9_then_resume_equals_uninterrupted(mc_corpus, repo_root):
    """A real `kill -9` after epoch 1's checkpoint, then --resume true (same command)."""
    import signal
    import time

    root, c = mc_corpus
    y = write_yaml(root)
    y.write_text(y.read_text().replace("scheduler: none", "scheduler: warmupcosinelr"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "espnet_cls.bin.cls_train",
                *train_args(c, y, out, "--max_epoch", "3", "--use_matplotlib", "false", "--resume", "true")]

    subprocess.run(cmd(root / "k_straight"), env=env, check=True, capture_output=True)
    out = root / "k_killed"
    p = subprocess.Popen(cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "checkpoint.pth"
    while p.poll() is None and not ck.exists():
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert torch.load(ck, weights_only=True)["epoch"] < 3
    subprocess.run(cmd(out), env=env, check=True, capture_output=True)
    a = torch.load(root / "k_straight" / "3epoch.pth", weights_only=True)
    b = torch.load(out / "3epoch.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_balanced_sampling_from_utt2weight(tmp_path):
    c = make_corpus(tmp_path, n_train=24, n_valid=6)
    keys = [line.split()[0] for line in (c["train"] / "wav.scp").read_text().splitlines()]
    out = tmp_path / "exp"
    args = train_args(c, write_yaml(tmp_path), out, "--max_epoch", "1", "--use_matplotlib", "false",
                      "--balanced_sampling", "true")
    from espnet_cls.fileio import DataError

    with pytest.raises(DataError, match="utt2weight"):
        cls_train(args)
    (c["train"] / "utt2weight").write_text("".join(f"{k} {1.0 if i % 3 else 5.0}\n" for i, k in enumerate(keys)))
    cls_train(args)
    assert len(_history(out)) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_on_gpu(mc_corpus, dtype):
    root, c = mc_corpus
    out = root / f"exp_amp_{dtype}"
    cls_train(train_args(c, write_yaml(root), out, "--max_epoch", "2", "--use_matplotlib", "false", "--ngpu", "1",
                         "--use_amp", "true", "--amp_dtype", dtype))
    hist = _history(out)
    assert len(hist) == 2 and np.isfinite(hist[-1]["train"]["loss"])
    ck = torch.load(out / "checkpoint.pth", weights_only=True)
    assert bool(ck["scaler"]) == (dtype == "float16")


def test_epoch_lr_is_the_mean_over_the_epoch_under_warmup(mc_corpus, tmp_path):
    """ESPnet's epoch line reports optim0_lr0 averaged over the epoch's iterations (the lr after each
    step); under warmuplr that lies strictly between the lr of the epoch's first and last step."""
    root, c = mc_corpus
    out = tmp_path / "exp_warm"
    cls_train(train_args(c, write_yaml(root), out, "--max_epoch", "1", "--use_matplotlib", "false",
                         "--scheduler", "warmuplr", "--scheduler_conf", "warmup_steps=1000"))
    lr = _history(out)[0]["lr"]
    base = float(yaml.safe_load((out / "config.yaml").read_text())["optim_conf"]["lr"])
    n = int(torch.load(out / "checkpoint.pth", weights_only=True)["global_step"])
    assert n > 1
    # the lr after each step (as ESPnet registers it): the scheduler has already moved to step s + 1
    per_step = [base * 1000 ** 0.5 * min(s ** -0.5, s * 1000 ** -1.5) for s in range(2, n + 2)]
    assert lr == pytest.approx(sum(per_step) / n, rel=1e-6)
    assert per_step[0] < lr < per_step[-1]
