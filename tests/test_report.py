"""HTML experiment report (espnet_cls.report, python -m espnet_cls.bin.report).

The fixture builds small but real experiment directories the way the recipe does: flac clips
written with soundfile under ``dump/<set>/data/format.1/``, ``dump/<set>/{wav.scp,text}``, a
token list, inference ``text``/``score``, then the real scorer (``pyscripts/utils/score_cls.py``)
and ``make_results``, plus a ``train_history.json`` in the trainer's format. The tests marked
``browser`` open the pages in headless Chromium (skipped where it is not installed).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import soundfile as sf
import yaml

from espnet_cls.bin.make_results import main as make_results_main
from espnet_cls.fileio import DataError
from espnet_cls.report import write_comparison, write_report
from espnet_cls.report.browser import find_chromium
from espnet_cls.report.data import find_errors, load_experiment

REPO = Path(__file__).resolve().parents[1]
FS = 16000
CLASSES = ["bass", "drums", "organ", "piano"]


class Tree(HTMLParser):
    """Flat list of (tag, attrs) plus the text of every element id'd table row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse(html: str) -> Tree:
    t = Tree()
    t.feed(html)
    return t


def _history(n_epochs: int, ctype: str, offset: float) -> list[dict]:
    """A train_history.json as the trainer writes it (copied structure from a real run)."""
    hist = []
    for ep in range(1, n_epochs + 1):
        key = "acc" if ctype == "multi-class" else "mAP"
        hist.append({
            "epoch": ep,
            "train": {"loss": 2.3 - 0.3 * ep - offset, "acc": 0.1 * ep + offset},
            "valid": {"loss": 2.31 - 0.2 * ep, key: 0.15 * ep + offset, "macro_f1": 0.05 * ep},
            "lr": 0.001 * ep,
            "time": 1.5 + 0.1 * ep,
        })
    return hist


def _write_set(root: Path, name: str, refs: dict[str, list[str]], seed: int) -> None:
    """dump/<name>/{wav.scp,text} with one 0.25 s flac per clip (a tone per reference class)."""
    d = root / "dump" / name
    audio = d / "data" / "format.1"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * FS)) / FS
    with open(d / "wav.scp", "w") as scp, open(d / "text", "w") as text:
        for utt in sorted(refs):
            freq = 220.0 * (1 + sum(CLASSES.index(c) + 1 for c in refs[utt]))
            x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
            sf.write(audio / f"{utt}.flac", x.astype(np.float32), FS, format="FLAC")
            scp.write(f"{utt} dump/{name}/data/format.1/{utt}.flac\n")
            text.write(f"{utt} {' '.join(refs[utt]) or '<blank>'}\n")


def _write_predictions(exp: Path, name: str, scores: dict[str, np.ndarray], ctype: str) -> None:
    d = exp / f"cls_{name}"
    d.mkdir(parents=True)
    with open(d / "text", "w") as text, open(d / "score", "w") as score:
        for utt in sorted(scores):
            s = scores[utt]
            if ctype == "multi-class":
                labels = [CLASSES[int(np.argmax(s))]]
            else:
                labels = [c for c, p in zip(CLASSES, s) if p >= 0.5]
            text.write(f"{utt} {' '.join(labels)}\n".replace("  ", " ").rstrip() + "\n")
            score.write(f"{utt} " + " ".join(f"{p:.6g}" for p in s) + "\n")


def _score(root: Path, exp: Path, name: str) -> None:
    """The real stage-8 scorer, with the relative paths cls.sh uses (cwd = recipe root)."""
    rel = exp.relative_to(root)
    subprocess.run(
        [sys.executable, str(REPO / "pyscripts" / "utils" / "score_cls.py"), "-gtxt", f"dump/{name}/text",
         "-ptxt", f"{rel}/cls_{name}/text", "-pscore", f"{rel}/cls_{name}/score", "-tok", "data/token_list",
         "-o", f"{rel}/cls_{name}/scoring"],
        cwd=root, check=True, capture_output=True, text=True)


