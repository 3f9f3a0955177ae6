"""Crafted model bundles, loaded through the real CLI in a child process: each refused in one sentence.

A child runs `harduino evaluate` (or `live`) on one bundle after another and reports
each verdict as it comes, so a segfault or a hang fails only its own case: the
child is killed 30 s after a case began, and the rest run in a new child. The
child also reports how long each load took and its peak memory; the load times
are printed, not asserted (speed is not a test's business), while the memory is
asserted, since an oversized network that was allocated before being refused
costs gigabytes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import queue
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from conftest import bundle_checksum
from harduino.dataset import load_recordings, window_dataset
from harduino.models import fit_estimator, load_bundle, make_estimator, save_bundle
from harduino.models.internals import private
from harduino.models.shallow import as_stored
from harduino.models.trees import InvalidTrees, check_trees

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
DEFAULT = ROOT / "models" / "default"
CASE_TIMEOUT_S = 30
PEAK_MEMORY_MB = 2000  # torch and scikit-learn loaded take ~0.5 GB; a 16000-wide network took 4.25 GB more

# Runs in the child: one JSON line per case in, a begin and an end line per case out.
CHILD = r"""
import contextlib, io, json, resource, sys, time, traceback
from harduino.cli import main
import harduino.commands.live, harduino.commands.models, harduino.live.session, harduino.live.terminal
import harduino.models

timed = {}
real_load = harduino.models.load_bundle

def load_bundle(folder):
    start = time.perf_counter()
    try:
        return real_load(folder)
    finally:
        timed["load_s"] = time.perf_counter() - start

