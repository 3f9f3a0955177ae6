"""Classifiers: every architecture learns the activities, deep training is reproducible, the CLI works."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import f1_score

from conftest import run_cli
from harduino.dataset import load_recordings, window_dataset
from harduino.errors import UserError
from harduino.models import ARCHITECTURES, DEEP, fit_estimator, make_estimator
from harduino.models.internals import PREDICTOR_RECORD_DTYPE, PRIVATE, SklearnChanged, private
from harduino.models.shallow import as_stored
from harduino.models.trees import CompiledTrees

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
BASICMOTIONS = ROOT / "data" / "basicmotions"
HELD_OUT = "s1"
QUICK_DEEP = {"epochs": 30, "verbose": False}  # 20 left the lstm short of converging on some CPUs


def params(arch: str) -> dict:
    return dict(QUICK_DEEP) if arch in DEEP else {}


@pytest.fixture(scope="module")
def sim():
    return window_dataset(load_recordings(SIM), "all")


@pytest.fixture(scope="module")
def held_out(sim):
    train = sim.subjects != HELD_OUT
    return sim.subset(train), sim.subset(~train)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_recognises_an_unseen_subject(arch, held_out):
    train, test = held_out
    est = fit_estimator(make_estimator(arch, "all", feature_set="full", rate_hz=train.rate_hz, **params(arch)),
                        train.X, train.y, train.sessions)
    assert list(est.classes_) == ["jumping", "running", "still", "walking", "waving"]
    proba = est.predict_proba(test.X)
    assert proba.shape == (len(test), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert f1_score(test.y, est.predict(test.X), average="macro") >= 0.9
    # The live path is this predict_proba, a window at a time: the numbers it gives in a batch.
    np.testing.assert_allclose(est.predict_proba(test.X[:1]), proba[:1], rtol=1e-5, atol=1e-7)
    if arch in ("rf", "hgb"):  # compiled trees inside the step: exactly scikit-learn's own walk of them
        assert isinstance(est.steps[-1][1], CompiledTrees)
        np.testing.assert_array_equal(proba, as_stored(est).predict_proba(test.X))


@pytest.mark.parametrize("arch", ["rf", "cnn-lstm"])
def test_real_smartwatch_data_train_then_test_split(arch):
    train = window_dataset(load_recordings(BASICMOTIONS / "train"), "all")
    test = window_dataset(load_recordings(BASICMOTIONS / "test"), "all")
    est = fit_estimator(make_estimator(arch, "all", rate_hz=train.rate_hz, **params(arch)),
                        train.X, train.y, train.sessions)
    assert f1_score(test.y, est.predict(test.X), average="macro") >= 0.9


def test_same_seed_same_cnn_lstm_weights_and_another_seed_differs(held_out):
    train, _ = held_out
    X, y, groups = train.X[::3], train.y[::3], train.sessions[::3]

    def weights(seed):
        est = fit_estimator(make_estimator("cnn-lstm", "all", random_state=seed, epochs=3, verbose=False),
                            X, y, groups)
        return est.named_steps["net"].module_.state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_early_stopping_validates_on_whole_sessions_of_every_class(held_out):
    train, _ = held_out
    net = make_estimator("cnn-lstm", "all").named_steps["net"]
    codes = np.unique(train.y, return_inverse=True)[1]
    fit_idx, val_idx = net._validation_split(codes, train.sessions)
    assert not set(train.sessions[fit_idx]) & set(train.sessions[val_idx])
    assert set(train.y[val_idx]) == set(train.y)
    assert 0.1 <= len(val_idx) / len(train) <= 0.35


def test_deep_estimator_follows_the_sklearn_contract(held_out):
    train, test = held_out
    est = make_estimator("mlp", "all", epochs=2, hidden=16, verbose=False)
    copy = clone(est)
    assert copy.get_params()["net__hidden"] == 16
    copy.fit(train.X, train.y)  # no groups: contiguous blocks stand in for sessions
    assert copy.predict(test.X).shape == (len(test),)
    net = copy.named_steps["net"]
    assert 1 <= len(net.history_) <= 2 and {"loss", "val_loss", "val_accuracy"} <= set(net.history_[0])


@pytest.mark.parametrize("mode", ["heading", "3d"])
def test_rotation_augmentation_turns_each_triple_rigidly_and_leaves_the_rest(mode):
    from harduino.models.deep import random_rotation

    torch.manual_seed(0)
    xb = torch.randn(200, 8, 32)
    out = random_rotation(xb, ((0, 1, 2), (3, 4, 5)), mode)
    for t in ([0, 1, 2], [3, 4, 5]):
        torch.testing.assert_close(out[:, t].norm(dim=1), xb[:, t].norm(dim=1))  # lengths kept
    torch.testing.assert_close(out[:, 6:], xb[:, 6:])  # magnitudes untouched
    # The accelerometer and the gyroscope of one window are turned by the same rotation.
    rot = torch.linalg.lstsq(xb[:, 0:3].transpose(1, 2), out[:, 0:3].transpose(1, 2)).solution
    torch.testing.assert_close(out[:, 3:6], rot.transpose(1, 2) @ xb[:, 3:6], atol=1e-4, rtol=1e-4)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(200), atol=1e-4)
    if mode == "heading":
        torch.testing.assert_close(out[:, 2], xb[:, 2])  # z stays: a turn about it
    else:
        assert (out[:, 2] - xb[:, 2]).abs().mean() > 0.5


def test_the_scikit_learn_internals_harduino_reads_are_still_what_it_expects(held_out):
    """Fails, naming what changed, on a scikit-learn whose private attributes are not those models/internals.py
    reads (the compiled boosting's trees, a loaded model's checks)."""
    import sklearn

    train, test = held_out
    train = train.subset(np.arange(0, len(train), 3))
    version = f"scikit-learn {sklearn.__version__} changed "
    pipelines = {arch: fit_estimator(make_estimator(arch, "all", rate_hz=train.rate_hz, **params), train.X, train.y)
                 for arch, params in {"hgb": {"max_iter": 3}, "svm": {}, "knn": {}}.items()}
    pipelines["binary hgb"] = fit_estimator(make_estimator("hgb", "all", rate_hz=train.rate_hz, max_iter=3), train.X,
                                            np.where(train.y == "still", "still", "moving"))
    fitted = {arch: as_stored(est).steps[-1][1] for arch, est in pipelines.items()}
    fitted["svm"] = fitted["svm"].calibrated_classifiers_[0].estimator
    for arch in ("hgb", "binary hgb"):
        clf, hgb = fitted[arch], private(fitted[arch])
        k = clf.n_trees_per_iteration_
        assert len(hgb.predictors) == 3 and all(len(it) == k for it in hgb.predictors), version + "_predictors"
        nodes = hgb.predictors[0][0].nodes
        assert nodes.dtype == PREDICTOR_RECORD_DTYPE and {"feature_idx", "num_threshold", "left", "right", "is_leaf",
                                                          "value", "is_categorical"} <= set(nodes.dtype.names), \
            version + "the boosting's tree nodes"
        assert np.shape(hgb.baseline_prediction) == (1, k), version + "_baseline_prediction"
        assert callable(hgb.loss.predict_proba) and hgb.preprocessor is None, version + "_loss or _preprocessor"
        # What the compiled trees make of them is what scikit-learn makes of its own.
        Z = pipelines[arch][:-1].transform(test.X)
        np.testing.assert_array_equal(CompiledTrees.of(clf).predict_proba(Z), clf.predict_proba(Z),
                                      err_msg=version + "the boosting")
    svc = private(fitted["svm"])
    n_sv = len(fitted["svm"].support_)
    assert svc.impl == "c_svc" and svc.sparse is False and svc.n_support.sum() == n_sv, version + "the SVC"
    assert svc.dual_coef_.shape == (4, n_sv) and svc.intercept_.shape == (10,) and np.isfinite(svc.gamma), \
        version + "the SVC's arrays"
    knn = private(fitted["knn"])
    assert knn.fit_X.shape == (len(train), fitted["knn"].n_features_in_) and knn.y.shape == (len(train),) \
        and knn.fit_method in ("kd_tree", "ball_tree", "brute"), version + "the k-NN model's samples"
    assert set(PRIVATE) == {type(c) for c in fitted.values()}  # every kind PRIVATE names is checked here
    del fitted["knn"]._fit_X  # as another scikit-learn that no longer keeps it would have it
    with pytest.raises(SklearnChanged, match="KNeighborsClassifier has no _fit_X, which harduino reads"):
        private(fitted["knn"])


def test_unknown_architecture_is_one_sentence():
    with pytest.raises(UserError, match="unknown architecture 'svc'"):
        make_estimator("svc", "all")


# ---------------------------------------------------------------- the commands


def test_archs_lists_every_architecture(capsys):
    code, out, _ = run_cli(capsys, "archs")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(ARCHITECTURES)


def test_train_then_evaluate_the_bundle_on_other_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "train", SIM, "--arch", "logreg", "--channels", "magnitudes",
                           "-o", tmp_path / "m", "--quiet")
    assert code == 0 and "trained logreg" in out and "cross-validation" not in out  # one fit, no folds
    code, out, _ = run_cli(capsys, "evaluate", "--model", tmp_path / "m", SIM, "--quiet")
    assert code == 0
    assert "macro F1" in out and "precision" in out and "waving" in out and "per subject" in out
    assert "confusion matrix (rows: true" in out
    assert not list(tmp_path.glob("*.png"))  # an image only where --plot asks for one
    # The model is for 50 Hz data: the 10 Hz smartwatch set is refused in one sentence.
    code, _, err = run_cli(capsys, "evaluate", "--model", tmp_path / "m", BASICMOTIONS / "test")
    assert code == 2 and "50 Hz" in err and "10 Hz" in err and len(err.strip().splitlines()) == 1


def test_evaluate_cross_validates_an_architecture_and_writes_a_confusion_matrix(tmp_path, capsys):
    png = tmp_path / "cm.png"
    code, out, _ = run_cli(capsys, "evaluate", SIM, "--arch", "knn", "--plot", png, "--quiet")
    assert code == 0 and "leave-one-subject-out" in out
    accuracy = float(out.split("accuracy ")[1].split()[0])
    assert accuracy >= 0.9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_compare_prints_one_row_per_architecture(capsys):
    code, out, _ = run_cli(capsys, "compare", BASICMOTIONS / "train", "--test", BASICMOTIONS / "test",
                           "--archs", "logreg,mlp", "--epochs", "5", "--quiet")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[0] in ARCHITECTURES}
    assert set(rows) == {"logreg", "mlp"}
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows.values())
    assert all(r[-1] in ("params", "nodes") for r in rows.values())  # each model's size is printed


def one_class_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "still_only"
    folder.mkdir()
    for p in SIM.glob("*_still_*"):
        if p.suffix in (".csv", ".json"):
            shutil.copy(p, folder / p.name)
    return folder


@pytest.mark.parametrize("case, expect", [
    ("empty", "no recordings"),
    ("one class", "only the class 'still'"),
    ("unknown arch", "unknown architecture"),
    ("not a bundle", "not a model bundle"),
    ("both", "either --arch"),
])
def test_bad_input_is_one_sentence_and_a_nonzero_exit(case, expect, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = {
        "empty": ["train", tmp_path / "empty", "--arch", "rf"],
        "one class": ["train", one_class_folder(tmp_path), "--arch", "rf", "-o", tmp_path / "m"],
        "unknown arch": ["evaluate", SIM, "--arch", "transformer"],
        "not a bundle": ["evaluate", "--model", tmp_path / "empty", SIM],
        "both": ["evaluate", SIM],
    }[case]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("harduino: error: ") and expect in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_inference_benchmark_prints_its_figures():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "inference.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, check=True).stdout
    for arch in ARCHITECTURES:
        assert any(line.split()[:1] == [arch] for line in out.splitlines()), arch
    assert "p99" in out and "sample period" in out