def _config(ctype: str, pooling: str) -> dict:
    crit = [["valid", "acc", "max"]] if ctype == "multi-class" else [["valid", "mAP", "max"], ["valid", "acc", "max"]]
    return {"encoder": "cnn", "encoder_conf": {"channels": [16, 32]}, "decoder": "linear",
            "decoder_conf": {"pooling": pooling}, "model_conf": {"classification_type": ctype},
            "optim": "adamw", "optim_conf": {"lr": 0.003}, "max_epoch": 3, "best_model_criterion": crit,
            "token_list": CLASSES + ["<blank>", "<unk>"], "output_dir": "exp/x"}


def _multiclass_scores(refs: dict[str, list[str]], seed: int, flip: int) -> dict[str, np.ndarray]:
    """Softmax-like scores: right for most clips, confidently wrong for every ``flip``-th clip."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, utt in enumerate(sorted(refs)):
        logits = rng.normal(0, 0.5, len(CLASSES))
        true = CLASSES.index(refs[utt][0])
        target = (true + 1) % len(CLASSES) if k % flip == 0 else true
        logits[target] += 2.0 + 0.1 * k
        p = np.exp(logits) / np.exp(logits).sum()
        out[utt] = p
    return out


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A recipe dir with exp/cls_a, exp/cls_b (multi-class) and exp/cls_ml (multi-label)."""
    root = tmp_path_factory.mktemp("recipe")
    (root / "data").mkdir()
    (root / "data" / "token_list").write_text("\n".join(CLASSES + ["<blank>", "<unk>"]) + "\n")
    mc_test = {f"{c}-{i}": [c] for c in CLASSES for i in range(3)}
    mc_valid = {f"v-{c}-{i}": [c] for c in CLASSES for i in range(2)}
    ml_test = {"m-0": ["bass", "drums"], "m-1": ["organ"], "m-2": [], "m-3": ["piano", "bass"], "m-4": ["drums"],
               "m-5": ["organ", "piano"]}
    _write_set(root, "test", mc_test, 0)
    _write_set(root, "valid", mc_valid, 1)
    _write_set(root, "test_ml", ml_test, 2)
    for tag, seed, flip, pooling in (("a", 0, 3, "mean"), ("b", 5, 2, "max")):
        exp = root / "exp" / f"cls_{tag}"
        exp.mkdir(parents=True)
        (exp / "config.yaml").write_text(yaml.safe_dump(_config("multi-class", pooling)))
        (exp / "train_history.json").write_text(json.dumps(_history(3, "multi-class", 0.01 * seed), indent=1))
        _write_predictions(exp, "test", _multiclass_scores(mc_test, seed, flip), "multi-class")
        _write_predictions(exp, "valid", _multiclass_scores(mc_valid, seed + 1, flip), "multi-class")
        _score(root, exp, "test")
        _score(root, exp, "valid")
    exp = root / "exp" / "cls_ml"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(_config("multi-label", "mean")))
    (exp / "train_history.json").write_text(json.dumps(_history(2, "multi-label", 0.0), indent=1))
    rng = np.random.default_rng(3)
    ml_scores = {}
    for utt, labs in ml_test.items():
        ml_scores[utt] = np.array([0.8 if c in labs else 0.2 for c in CLASSES]) + rng.uniform(-0.15, 0.15, len(CLASSES))
    ml_scores["m-1"][CLASSES.index("bass")] = 0.97  # a confident false positive: the worst error
    ml_scores["m-4"][CLASSES.index("drums")] = 0.3  # a missed label
    _write_predictions(exp, "test_ml", ml_scores, "multi-label")
    _score(root, exp, "test_ml")
    for tag in ("a", "b", "ml"):
        assert make_results_main([str(root / "exp" / f"cls_{tag}"), "--images", "false"]) == 0
    return root


def _metrics(root: Path, tag: str, name: str) -> dict:
    return json.loads((root / "exp" / f"cls_{tag}" / f"cls_{name}" / "scoring" / "metrics.json").read_text())


def _audio_paths(html: str, page: Path) -> list[Path]:
    return [(page.parent / unquote(a["src"])).resolve() for tag, a in parse(html).tags if tag == "audio"]