harduino.models.load_bundle = harduino.live.session.load_bundle = load_bundle
for line in sys.stdin:
    case = json.loads(line)
    print(json.dumps({"begin": case["name"]}), flush=True)
    err = io.StringIO()
    timed.clear()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(case["argv"])
        except SystemExit as exit_:
            code = exit_.code
        except BaseException:
            traceback.print_exc()
            code = 1
    print(json.dumps({"end": case["name"], "code": code, "stderr": err.getvalue(), "load_s": timed.get("load_s"),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def seal(folder: Path, info: dict) -> None:
    """Write bundle.json with a fresh version 2 checksum, as a forger who read docs/model-bundle.md would."""
    weights = folder / info["weights"]["file"]
    info["sha256"] = bundle_checksum(info, weights.read_bytes() if weights.is_file() else b"")
    (folder / "bundle.json").write_text(json.dumps(info, indent=1))


def clone(src: Path, dst: Path) -> tuple[Path, dict]:
    shutil.copytree(src, dst)
    return dst, json.loads((dst / "bundle.json").read_text())


def replace_weights(folder: Path, info: dict, data: bytes) -> None:
    (folder / info["weights"]["file"]).write_bytes(data)
    info["weights"]["bytes"] = len(data)
    seal(folder, info)


def with_pipeline(src: Path, dst: Path, change) -> Path:
    """A copy of a shallow bundle whose pipeline `change` altered (or replaced), sealed again."""
    folder, info = clone(src, dst)
    pipeline = as_stored(load_bundle(src).estimator)  # as the bundle stores it
    pipeline = change(pipeline) or pipeline
    replace_weights(folder, info, skops.io.dumps(pipeline))
    return folder


def with_schema(src: Path, dst: Path, change) -> Path:
    """A copy of a shallow bundle with its skops archive's schema.json (or an entry) edited, sealed again."""
    folder, info = clone(src, dst)
    path = folder / info["weights"]["file"]
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    change(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    replace_weights(folder, info, out.getvalue())
    return folder


def find_node(node, cls: str):
    """The first skops schema node of class `cls`."""
    if isinstance(node, dict):
        if node.get("__class__") == cls:
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    return next((hit for child in children if (hit := find_node(child, cls)) is not None), None)


def edit_json(entries: dict, change) -> None:
    schema = json.loads(entries["schema.json"])
    change(schema)
    entries["schema.json"] = json.dumps(schema).encode()


def first_tree(pipeline):
    return pipeline.steps[-1][1].estimators_[0].tree_


def make_cycle(left: np.ndarray, right: np.ndarray, internal: np.ndarray) -> None:
    """Point a grandchild's left child back at its grandparent (below the root): a cycle, in place."""
    for node in np.flatnonzero(internal)[1:]:
        for child in (left[node], right[node]):
            if internal[child]:
                left[child] = node
                return
    raise AssertionError("no internal node below the root has an internal child")


def hgb_nodes(pipeline):
    return private(pipeline.steps[-1][1]).predictors[0][0].nodes


def craft(base: Path, out: Path) -> list[dict]:
    """Every crafted bundle, as a case: name, the command line, and a phrase its refusal must hold."""
    ws = window_dataset(load_recordings(SIM), "all")
    ws = ws.subset(np.arange(0, len(ws), 3))
    trained = {}
    for arch, params in {"rf": {"n_estimators": 3}, "hgb": {"max_iter": 2}, "logreg": {},
                         "mlp": {"epochs": 1, "verbose": False}}.items():
        est = fit_estimator(make_estimator(arch, "all", rate_hz=ws.rate_hz, **params), ws.X, ws.y, ws.sessions)
        trained[arch] = save_bundle(est, base / arch, {"architecture": arch, "channel_set": "all", "window": ws.size,
                                                       "step": ws.step, "rate_hz": ws.rate_hz, "feature_set": "full"})
    cases = []

    def case(name: str, folder: Path, expect: str, command: str = "evaluate"):
        argv = (["evaluate", "--model", str(folder), str(SIM), "--png", str(out / f"{name}.png")]
                if command == "evaluate" else
                ["live", "sim://?activity=walking", "--model", str(folder), "--no-gui", "--duration", "1"])
        cases.append({"name": name, "argv": argv, "folder": str(folder), "expect": expect})

    def edited(name: str, change, sealed: bool = True, src: Path = DEFAULT) -> Path:
        folder, info = clone(src, out / name)
        change(info)
        if sealed:
            seal(folder, info)
        else:
            (folder / "bundle.json").write_text(json.dumps(info, indent=1))
        return folder

    # bundle.json edited by hand: the checksum over it says so
    case("reversed classes", edited("reversed classes", lambda m: m["classes"].reverse(), sealed=False), "checksum")
    case("window 16", edited("window 16", lambda m: m.update(window=16), sealed=False), "checksum")
    case("hidden 16000", edited("hidden 16000", lambda m: m["network"].update(hidden=16000), sealed=False),
         "checksum")
    # ... and by a forger who seals it again: the weights say no, before anything is allocated
    for hidden in (16000, 38000):
        case(f"forged hidden {hidden}",
             edited(f"forged hidden {hidden}", lambda m, h=hidden: m["network"].update(hidden=h)), f"hidden {hidden}")
    case("forged four classes", edited("forged four classes", lambda m: m["classes"].pop()), "4 classes")
    case("forged repeated class",
         edited("forged repeated class", lambda m: m["classes"].__setitem__(1, m["classes"][0])), "more than once")
    case("forged magnitudes", edited("forged magnitudes", lambda m: m.update(
        channel_set="magnitudes", channels=["acc_mag", "gyro_mag"])), "2 channels")
    case("forged mlp window 16", edited("forged mlp window 16", lambda m: m.update(window=16), src=trained["mlp"]),
         "16 samples")
    case("forged step 0", edited("forged step 0", lambda m: m.update(step=0)), "step is 0")
    case("forged rate -50", edited("forged rate -50", lambda m: m.update(rate_hz=-50.0)), "rate_hz is -50")
    case("forged unknown network option",
         edited("forged unknown network option", lambda m: m["network"].update(exec="rm -rf")), "'exec'")
    # files that lie outside the bundle
    elsewhere = out / "elsewhere"
    shutil.copytree(DEFAULT, elsewhere)
    case("weights up and out", edited("weights up and out", lambda m: m["weights"].update(
        file="../elsewhere/weights.safetensors")), "not a file inside the bundle folder")
    case("weights absolute", edited("weights absolute", lambda m: m["weights"].update(
        file=str(elsewhere / "weights.safetensors"))), "not a file inside the bundle folder")
    linked, info = clone(DEFAULT, out / "weights linked out")
    (linked / "weights.safetensors").unlink()
    (linked / "weights.safetensors").symlink_to(elsewhere / "weights.safetensors")
    seal(linked, info)
    case("weights linked out", linked, "leads outside the bundle folder")
    # a pickle, or worse, in every file slot
    folder, info = clone(DEFAULT, out / "pickle as bundle.json")
    (folder / "bundle.json").write_bytes(pickle.dumps(info))
    case("pickle as bundle.json", folder, "not JSON")
    folder, info = clone(DEFAULT, out / "pickle as safetensors")
    replace_weights(folder, info, pickle.dumps({"net.weight": np.zeros(3)}, protocol=4))
    case("pickle as safetensors", folder, "not a valid safetensors")
    folder, info = clone(DEFAULT, out / "2^62-byte header")
    replace_weights(folder, info, (1 << 62).to_bytes(8, "little") + b"{}")
    case("2^62-byte header", folder, "not a valid safetensors")
    folder, info = clone(trained["logreg"], out / "pickle as skops")
    replace_weights(folder, info, pickle.dumps(load_bundle(trained["logreg"]).estimator))
    case("pickle as skops", folder, "not a skops archive")

    def npy_pickle(entries):
        name = next(n for n in entries if n.endswith(".npy"))
        entries[name] = pickle.dumps(np.zeros(3))
    case("pickle inside skops", with_schema(trained["logreg"], out / "pickle inside skops", npy_pickle),
         "not a valid skops")
    case("FunctionTransformer(os.system)", with_pipeline(
        trained["logreg"], out / "os.system", lambda p: Pipeline([("f", FunctionTransformer(os.system))])),
        "would build types")
    case("schema retyped to eval", with_schema(trained["logreg"], out / "eval", lambda e: edit_json(
        e, lambda s: find_node(s, "WindowFeatures").update(__module__="builtins", __class__="eval"))),
        "builtins.eval")
    # trees that are not trees, and estimators that are not the architecture
    def out_of_range(p):
        first_tree(p).children_left[0] = 10 ** 6
    case("rf child out of range", with_pipeline(trained["rf"], out / "rf child out of range", out_of_range),
         "child out of range")

    def rf_cycle(p):
        tree = first_tree(p)
        make_cycle(tree.children_left, tree.children_right, tree.children_left != -1)
    rf_cyclic = with_pipeline(trained["rf"], out / "rf cycle", rf_cycle)
    case("rf cycle", rf_cyclic, "parents")
    case("rf cycle, live", rf_cyclic, "parents", command="live")

    def far_feature(p):
        tree = first_tree(p)
        tree.feature[0] = 999
    case("rf feature out of range", with_pipeline(trained["rf"], out / "rf feature", far_feature), "feature 999")

    def nan_threshold(p):
        first_tree(p).threshold[0] = np.nan
    case("rf threshold nan", with_pipeline(trained["rf"], out / "rf nan", nan_threshold), "finite")

    def hgb_cycle(p):
        nodes = hgb_nodes(p)
        make_cycle(nodes["left"], nodes["right"], nodes["is_leaf"] == 0)
    hgb_cyclic = with_pipeline(trained["hgb"], out / "hgb cycle", hgb_cycle)
    case("hgb cycle", hgb_cyclic, "parents")
    case("hgb cycle, live", hgb_cyclic, "parents", command="live")

    def hgb_categorical(p):
        nodes = hgb_nodes(p)
        nodes["is_categorical"][0], nodes["bitset_idx"][0] = 1, 10 ** 6
    case("hgb categorical split", with_pipeline(trained["hgb"], out / "hgb categorical", hgb_categorical),
         "numeric split nodes")

    def hgb_far(p):
        hgb_nodes(p)["right"][0] = 4_000_000_000
    case("hgb child out of range", with_pipeline(trained["hgb"], out / "hgb far", hgb_far), "child out of range")

    def single_tree(p):
        p.steps[-1] = ("clf", DecisionTreeClassifier(random_state=0).fit(
            p[:-1].transform(ws.X), ws.y))
    case("decision tree as rf", with_pipeline(trained["rf"], out / "decision tree", single_tree),
         "DecisionTreeClassifier, not the RandomForestClassifier")
    case("no features step", with_pipeline(trained["logreg"], out / "no features", lambda p: Pipeline(p.steps[1:])),
         "not a pipeline of window features")
    return cases


def run_children(cases: list[dict]) -> dict[str, dict]:
    """Each case's verdict; a child that dies or hangs takes only the case it was on with it."""
    verdicts, todo = {}, list(cases)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "host"),
                                                                      os.environ.get("PYTHONPATH")]))}
    while todo:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in child.stdout] + [lines.put(None)],
                         daemon=True).start()
        child.stdin.write("".join(json.dumps(c) + "\n" for c in todo))
        child.stdin.close()
        current = None
        while todo:
            try:
                line = lines.get(timeout=CASE_TIMEOUT_S)
            except queue.Empty:
                child.kill()
                verdicts[(current or todo[0])["name"]] = {"hung": True}
                break
            if line is None:  # the child died (a segfault is a negative return code)
                verdicts[(current or todo[0])["name"]] = {"died": child.wait()}
                break
            event = json.loads(line)
            if "begin" in event:
                current = todo[0]
                continue
            verdicts[event["end"]] = event
            todo.pop(0)
            current = None
        child.wait()
        todo = [c for c in todo if c["name"] not in verdicts]
    return verdicts


