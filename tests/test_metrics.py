"""espnet_cls.metrics against scikit-learn on random data with ties, and hand-made cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from espnet_cls import metrics as M
from espnet_cls.contract import decide


def _random_case(rng, n, c, decimals):
    t = rng.random((n, c)) < rng.uniform(0.05, 0.6)
    s = np.round(rng.random((n, c)), decimals)  # few decimals -> many ties
    return t, s


@pytest.mark.parametrize("seed", range(6))
def test_ap_auc_equal_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        n, c = int(rng.integers(2, 300)), int(rng.integers(1, 12))
        t, s = _random_case(rng, n, c, int(rng.integers(1, 4)))
        ap, auc = M.ranking_stats(t, s)
        for k in range(c):
            if t[:, k].any():
                assert ap[k] == pytest.approx(average_precision_score(t[:, k], s[:, k]), abs=1e-9)
            else:
                assert math.isnan(ap[k])
            if t[:, k].any() and not t[:, k].all():
                assert auc[k] == pytest.approx(roc_auc_score(t[:, k], s[:, k]), abs=1e-9)
            else:
                assert math.isnan(auc[k])


def test_float32_and_chunking_give_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    t, s = _random_case(rng, 500, 40, 2)
    ap64, auc64 = M.ranking_stats(t, s)
    monkeypatch.setattr(M, "_CHUNK_ELEMS", 1000)  # 2 classes per chunk
    ap32, auc32 = M.ranking_stats(t, s.astype(np.float32))
    np.testing.assert_allclose(ap32, ap64, atol=1e-12)
    np.testing.assert_allclose(auc32, auc64, atol=1e-12)


def test_hand_made_ap_with_tie():
    # scores: 0.9(+) 0.5(+) 0.5(-) 0.1(-): thresholds 0.9 -> P=1,R=.5 ; 0.5 -> P=2/3,R=1
    t = np.array([1, 1, 0, 0], bool)
    s = np.array([0.9, 0.5, 0.5, 0.1])
    ap, auc = M.ranking_stats(t, s)
    assert ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # pairs (pos, neg): (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=.5 (0.5,0.1)=1 -> 3.5/4
    assert auc[0] == pytest.approx(3.5 / 4)


def test_map_leaves_out_classes_without_positive_or_counts_zero():
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], bool)
    s = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1], [0.7, 0.3, 0.2]])
    assert M.mean_average_precision(t, s) == pytest.approx(1.0)
    assert M.mean_average_precision(t, s, espnet_compat=True) == pytest.approx(2 / 3)
    r = M.compute_metrics(t, s, classification_type=M.MULTI_LABEL)
    assert r["n_classes_left_out"] == 1 and r["n_classes_ap"] == 2 and r["n_classes_no_positive"] == 1
    rc = M.compute_metrics(t, s, classification_type=M.MULTI_LABEL, espnet_compat=True)
    assert rc["mAP"] == pytest.approx(2 / 3) and rc["n_classes_left_out"] == 0


def test_multilabel_accuracies_and_f1():
    # clip 0: {0,1}, clip 1: {2}, clip 2: <blank>, clip 3: {1}
    t = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [0, 1, 0]], bool)
    s = np.array([[0.9, 0.6, 0.1], [0.7, 0.2, 0.6], [0.1, 0.7, 0.3], [0.2, 0.4, 0.1]])
    r = M.compute_metrics(t, s, classification_type=M.MULTI_LABEL, threshold=0.5)
    # top-1: clip0 class0 hit, clip1 class0 miss, clip3 class1 hit; blank clip left out
    assert r["top1_hit_rate"] == pytest.approx(2 / 3) and r["n_labelled_instances"] == 3
    assert r["acc"] == r["top1_hit_rate"]
    # predictions at 0.5: {0,1}, {0,2}, {1}, {} -> exact: clip0 only
    assert r["subset_acc"] == pytest.approx(0.25)
    assert 0 < r["mean_auc"] < 1
    p = s >= 0.5
    assert r["micro_f1"] == pytest.approx(f1_score(t, p, average="micro"))
    assert r["macro_f1"] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert r["d_prime"] == pytest.approx(math.sqrt(2) * M.NormalDist().inv_cdf(r["mean_auc"]))
    assert r["per_class"]["support"] == [1, 2, 1]


def test_macro_f1_only_over_classes_with_support():
    rng = np.random.default_rng(3)
    t, s = _random_case(rng, 60, 8, 2)
    t[:, 5] = False
    p = decide(s, M.MULTI_LABEL, 0.5)
    f = M.f1_stats(t, p)
    labels = [k for k in range(8) if t[:, k].any()]
    assert f["macro_f1"] == pytest.approx(f1_score(t, p, labels=labels, average="macro", zero_division=0))
    assert f["micro_f1"] == pytest.approx(f1_score(t, p, average="micro", zero_division=0))


def test_multiclass_accuracy_and_predictions():
    labels = [0, 2, 1, 2]
    t = M.labels_to_multihot([[k] for k in labels], 3)
    s = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    r = M.compute_metrics(t, s, classification_type=M.MULTI_CLASS)
    assert r["acc"] == pytest.approx(0.75)
    assert "subset_acc" not in r
    p = decide(s, M.MULTI_CLASS)
    assert p.sum(axis=1).tolist() == [1, 1, 1, 1]
    assert r["micro_f1"] == pytest.approx(f1_score(labels, s.argmax(1), average="micro"))
    assert r["macro_f1"] == pytest.approx(f1_score(labels, s.argmax(1), average="macro"))


def test_without_scores_only_threshold_metrics():
    t = np.array([[1, 0], [0, 1]], bool)
    p = np.array([[1, 0], [1, 1]], bool)
    r = M.compute_metrics(t, None, y_pred=p, classification_type=M.MULTI_LABEL)
    assert math.isnan(r["mAP"]) and math.isnan(r["mean_auc"]) and math.isnan(r["top1_hit_rate"])
    assert r["subset_acc"] == pytest.approx(0.5)


def test_tune_thresholds_maximise_f1():
    rng = np.random.default_rng(11)
    t, s = _random_case(rng, 200, 6, 2)
    t[:, 4] = False
    thr = M.tune_thresholds(t, s, default=0.5)
    assert thr[4] == 0.5
    for k in range(6):
        if not t[:, k].any():
            continue
        best = f1_score(t[:, k], s[:, k] >= thr[k])
        for cand in np.unique(s[:, k]):
            assert best >= f1_score(t[:, k], s[:, k] >= cand) - 1e-12


def test_bad_inputs():
    with pytest.raises(ValueError):
        M.ranking_stats(np.zeros((3, 2), bool), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        M.ranking_stats(np.zeros((2, 1), bool), np.array([[np.nan], [0.1]]))
    with pytest.raises(ValueError):
        M.labels_to_multihot([[3]], 3)
    assert M.d_prime(1.0) == math.inf and math.isnan(M.d_prime(float("nan")))


def test_espnet_compat_matches_espnet_formulas():
    # ESPnet cls_score.py: acc = accuracy_score(argmax(target), argmax(output)); mAP/AUC average all
    # classes with 0 for those without positives
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(5)
    t, s = _random_case(rng, 80, 7, 2)
    t[:, 3] = False
    r = M.compute_metrics(t, s, classification_type=M.MULTI_LABEL, espnet_compat=True)
    assert r["acc"] == pytest.approx(accuracy_score(t.argmax(1), s.argmax(1)))
    aps = [average_precision_score(t[:, k], s[:, k]) if t[:, k].any() else 0.0 for k in range(7)]
    aucs = [roc_auc_score(t[:, k], s[:, k]) if t[:, k].any() else 0.0 for k in range(7)]
    assert r["mAP"] == pytest.approx(np.mean(aps)) and r["mean_auc"] == pytest.approx(np.mean(aucs))