def test_report_of_a_multiclass_experiment(recipe: Path, monkeypatch) -> None:
    monkeypatch.chdir(recipe)
    out = write_report("exp/cls_a", n_errors=3)
    assert out == Path("exp/cls_a/report.html")
    html = out.read_text()
    tags = parse(html).tags
    ids = {a.get("id") for _, a in tags}
    assert {"summary", "training", "s-cls_test", "s-cls_valid", "config"} <= ids
    # per-class table: one row per class, AP cells carry metrics.json's numbers
    m = _metrics(recipe, "a", "test")
    body = html.split('id="perclass-s-cls_test"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td class=\"t\">([^<]+)</td><td data-v=\"([^\"]*)\"", body)
    assert [r[0] for r in rows] == CLASSES
    assert [float(v) for _, v in rows] == pytest.approx([r["ap"] for r in m["per_class"]])
    assert f"{100 * m['acc']:.2f}" in html
    # confusion matrix with the scorer's counts in the cell tooltips
    cm = m["confusion_matrix"]
    assert f"bass → drums: {cm[0][1]} of {sum(cm[0])}" in html
    # worst errors: 3 shown, all really wrong, most confident first, audio by relative path
    errs = load_experiment(recipe / "exp" / "cls_a", n_errors=3).sets[0].errors
    assert len(errs) == 3 and all(e.reference != e.predicted for e in errs)
    assert [e.confidence for e in errs] == sorted((e.confidence for e in errs), reverse=True)
    assert all(len(e.top) == 4 and e.top[0][0] == e.predicted[0] for e in errs)
    audio = [a["src"] for t, a in tags if t == "audio"]
    assert len(audio) == 6  # 3 per set
    assert all(src.startswith("../../dump/") for src in audio)
    assert all(p.is_file() and p.suffix == ".flac" for p in _audio_paths(html, out))
    # curves: loss, acc, macro_f1 (train vs valid), lr, time
    titles = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]+)"', html)
    assert titles == ["loss", "acc", "macro_f1", "learning rate", "time per epoch"]
    assert "best valid.acc 0.45 at epoch 3" in html  # history: valid acc 0.15 * epoch
    # self-contained: nothing fetched from the network
    urls = [a.get(k, "") for _, a in tags for k in ("src", "href")]
    assert not [u for u in urls if re.match(r"^(https?:)?//", u)]
    assert "<link" not in html and "@import" not in html


def test_errors_found_from_cwd_elsewhere(recipe: Path, tmp_path: Path, monkeypatch) -> None:
    """Relative dump paths resolve through EXP/../.. when run from another directory."""
    monkeypatch.chdir(tmp_path)
    out = write_report(recipe / "exp" / "cls_a", tmp_path / "r" / "page.html", n_errors=2)
    paths = _audio_paths(out.read_text(), out)
    assert len(paths) == 4 and all(p.is_file() for p in paths)


def test_multilabel_report(recipe: Path, monkeypatch) -> None:
    monkeypatch.chdir(recipe)
    html = write_report("exp/cls_ml").read_text()
    assert "per-class AP (%)" in html and "confusion matrix" not in html
    exp = load_experiment("exp/cls_ml")
    errs = exp.sets[0].errors
    assert errs[0].utt_id == "m-1" and errs[0].confidence == pytest.approx(0.97)
    assert "bass" in errs[0].predicted and errs[0].reference == ["organ"]
    assert "m-4" in {e.utt_id for e in errs}
    m = _metrics(recipe, "ml", "test_ml")
    assert f"{100 * m['mAP']:.2f}" in html