@pytest.fixture(scope="module")
def attacks(tmp_path_factory):
    cases = craft(tmp_path_factory.mktemp("trained"), tmp_path_factory.mktemp("crafted"))
    verdicts = run_children(cases)
    loads = [v["load_s"] for v in verdicts.values() if v.get("load_s") is not None]
    print(f"\n{len(loads)} crafted bundles refused; load time in the child: median {np.median(loads) * 1000:.0f} ms,"
          f" max {max(loads) * 1000:.0f} ms")
    return {c["name"]: (c, verdicts[c["name"]]) for c in cases}


NAMES = ["reversed classes", "window 16", "hidden 16000", "forged hidden 16000", "forged hidden 38000",
         "forged four classes", "forged repeated class", "forged magnitudes", "forged mlp window 16", "forged step 0",
         "forged rate -50", "forged unknown network option", "weights up and out", "weights absolute",
         "weights linked out", "pickle as bundle.json", "pickle as safetensors", "2^62-byte header",
         "pickle as skops", "pickle inside skops", "FunctionTransformer(os.system)", "schema retyped to eval",
         "rf child out of range", "rf cycle", "rf cycle, live", "rf feature out of range", "rf threshold nan",
         "hgb categorical split", "hgb cycle", "hgb cycle, live", "hgb child out of range",
         "decision tree as rf", "no features step"]


