"""Evaluation that tells the truth: scores over present classes, per subject, per window, fits in parallel."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from conftest import run_cli
from harduino.cli import main
from harduino.dataset import load_recordings, window_dataset
from harduino.models.evaluation import Scores, run_archs, subject_folds

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sim():
    return window_dataset(load_recordings(SIM), "all")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "m"
    assert main(["train", str(SIM), "--arch", "logreg", "-o", str(out), "--quiet"]) == 0
    return out


def test_macro_f1_counts_only_classes_tested_or_predicted():
    truth = np.array(["still", "still", "walking", "walking", "running", "running"])
    guess = np.array(["still", "walking", "walking", "walking", "running", "running"])
    scores = Scores(truth, guess, np.full(6, "s1"), np.array(["running", "still", "walking", "waving"]))
    assert scores.macro_f1 == pytest.approx(f1_score(truth, guess, average="macro"))  # "waving" is not held against it
    scores = Scores(truth, np.where(guess == "still", "waving", guess), np.full(6, "s1"), scores.classes)
    assert list(scores.labels) == ["running", "still", "walking", "waving"]  # predicted: it counts
    assert scores.macro_f1 == pytest.approx(f1_score(truth, scores.y_pred, average="macro", labels=scores.labels))


def test_a_folder_missing_a_class_scores_over_the_classes_it_holds(bundle, tmp_path, capsys):
    folder = tmp_path / "no_waving"
    folder.mkdir()
    for p in SIM.iterdir():
        if p.suffix in (".csv", ".json") and "_waving_" not in p.name:
            shutil.copy(p, folder / p.name)
    code, out, _ = run_cli(capsys, "evaluate", "--model", bundle, folder, "--predictions", tmp_path / "p.csv")
    assert code == 0
    rows = read_csv(tmp_path / "p.csv")
    true, pred = [r["true"] for r in rows], [r["predicted"] for r in rows]
    present = sorted(set(true) | set(pred))
    assert "waving" not in present
    printed = float(out.split("macro F1 ")[1].split()[0])
    assert printed == pytest.approx(f1_score(true, pred, labels=present, average="macro"), abs=5e-4)
    assert printed > 0.9  # with the absent class as an F1 of 0 it could be at most 0.8


def test_per_subject_scores_add_up_to_the_pooled_counts(sim):
    how, idx = subject_folds(sim)
    folds = [(sim.subset(a), sim.subset(b)) for a, b in idx]
    scores = run_archs(["logreg"], folds, progress=False)[0].scores
    rows = scores.per_subject()
    assert [r["subject"] for r in rows] == ["s1", "s2", "s3", "s4", "s5"]
    assert sum(r["windows"] for r in rows) == len(sim)
    assert sum(r["correct"] for r in rows) == round(scores.accuracy * len(sim))
    spread = scores.spread()["accuracy"]
    assert spread["mean"] == pytest.approx(np.mean([r["accuracy"] for r in rows]))
    assert spread["min"] == min(r["accuracy"] for r in rows)


def test_compare_writes_one_prediction_row_per_window_for_each_architecture(sim, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "compare", SIM, "--archs", "logreg,rf", "--cv", "2", "--quiet",
                           "--predictions", tmp_path / "pred.csv")
    assert code == 0 and "2-fold cross-validation by subject (5 subjects)" in out
    for arch in ("logreg", "rf"):
        rows = read_csv(tmp_path / f"pred-{arch}.csv")
        assert len(rows) == len(sim)
        columns = [c for c in rows[0] if c.startswith("p_")]
        assert columns == [f"p_{c}" for c in sim.classes]
        proba = np.array([[float(r[c]) for c in columns] for r in rows])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-3)
        assert [columns[i][2:] for i in proba.argmax(axis=1)] == [r["predicted"] for r in rows]
        # Every window once: its recording and the time of its last sample.
        keys = {(r["recording"], r["t_end"]) for r in rows}
        assert len(keys) == len(sim) and {k[0] for k in keys} == set(sim.sessions)
        assert min(float(r["t_end"]) for r in rows) == pytest.approx(31 / 50)


def test_train_fits_once_and_cross_validates_only_when_asked(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", SIM, "--arch", "logreg", "-o", tmp_path / "once", "--quiet")
    assert code == 0 and "cross-validation" not in out
    assert "cross_validation" not in json.loads((tmp_path / "once" / "bundle.json").read_text())["metrics"]
    code, out, _ = run_cli(capsys, "train", SIM, "--arch", "logreg", "-o", tmp_path / "cv", "--cv", "2", "--quiet")
    assert code == 0 and "2-fold cross-validation by subject" in out
    cv = json.loads((tmp_path / "cv" / "bundle.json").read_text())["metrics"]["cross_validation"]
    assert cv["accuracy"] > 0.8 and len(cv["per_subject"]) == 5


def test_window_size_is_an_option_and_the_bundle_keeps_it(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", SIM, "--arch", "rf", "--window", "128", "-o", tmp_path / "m",
                           "--quiet")
    assert code == 0 and "windows of 128 samples" in out
    meta = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert (meta["window"], meta["step"]) == (128, 64)
    code, out, _ = run_cli(capsys, "evaluate", "--model", tmp_path / "m", SIM)
    assert code == 0 and float(out.split("accuracy ")[1].split()[0]) > 0.9
    code, _, err = run_cli(capsys, "evaluate", "--model", tmp_path / "m", SIM, "--window", "32")
    assert code == 2 and "windows of 128 samples, not 32" in err and len(err.strip().splitlines()) == 1


def test_fits_in_parallel_processes_give_what_one_process_gives(sim):
    how, idx = subject_folds(sim, 2)
    folds = [(sim.subset(a), sim.subset(b)) for a, b in idx]
    params = {"mlp": {"epochs": 3, "verbose": False}}
    one = run_archs(["rf", "mlp"], folds, params=params, jobs=1, progress=False)
    two = run_archs(["rf", "mlp"], folds, params=params, jobs=2, progress=False)
    for a, b in zip(one, two):
        assert a.arch == b.arch and a.size == b.size
        np.testing.assert_array_equal(a.scores.y_pred, b.scores.y_pred)
        np.testing.assert_allclose(a.scores.proba, b.scores.proba, atol=1e-5)


def test_the_turned_test_windows_are_scored_by_the_same_fitted_models(sim):
    how, idx = subject_folds(sim, 2)
    folds = [(sim.subset(a), sim.subset(b)) for a, b in idx]
    same = run_archs(["logreg"], folds, turned=[test for _, test in folds], progress=False)[0]
    np.testing.assert_array_equal(same.turned.y_pred, same.scores.y_pred)
    np.testing.assert_allclose(same.turned.proba, same.scores.proba)
    noisy = [test.subset(np.arange(len(test))) for _, test in folds]
    for w in noisy:
        w.X[:] = np.random.default_rng(0).normal(size=w.X.shape)  # windows no model can read
    other = run_archs(["logreg"], folds, turned=noisy, progress=False)[0]
    assert len(other.fit_s) == len(folds) and len(other.turned.y_true) == len(sim)
    assert other.turned.accuracy < other.scores.accuracy - 0.3
    np.testing.assert_array_equal(other.scores.y_pred, same.scores.y_pred)


@pytest.mark.parametrize("argv, expect", [
    (["evaluate", SIM, "--arch", "rf", "--cv", "1"], "--cv must be at least 2"),
    (["evaluate", SIM, "--arch", "rf", "--cv", "9"], "5 subjects, so 2 to 5 folds"),
    (["compare", SIM, "--test", SIM, "--cv", "2"], "not both"),
    (["train", SIM, "--arch", "rf", "--window", "0"], "--window must be a positive number"),
])
def test_bad_evaluation_options_are_one_sentence(argv, expect, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and expect in err and len(err.strip().splitlines()) == 1, err