def test_find_errors_ranking() -> None:
    names = ["x", "y", "z"]
    t = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], bool)
    s = np.array([[0.1, 0.7, 0.2], [0.2, 0.5, 0.3], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
    p = np.zeros_like(t)
    p[np.arange(4), s.argmax(1)] = True
    cases, total = find_errors(["u0", "u1", "u2", "u3"], names, t, p, s, "multi-class", n=5)
    assert total == 2 and [c.utt_id for c in cases] == ["u2", "u0"]
    assert cases[0].top[0] == ("x", 0.9) and cases[0].confidence == pytest.approx(0.9)
    # multi-label: false positive 0.6 vs missed label with p = 0.1 (1 - p = 0.9): the miss ranks first
    t = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    s = np.array([[0.9, 0.6, 0.1], [0.2, 0.1, 0.2], [0.1, 0.2, 0.3]])
    cases, total = find_errors(["a", "b", "c"], names, t, s >= 0.5, s, "multi-label", n=5)
    assert total == 2 and [c.utt_id for c in cases] == ["b", "a"]
    assert [c.confidence for c in cases] == pytest.approx([0.9, 0.6])
    cases, total = find_errors(["a", "b", "c"], names, t, s >= 0.5, None, "multi-label", n=1)
    assert total == 2 and [c.utt_id for c in cases] == ["a"] and cases[0].top == []


def test_embed_audio(recipe: Path, monkeypatch) -> None:
    monkeypatch.chdir(recipe)
    out = write_report("exp/cls_a", "embedded.html", n_errors=1, embed_audio=True)
    srcs = [a["src"] for t, a in parse(out.read_text()).tags if t == "audio"]
    assert len(srcs) == 2 and all(s.startswith("data:audio/flac;base64,") for s in srcs)


def test_comparison(recipe: Path, monkeypatch) -> None:
    monkeypatch.chdir(recipe)
    write_report("exp/cls_a")
    out = write_comparison(["exp/cls_a", "exp/cls_b", "exp/cls_ml"], "compare.html")
    html = out.read_text()
    for tag in ("a", "b"):
        m = _metrics(recipe, tag, "test")
        assert f"{100 * m['acc']:.2f}" in html
    assert f"{100 * _metrics(recipe, 'ml', 'test_ml')['mAP']:.2f}" in html
    assert 'href="exp/cls_a/report.html"' in html  # the one run with a report is linked
    # overlaid curves: one line per run and phase
    loss = html.split('aria-label="loss"', 1)[1].split("</svg>", 1)[0]
    assert all(f">{run} {phase}<" in loss for run in ("cls_a", "cls_b", "cls_ml") for phase in ("train", "valid"))
    # config differences: pooling and the classification type differ
    diff = html.split('class="cfgdiff"', 1)[1]
    assert "decoder_conf.pooling" in diff and "model_conf.classification_type" in diff
    assert "output_dir" not in diff


def test_cli_and_bad_input(recipe: Path, tmp_path: Path, monkeypatch) -> None:
    from espnet_cls.bin.report import main

    monkeypatch.chdir(recipe)
    assert main(["exp/cls_b", "--n_errors", "0"]) == 0
    html = (recipe / "exp" / "cls_b" / "report.html").read_text()
    assert "<audio" not in html
    assert main(["exp/cls_a", "exp/cls_b", "-o", str(tmp_path / "c.html")]) == 0
    assert (tmp_path / "c.html").is_file()
    with pytest.raises(DataError, match="not found"):
        main([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="nothing to report"):
        main([str(tmp_path / "empty")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train_history.json").write_text('{"epoch": 1}')
    with pytest.raises(DataError, match="per-epoch"):
        main([str(bad)])


def test_partial_experiment(recipe: Path, tmp_path: Path) -> None:
    """No history, no dump dir reachable: the page still renders and says what is missing."""
    exp = tmp_path / "exp" / "cls_p"
    (exp / "cls_test" / "scoring").mkdir(parents=True)
    (exp / "cls_test" / "scoring" / "metrics.json").write_text(
        (recipe / "exp" / "cls_a" / "cls_test" / "scoring" / "metrics.json").read_text())
    html = write_report(exp, root=tmp_path).read_text()
    assert "no train_history.json" in html and "worst errors not shown" in html


# --------------------------------------------------------------------------- real browser

browser = pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install chromium)")

SORT_KEYS = """(function(){
  var t = document.getElementById('perclass-s-cls_test');
  return Array.prototype.map.call(t.tBodies[0].rows, function(r){
    return [r.cells[0].textContent, r.cells[COL].getAttribute('data-v')]; });
})()"""

LOAD_AUDIO = """Promise.all(Array.prototype.map.call(document.querySelectorAll('audio'), function(a){
  return new Promise(function(res){
    a.addEventListener('loadedmetadata', function(){ res(a.duration); });
    a.addEventListener('error', function(){ res('error ' + (a.error && a.error.code)); });
    a.preload = 'metadata'; a.load();
  });
}))"""


@pytest.mark.browser
@browser
def test_report_in_headless_chromium(recipe: Path, tmp_path: Path, monkeypatch) -> None:
    from espnet_cls.report.browser import Browser

    monkeypatch.chdir(recipe)
    page_file = write_report("exp/cls_a").resolve()
    cmp_file = write_comparison(["exp/cls_a", "exp/cls_b"], tmp_path / "compare.html").resolve()
    with Browser(width=1280, height=1400) as b:
        page = b.open(page_file.as_uri())
        assert page.evaluate("document.title") == "cls_a — report"
        assert page.evaluate("document.querySelectorAll('svg.chart').length") == 5
        # sorting on a real click: AP header -> descending, again -> ascending, class -> by name
        ap = [r["class"] for r in _metrics(recipe, "a", "test")["per_class"]]
        ap_vals = [r["ap"] for r in _metrics(recipe, "a", "test")["per_class"]]
        order = [c for _, c in sorted(zip(ap_vals, ap), key=lambda x: -x[0])]
        page.click('#perclass-s-cls_test th[data-key="ap"]')
        rows = page.evaluate(SORT_KEYS.replace("COL", "1"))
        assert [r[0] for r in rows] == order
        assert page.evaluate("document.querySelector('#perclass-s-cls_test th[data-key=\"ap\"]')"
                             ".getAttribute('aria-sort')") == "descending"
        page.click('#perclass-s-cls_test th[data-key="ap"]')
        assert [r[0] for r in page.evaluate(SORT_KEYS.replace("COL", "1"))] == order[::-1]
        page.click('#perclass-s-cls_test th[data-key="support"]')
        page.click("#perclass-s-cls_test th.t")
        assert [r[0] for r in page.evaluate(SORT_KEYS.replace("COL", "1"))] == sorted(CLASSES)
        # audio: every player points at an existing flac that Chromium decodes (0.25 s clips)
        srcs = page.evaluate("Array.prototype.map.call(document.querySelectorAll('audio'), function(a){return a.src;})")
        exp = load_experiment("exp/cls_a")
        assert len(srcs) == sum(len(r.errors) for r in exp.sets) == sum(r.n_errors_total for r in exp.sets) == 7
        files = [Path(unquote(urlparse(s).path)) for s in srcs]
        assert all(f.is_file() for f in files), files
        durations = page.evaluate(LOAD_AUDIO, timeout=60)
        assert all(isinstance(d, (int, float)) and math.isclose(d, 0.25, abs_tol=0.01) for d in durations), durations
        shot = page.screenshot(tmp_path / "report.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000
        assert page.console_errors == []
        assert page.failed == []
        assert [u for u in page.requests if not u.startswith(("file:", "data:"))] == []
        ml_page = b.open(write_report("exp/cls_ml").resolve().as_uri())
        assert ml_page.evaluate("document.querySelectorAll('svg.bars').length") == 1
        assert ml_page.evaluate(LOAD_AUDIO, timeout=60) == pytest.approx([0.25] * 2, abs=0.01)  # m-1, m-4
        assert ml_page.console_errors == [] and ml_page.failed == []
        cmp_page = b.open(cmp_file.as_uri())
        assert cmp_page.evaluate("document.querySelectorAll('svg.chart').length") == 4  # loss, acc, macro_f1, lr
        cmp_page.screenshot(tmp_path / "compare.png", full_page=True)
        assert cmp_page.console_errors == [] and cmp_page.failed == []


@pytest.mark.parametrize("ctype", ["multi-label", "multi-class"])
def test_many_classes(tmp_path: Path, ctype: str) -> None:
    """AudioSet-sized token list (527 classes): the page stays readable and quick to build."""
    import time

    from espnet_cls.bin.score_cls import main as score_main

    rng = np.random.default_rng(0)
    n_cls, n_utt = 527, 300
    names = [f"c{k:03d}" for k in range(n_cls)]
    (tmp_path / "token_list").write_text("\n".join(names + ["<blank>", "<unk>"]) + "\n")
    exp = tmp_path / "exp" / "cls_big"
    set_dir = exp / "cls_eval"
    set_dir.mkdir(parents=True)
    s = rng.uniform(0, 1, (n_utt, n_cls)) ** 4
    with open(tmp_path / "ref", "w") as ref, open(set_dir / "text", "w") as hyp, open(set_dir / "score", "w") as sc:
        for i in range(n_utt):
            labs = sorted(set(rng.integers(0, n_cls, 2 if ctype == "multi-label" else 1).tolist()))
            s[i, labs] += 0.3
            pred = np.flatnonzero(s[i] >= 0.5) if ctype == "multi-label" else [int(s[i].argmax())]
            ref.write(f"u{i:04d} {' '.join(names[k] for k in labs)}\n")
            hyp.write(f"u{i:04d} {' '.join(names[k] for k in pred)}".rstrip() + "\n")
            sc.write(f"u{i:04d} " + " ".join(f"{v:.4f}" for v in s[i]) + "\n")
    assert score_main(["-gtxt", str(tmp_path / "ref"), "-ptxt", str(set_dir / "text"), "-pscore", str(set_dir / "score"),
                       "-tok", str(tmp_path / "token_list"), "-o", str(set_dir / "scoring"),
                       "--classification_type", ctype]) == 0
    t0 = time.perf_counter()
    html = write_report(exp, n_errors=10).read_text()
    assert time.perf_counter() - t0 < 10
    body = html.split('id="perclass-s-cls_eval"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") == n_cls + 1
    assert html.count("<audio") == 0 and "audio not found" in html  # no wav.scp beside the reference
    if ctype == "multi-label":
        assert "the 40 best and the 40 worst" in html
    else:
        assert "confusion matrix not drawn" in html and "Most frequent confusions" in html


@pytest.mark.slow
@pytest.mark.browser
@browser
def test_small_demo_report_in_chromium(repo_root: Path, tmp_path: Path) -> None:
    """The real small demo (run.sh, stages 1-8, 3 epochs) in a fresh copy, its report in chromium."""
    import os
    import shutil

    from espnet_cls.report.browser import Browser

    ignore = shutil.ignore_patterns(".venv", ".git", "data", "dump", "exp", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", "*.egg-info", "downloads")
    d = shutil.copytree(repo_root, tmp_path / "recipe", ignore=ignore, symlinks=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    if sys.prefix != sys.base_prefix:  # running in a venv: the copy uses it (tools/install.sh finds it ready)
        env["ESPNET_CLS_VENV"] = sys.prefix
    else:
        env["ESPNET_CLS_SKIP_INSTALL"] = "true"
    env.pop("PYTHONPATH", None)
    cmd = ["./run.sh", "--stop_stage", "8", "--nj", "2", "--inference_nj", "2", "--ngpu", "0",
           "--cls_args", "--max_epoch 3 --num_iters_per_epoch none", "--local_data_opts", "--corpus instruments --size small"]
    r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    (exp,) = [p for p in (d / "exp").glob("cls_*") if p.name != "cls_stats_16k"]
    r = subprocess.run([sys.executable, "-m", "espnet_cls.bin.report", str(exp.relative_to(d))], cwd=d, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    page_file = exp / "report.html"
    expected_players = 0
    for name in ("valid", "test"):
        m = json.loads((exp / f"cls_{name}" / "scoring" / "metrics.json").read_text())
        expected_players += min(10, round(m["n_instances"] * (1 - m["acc"])))
    with Browser() as b:
        page = b.open(page_file.as_uri())
        assert page.evaluate("document.querySelectorAll('svg.chart').length") >= 4
        page.click('#perclass-s-cls_test th[data-key="f1"]')
        f1 = [v for _, v in page.evaluate(SORT_KEYS.replace("COL", "5"))]
        assert [float(v) for v in f1] == sorted((float(v) for v in f1), reverse=True)
        srcs = page.evaluate("Array.prototype.map.call(document.querySelectorAll('audio'), function(a){return a.src;})")
        assert len(srcs) == expected_players > 0
        assert all(Path(unquote(urlparse(s).path)).is_file() for s in srcs)
        durations = page.evaluate(LOAD_AUDIO, timeout=120)
        assert all(isinstance(x, (int, float)) and x > 0.1 for x in durations), durations
        page.screenshot(tmp_path / "demo_report.png")
        assert page.console_errors == [] and page.failed == []
        assert [u for u in page.requests if not u.startswith(("file:", "data:"))] == []