@pytest.mark.parametrize("name", NAMES)
def test_a_crafted_bundle_is_refused_in_one_sentence(name, attacks):
    case, verdict = attacks[name]
    assert "hung" not in verdict and "died" not in verdict, verdict
    err = verdict["stderr"]
    assert verdict["code"] == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("harduino: error: the model bundle "), err
    assert case["folder"] in lines[0] and case["expect"] in lines[0] and lines[0].endswith("."), lines[0]
    assert verdict["peak_mb"] < PEAK_MEMORY_MB, verdict


def test_every_crafted_bundle_has_its_test(attacks):
    assert sorted(attacks) == sorted(NAMES)


def test_a_cycle_no_path_from_the_root_enters_is_found():
    """Nodes 3 and 4 are each other's child: every node has one parent, yet the root never reaches them."""
    left = np.array([1, -1, -1, 4, 3, -1, -1])
    right = np.array([2, -1, -1, 5, 6, -1, -1])
    tree = (np.zeros(7, int), np.zeros(7), left, right, left == -1, np.ones((7, 2)))
    with pytest.raises(InvalidTrees, match="cycle"):
        check_trees([tree], n_features=1)
    fine = (np.zeros(3, int), np.zeros(3), left[:3], right[:3], left[:3] == -1, np.ones((3, 2)))
    check_trees([fine], n_features=1)
