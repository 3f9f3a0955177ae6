"""Model bundles: saved and loaded without executing code, identical probabilities, tampering refused.

Crafted bundles loaded through the CLI in a child process are in test_bundle_attacks.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import skops.io
import torch
from sklearn.neighbors import KDTree
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from conftest import bundle_checksum
from harduino.dataset import load_recordings, window_dataset
from harduino.errors import UserError
from harduino.models import ARCHITECTURES, DEEP, fit_estimator, load_bundle, make_estimator, save_bundle
from harduino.models.bundle import BundleWarning
from harduino.models.internals import private

ROOT = Path(__file__).resolve().parents[1]
# The shipped model's weights file, byte for byte (`make models`: the gravity-aligned channels).
DEFAULT_WEIGHTS_SHA256 = "b747a374b2044b46dc745dc57c2d33272f399b132aca0105d3bb80546d83d9ae"


def seal(info: dict, weights: Path) -> str:
    return bundle_checksum(info, weights.read_bytes())


SMALL = {"rf": {"n_estimators": 20}, "hgb": {"max_iter": 10}}


@pytest.fixture(scope="module")
def sim():
    ws = window_dataset(load_recordings(ROOT / "data" / "sim"), "all")
    return ws.subset(np.arange(0, len(ws), 2))


def train(arch: str, ws) -> Pipeline:
    params = {"epochs": 3, "verbose": False} if arch in DEEP else SMALL.get(arch, {})
    return fit_estimator(make_estimator(arch, "all", rate_hz=ws.rate_hz, **params), ws.X, ws.y, ws.sessions)


def meta(ws) -> dict:
    return {"architecture": None, "channel_set": ws.channel_set, "window": ws.size, "step": ws.step,
            "rate_hz": ws.rate_hz, "feature_set": "full"}


@pytest.fixture
def no_pickle(monkeypatch):
    """Any use of pickle or torch.load while this is active fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("pickle or torch.load was used")

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_saved_and_reloaded_bundle_gives_identical_probabilities_without_pickle(arch, sim, tmp_path, no_pickle):
    est = train(arch, sim)
    folder = save_bundle(est, tmp_path / arch, {**meta(sim), "architecture": arch})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fresh bundle loads without a warning
        bundle = load_bundle(folder)
    np.testing.assert_array_equal(bundle.predict_proba(sim.X), est.predict_proba(sim.X))
    np.testing.assert_array_equal(bundle.predict(sim.X[:5]), est.predict(sim.X[:5]))
    assert list(bundle.classes_) == list(est.classes_)
    assert (bundle.arch, bundle.channel_set, bundle.window, bundle.step, bundle.rate_hz) == (arch, "all", 32, 16, 50.0)
    info = json.loads((folder / "bundle.json").read_text())
    weights = folder / info["weights"]["file"]
    assert (info["version"], info["weights"]["bytes"]) == (2, weights.stat().st_size)
    assert info["sha256"] == seal(info, weights)
    assert info["kind"] == ("deep" if arch in DEEP else "shallow")
    assert {"scikit-learn", "torch", "numpy"} <= set(info["versions"])


@pytest.fixture(scope="module", params=["cnn-lstm", "logreg"])
def saved(request, sim, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles") / request.param
    save_bundle(train(request.param, sim), folder, {**meta(sim), "architecture": request.param})
    return folder


def copy_of(saved: Path, tmp_path: Path) -> tuple[Path, dict, Path]:
    folder = Path(shutil.copytree(saved, tmp_path / saved.name))
    info = json.loads((folder / "bundle.json").read_text())
    return folder, info, folder / info["weights"]["file"]


def rewrite(folder: Path, info: dict, weights: Path, data: bytes | None = None) -> None:
    """Replace the weights and/or bundle.json and update the checksum, as a deliberate forger would."""
    if data is not None:
        weights.write_bytes(data)
        info["weights"]["bytes"] = len(data)
    info["sha256"] = seal(info, weights)
    (folder / "bundle.json").write_text(json.dumps(info))


def test_a_changed_weights_file_is_refused_by_its_checksum(saved, tmp_path):
    folder, _, weights = copy_of(saved, tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its checksum"):
        load_bundle(folder)


@pytest.mark.parametrize("edit", ["reversed classes", "window 16", "hidden 16000"])
def test_an_edited_bundle_json_is_refused_by_its_checksum(edit, saved, tmp_path):
    folder, info, _ = copy_of(saved, tmp_path)
    if edit == "reversed classes":
        info["classes"] = info["classes"][::-1]
    elif edit == "window 16":
        info["window"] = 16
    elif "network" in info:
        info["network"]["hidden"] = 16000
    else:
        info["classifier"]["C"] = 16000.0
    (folder / "bundle.json").write_text(json.dumps(info, indent=1))
    with pytest.raises(UserError, match="does not match its checksum: its bundle.json or its weights were modified"):
        load_bundle(folder)


def test_a_weights_file_holding_a_pickle_is_refused_without_unpickling(saved, tmp_path, no_pickle):
    folder, info, weights = copy_of(saved, tmp_path)
    rewrite(folder, info, weights, pickle.dumps({"net.weight": np.zeros(3)}, protocol=4))
    with pytest.raises(UserError, match="not a (valid|skops)") as err:
        load_bundle(folder)
    assert "\n" not in str(err.value)


def test_a_skops_file_naming_untrusted_types_is_refused(sim, tmp_path, no_pickle):
    folder = save_bundle(train("logreg", sim), tmp_path / "m", {**meta(sim), "architecture": "logreg"})
    info = json.loads((folder / "bundle.json").read_text())
    evil = Pipeline([("f", FunctionTransformer(eval))])  # a pipeline that would call eval on its input
    rewrite(folder, info, folder / info["weights"]["file"], skops.io.dumps(evil))
    with pytest.raises(UserError, match="would build types a harduino model never holds"):
        load_bundle(folder)


@pytest.mark.parametrize("damage", ["not json", "unknown format", "no classes", "unknown network option",
                                    "other weights file", "unknown architecture", "channels not the set",
                                    "negative rate", "a list, not an object", "a line break in a class",
                                    "a lone surrogate", "version true"])
def test_a_damaged_bundle_json_is_one_sentence(damage, saved, tmp_path):
    folder, info, _ = copy_of(saved, tmp_path)
    text = json.dumps(info)
    if damage == "not json":
        text = text[: len(text) // 2]
    elif damage == "unknown format":
        text = json.dumps({**info, "format": "something-else"})
    elif damage == "no classes":
        text = json.dumps({k: v for k, v in info.items() if k != "classes"})
    elif damage == "unknown network option":
        if info["kind"] != "deep":
            pytest.skip("shallow bundles have no network options")
        text = json.dumps({**info, "network": {**info["network"], "exec": "rm -rf"}})
    elif damage == "other weights file":
        text = json.dumps({**info, "weights": {**info["weights"], "file": "../../etc/passwd"}})
    elif damage == "unknown architecture":
        text = json.dumps({**info, "architecture": "transformer"})
    elif damage == "channels not the set":
        text = json.dumps({**info, "channels": info["channels"][:1]})
    elif damage == "negative rate":
        text = json.dumps({**info, "rate_hz": -50})
    elif damage == "a list, not an object":
        text = json.dumps([info])
    elif damage == "a line break in a class":
        text = json.dumps({**info, "classes": ["still\nwalking", *info["classes"][1:]]})
    elif damage == "a lone surrogate":
        text = json.dumps({**info, "subject": "\ud800"})
    elif damage == "version true":
        text = json.dumps({**info, "version": True})
    if damage not in ("not json", "a list, not an object", "a lone surrogate"):  # sealed again: the fields themselves are refused
        forged = json.loads(text)
        text = json.dumps({**forged, "sha256": seal(forged, folder / info["weights"]["file"])})
    (folder / "bundle.json").write_text(text)
    with pytest.raises(UserError) as err:
        load_bundle(folder)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
    assert "checksum" not in str(err.value)


def test_a_bundle_of_another_format_version_says_so(saved, tmp_path):
    folder, info, _ = copy_of(saved, tmp_path)
    (folder / "bundle.json").write_text(json.dumps({**info, "version": 3}))
    with pytest.raises(UserError, match="format version 3, and this harduino reads versions 1 and 2"):
        load_bundle(folder)


def v1_default(tmp_path: Path) -> Path:
    """The shipped model as format version 1 wrote it: the same weights, bundle.json without the v2 checksum."""
    folder = Path(shutil.copytree(ROOT / "models" / "default", tmp_path / "v1"))
    info = json.loads((folder / "bundle.json").read_text())
    weights = folder / info["weights"]["file"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == DEFAULT_WEIGHTS_SHA256  # today's bytes
    info = {**{k: v for k, v in info.items() if k != "sha256"}, "version": 1,
            "weights": {**info["weights"], "sha256": DEFAULT_WEIGHTS_SHA256}}
    (folder / "bundle.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


def test_a_version_1_bundle_loads_with_a_one_line_warning_and_the_same_probabilities(tmp_path):
    with pytest.warns(BundleWarning) as caught:
        old = load_bundle(v1_default(tmp_path))
    assert len(caught) == 1 and "format version 1" in str(caught[0].message)
    assert "\n" not in str(caught[0].message)
    X = window_dataset(load_recordings(ROOT / "data" / "sim"), old.channel_set).X[::7]
    np.testing.assert_array_equal(old.predict_proba(X), load_bundle(ROOT / "models" / "default").predict_proba(X))


def test_a_version_1_bundle_is_still_checked_against_its_weights(tmp_path):
    folder = v1_default(tmp_path)
    info = json.loads((folder / "bundle.json").read_text())
    info["network"]["hidden"] = 16000  # version 1 has no checksum over bundle.json: the weights must say no
    (folder / "bundle.json").write_text(json.dumps(info))
    with pytest.warns(BundleWarning), pytest.raises(UserError, match="hidden 16000") as err:
        load_bundle(folder)
    assert "\n" not in str(err.value)


def test_saving_over_a_bundle_whose_files_link_elsewhere_replaces_the_links(sim, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("bundle.json", "pipeline.skops", "pipeline.skops.part", "bundle.json.part"):
        (outside / name).write_text("keep me")
        (folder / name).symlink_to(outside / name)
    save_bundle(train("logreg", sim), folder, {**meta(sim), "architecture": "logreg"})
    assert all((outside / name).read_text() == "keep me" for name in os.listdir(outside))
    assert load_bundle(folder).arch == "logreg"


@pytest.mark.parametrize("edit, said", [("sigmoid units", "not one hidden layer of ReLU units"),
                                         ("a short output layer", r"coefs_\[1\] is not 16x\d+ finite numbers")])
def test_a_perceptron_that_is_not_one_relu_layer_over_its_features_is_refused(edit, said, sim, tmp_path):
    est = train("mlp-board", sim)
    folder = save_bundle(est, tmp_path / "m", {**meta(sim), "architecture": "mlp-board"})
    info = json.loads((folder / "bundle.json").read_text())
    clf = est.steps[-1][1]
    if edit == "sigmoid units":
        clf.activation = "logistic"
    else:
        clf.coefs_[1] = clf.coefs_[1][:-1]  # scikit-learn would index past it
    rewrite(folder, info, folder / info["weights"]["file"], skops.io.dumps(est))
    with pytest.raises(UserError, match=said) as err:
        load_bundle(folder)
    assert "\n" not in str(err.value)


def test_a_k_nearest_neighbours_search_tree_is_rebuilt_and_finds_the_same_neighbours(sim, tmp_path):
    est = fit_estimator(make_estimator("knn", "all", feature_set="baseline", rate_hz=sim.rate_hz,
                                       algorithm="kd_tree"), sim.X, sim.y)
    search = private(est.steps[-1][1]).tree
    assert isinstance(search, KDTree)  # the search tree a bundle stores and loading must not trust
    honest = est.predict_proba(sim.X)
    search.get_arrays()[1][:] = 0  # a tree whose every leaf holds sample 0: wrong, though in range
    assert not np.array_equal(est.predict_proba(sim.X), honest)
    folder = save_bundle(est, tmp_path / "knn", {**meta(sim), "architecture": "knn", "feature_set": "baseline"})
    np.testing.assert_array_equal(load_bundle(folder).predict_proba(sim.X), honest)


def test_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(UserError, match="is not a model bundle"):
        load_bundle(tmp_path)


def test_data_that_does_not_fit_the_model_is_one_sentence(saved):
    bundle = load_bundle(saved)
    bundle.check_compatible(50.0, "all", 32)
    with pytest.raises(UserError, match="trained on data at 50 Hz but this data is 10 Hz"):
        bundle.check_compatible(10.0, "all")
    with pytest.raises(UserError, match="takes the 'all' channels, not 'magnitudes'"):
        bundle.check_compatible(50.0, "magnitudes")
    with pytest.raises(UserError, match="windows of 32 samples, not 64"):
        bundle.check_compatible(50.0, "all", 64)
    with pytest.raises(UserError, match="windows of 8 channels x 32 samples"):
        bundle.predict_proba(np.zeros((1, 2, 32), np.float32))


def test_the_shipped_default_model_loads_safely_and_recognises_the_sample_data(no_pickle):
    folder = ROOT / "models" / "default"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 500_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it is format version 2
        bundle = load_bundle(folder)
    assert (bundle.arch, bundle.channel_set, bundle.rate_hz, bundle.window) == ("cnn-lstm", "aligned", 50.0, 32)
    ws = window_dataset(load_recordings(ROOT / "data" / "sim"), bundle.channel_set, bundle.window, bundle.step)
    bundle.check_compatible(ws.rate_hz, ws.channel_set, ws.size)
    assert np.mean(bundle.predict(ws.X) == ws.y) >= 0.95
    assert bundle.meta["metrics"]["cross_validation"]["macro_f1"] >= 0.9
