"""The dataset layer: channels, the one windowing function, window labels, splits, the channel scaler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from harduino import calibration, dataset, motion, protocol, windowing
from harduino.dataset import ChannelScaler
from harduino.errors import UserError
from harduino.recording import Recording, write_recording

SCALE = protocol.BoardInfo().si_scale


def make_recording(si, labels, subject="s1", session="a", rate=50.0, t=None) -> Recording:
    si = np.asarray(si, dtype=np.float64)
    t = np.arange(len(si)) / rate if t is None else np.asarray(t, dtype=np.float64)
    return Recording(path=Path(f"{session}.csv"), subject=subject, session=session, rate_hz=rate, t=t, si=si,
                     labels=np.asarray(labels, dtype=str), meta={})


def sim_recording(activity, subject, seconds=8.0, seed=0, rate=50.0) -> Recording:
    n = int(seconds * rate)
    raw = motion.synth_activity(activity, n, rate, subject=subject, seed=seed)
    return make_recording(raw * SCALE, [activity] * n, subject=f"s{subject}", session=f"s{subject}-{activity}",
                          rate=rate)


# ---------------------------------------------------------------- channels and windows

def test_channel_sets_derive_magnitudes():
    si = np.array([[3.0, 4.0, 0.0, 0.0, 0.0, 2.0], [1.0, 2.0, 2.0, 1.0, 2.0, 2.0]])
    mags = dataset.select_channels(si, "magnitudes")
    assert mags.dtype == np.float32
    assert np.allclose(mags, [[5.0, 2.0], [3.0, 3.0]])
    every = dataset.select_channels(si, "all")
    assert every.shape == (2, 8)
    assert np.allclose(every[:, :6], si) and np.allclose(every[:, 6:], mags)
    assert np.allclose(dataset.select_channels(si, "axes"), si)
    assert {k: len(v) for k, v in dataset.CHANNEL_SETS.items()} == {"axes": 6, "magnitudes": 2, "all": 8,
                                                                  "aligned": 6, "body": 7}
    with pytest.raises(UserError, match="unknown channel set 'xyz'"):
        dataset.select_channels(si, "xyz")


@pytest.mark.parametrize("n, size, step", [(100, 32, 16), (95, 32, 8), (32, 32, 16), (64, 10, 7)])
def test_windows_are_the_samples_they_cover(n, size, step):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    w = windowing.windows(x, size, step)
    assert w.shape == ((n - size) // step + 1, 3, size) and w.dtype == np.float32
    for i in range(len(w)):
        assert np.array_equal(w[i], x[i * step : i * step + size].T)


def test_too_few_samples_give_no_window():
    assert windowing.windows(np.zeros((31, 2)), 32, 16).shape == (0, 2, 32)


def test_a_stream_fed_in_pieces_gives_the_channels_of_one_pass():
    si = motion.synth_activity("walking", 500, 50, subject=1) * SCALE
    upright = calibration.Calibration((0.0, 0.0, 1.0), (0.001, -0.002, 0.0), "test")
    for channel_set in dataset.CHANNEL_SETS:
        whole = dataset.select_channels(si, channel_set, 50, upright)
        assert whole.shape == (500, len(dataset.CHANNEL_SETS[channel_set])) and whole.dtype == np.float32
        stream = dataset.ChannelStream(channel_set, 50, upright)
        pieces = np.concatenate([stream.push(si[a:a + 37]) for a in range(0, 500, 37)])  # as the live path
        assert np.allclose(pieces, whole, atol=1e-5), channel_set
    with pytest.raises(UserError, match="need a calibration"):
        dataset.select_channels(si, "body", 50)


def test_the_window_grid_cuts_at_a_reset_or_a_pause_and_windows_each_stretch_from_its_start():
    even = np.arange(32) * 0.02
    grid = windowing.window_grid(even, 50, 8, 4)
    assert grid.stretches == ((0, 32),) and list(grid.starts) == list(range(0, 25, 4)) and grid.next == 28
    paused = even.copy()
    paused[10:] += 1.0  # a second without samples after sample 10
    assert windowing.window_grid(paused, 50, 8, 4).stretches == ((0, 10), (10, 32))
    reset = even.copy()
    reset[20:] -= 0.5  # the board restarted: its time goes back
    grid = windowing.window_grid(reset, 50, 8, 4)
    assert grid.stretches == ((0, 20), (20, 32)) and list(grid.cuts) == [20]
    assert list(grid.starts) == [0, 4, 8, 12, 20, 24] and grid.next == 28  # none across the reset
    # A tail taken up mid-stretch keeps the grid its stretch began: phase 2 starts windows at 2, 6, ...
    tail = windowing.window_grid(reset[10:], 50, 8, 4, phase=2)
    assert list(tail.starts) == [2, 10, 14] and tail.next == 18
    assert windowing.window_grid(even[:7], 50, 8, 4).next == 0  # no window yet: the first one starts at 0


def test_window_labels_pure_and_majority():
    labels = np.array(["a"] * 20 + ["b"] * 12 + [""] * 12)
    # windows of 8 every 4: starts 0, 4, ..., 36
    pure = windowing.window_labels(labels, 8, 4, "pure")
    assert list(pure) == ["a", "a", "a", "a", "", "b", "b", "", "", ""]
    majority = windowing.window_labels(labels, 8, 4, "majority")
    assert list(majority) == ["a", "a", "a", "a", "a", "b", "b", "b", "", ""]
    with pytest.raises(UserError, match="label policy"):
        windowing.window_labels(labels, 8, 4, "vote")


# ---------------------------------------------------------------- window sets

def test_no_window_crosses_a_session_boundary_or_a_gap():
    # every sample's ax holds its session number, gx its time: a window mixing sessions would show two values
    recs = []
    for k, n in enumerate([70, 45, 31, 100]):
        si = np.zeros((n, 6))
        si[:, 0] = k
        t = np.arange(n) / 50.0
        if k == 3:
            t[60:] += 5.0  # the board was unplugged for 5 s
        si[:, 3] = t
        recs.append(make_recording(si, ["x"] * n, subject=f"s{k % 2}", session=f"r{k}", t=t))
    ws = dataset.window_dataset(recs, "axes", 32, 16)
    ax, gx = ws.X[:, 0, :], ws.X[:, 3, :]
    assert np.all(ax.min(axis=1) == ax.max(axis=1))                         # one session per window
    assert np.allclose(np.diff(gx, axis=1), 1 / 50.0, atol=1e-5)            # evenly spaced: no gap inside
    assert list(np.unique(ws.sessions, return_counts=True)[1]) == [3, 1, 3]  # 70 -> 3, 45 -> 1, 31 -> 0, 60+40 -> 2+1
    assert np.all(ws.sessions == np.char.add("r", ax[:, 0].astype(int).astype(str)))
    assert np.allclose(ws.t0, gx[:, 0])


def test_pure_policy_drops_mixed_and_unlabelled_windows():
    raw, labels = motion.synth_script([("still", 4), ("walking", 4)], 50, subject=2)
    labels = labels.copy()
    labels[:40] = ""
    rec = make_recording(raw * SCALE, labels)
    pure = dataset.window_dataset([rec], "magnitudes", label_policy="pure")
    majority = dataset.window_dataset([rec], "magnitudes", label_policy="majority")
    assert set(pure.y) == {"still", "walking"} and set(majority.y) == {"still", "walking"}
    # 400 samples -> 24 windows starting every 16; those at 0, 16, 32 touch the 40 unlabelled samples,
    # those at 176 and 192 straddle the change at 200; under majority only 0 and 16 are mostly unlabelled
    assert len(pure) == 19 and len(majority) == 22
    assert list(pure.t0[:2]) == [48 / 50, 64 / 50]
    assert pure.X.shape == (19, 2, 32) and pure.X.dtype == np.float32
    assert pure.rate_hz == 50.0 and pure.channels == ("acc_mag", "gyro_mag")


def test_mixed_sample_rates_are_refused_naming_the_files():
    a = make_recording(np.zeros((64, 6)), ["x"] * 64, session="fast", rate=100.0)
    b = make_recording(np.zeros((64, 6)), ["x"] * 64, session="slow", rate=50.0)
    with pytest.raises(UserError, match=r"fast\.csv is 100 Hz but slow\.csv is 50 Hz"):
        dataset.window_dataset([a, b])


def test_load_recordings_from_a_folder(tmp_path):
    for subject in ("s1", "s2"):
        raw = motion.synth_activity("running", 100, 50, subject=int(subject[1]))
        write_recording(tmp_path, f"{subject}_running", np.arange(100) / 50, raw * SCALE, "running",
                        {"subject": subject, "rate_hz": 50})
    recs = dataset.load_recordings(tmp_path)
    assert [r.subject for r in recs] == ["s1", "s2"]
    assert len(dataset.window_dataset(recs)) == 10
    write_recording(tmp_path, "s3_x", np.arange(10) / 25, np.zeros((10, 6)), "x", {"subject": "s3", "rate_hz": 25})
    with pytest.raises(UserError, match="mix sample rates"):
        dataset.load_recordings(tmp_path)
    with pytest.raises(UserError, match="no such recording folder"):
        dataset.load_recordings(tmp_path / "nothing-here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no recordings \(\*\.csv\) in"):
        dataset.load_recordings(empty)


# ---------------------------------------------------------------- splits

def test_leave_one_subject_out_never_shares_a_subject():
    recs = [sim_recording(a, s, seconds=3) for s in (1, 2, 3) for a in ("still", "running")]
    ws = dataset.window_dataset(recs, "all")
    folds = list(dataset.leave_one_subject_out(ws))
    assert len(folds) == 3
    tested = []
    for train, test in folds:
        assert len(train) and len(test)
        assert not set(ws.subjects[train]) & set(ws.subjects[test])
        assert len(set(ws.subjects[test])) == 1
        assert len(train) + len(test) == len(ws)
        tested += list(set(ws.subjects[test]))
    assert sorted(tested) == ["s1", "s2", "s3"]
    with pytest.raises(UserError, match="two subjects"):
        next(dataset.leave_one_subject_out(ws.subset(ws.subjects == "s1")))


def test_session_folds_keep_whole_sessions_apart():
    recs = [sim_recording(a, s, seconds=3) for s in (1, 2) for a in ("still", "walking", "waving")]
    ws = dataset.window_dataset(recs, "magnitudes")
    folds = list(dataset.by_session(ws, n_splits=3))
    assert len(folds) == 3
    for train, test in folds:
        assert not set(ws.sessions[train]) & set(ws.sessions[test])
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(ws)))


# ---------------------------------------------------------------- channel scaler

def test_channel_scaler_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal([[5.0], [-2.0], [0.0]], [[2.0], [0.5], [0.0]], size=(40, 3, 32)).astype(np.float32)
    test = train[:5] + 10.0
    scaler = ChannelScaler().fit(train)
    z = scaler.transform(train)
    assert z.dtype == np.float32 and z.shape == train.shape
    assert np.allclose(z.mean(axis=(0, 2)), 0, atol=1e-5)
    assert np.allclose(z[:, :2].std(axis=(0, 2)), 1, atol=1e-4)
    assert np.all(z[:, 2] == 0)  # a constant channel is centred, not divided by zero
    # the test windows are scaled with the training mean and std, not their own
    expected = (test - train.mean(axis=(0, 2))[:, None]) / np.where(train.std(axis=(0, 2)) > 0,
                                                                      train.std(axis=(0, 2)), 1)[:, None]
    assert np.allclose(scaler.transform(test), expected, atol=1e-4)
    assert np.allclose(scaler.inverse_transform(scaler.transform(test)), test, atol=1e-4)
    with pytest.raises(ValueError, match="fitted on 3 channels"):
        scaler.transform(train[:, :2])


def test_channel_scaler_scales_axis_triples_as_vectors_so_a_turn_commutes_with_it():
    rng = np.random.default_rng(1)
    X = rng.normal([[0.5], [-9.8], [1.0], [0.1], [0.0], [-0.2], [9.9], [0.3]], 1.0, size=(50, 8, 32))
    X = X.astype(np.float32)
    triples = dataset.axis_triples(dataset.CHANNEL_SETS["all"])
    assert triples == ((0, 1, 2), (3, 4, 5))
    scaler = ChannelScaler(triples=triples).fit(X)
    assert np.all(scaler.mean_[:6] == 0) and scaler.mean_[6] != 0  # magnitudes are still centred
    assert len(set(scaler.scale_[:3])) == 1 and len(set(scaler.scale_[3:6])) == 1
    turn = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    turned = X.copy()
    for t in triples:
        turned[:, list(t)] = np.einsum("ij,njt->nit", turn, X[:, list(t)])
    scaled_then_turned = scaler.transform(X)
    for t in triples:
        scaled_then_turned[:, list(t)] = np.einsum("ij,njt->nit", turn, scaled_then_turned[:, list(t)])
    assert np.allclose(scaler.transform(turned)[:, :6], scaled_then_turned[:, :6], atol=1e-5)
    assert dataset.axis_triples(dataset.CHANNEL_SETS["magnitudes"]) == ()


def test_channel_scaler_lives_in_a_pipeline():
    from sklearn.base import clone
    from sklearn.preprocessing import FunctionTransformer

    flatten = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    from sklearn.linear_model import LogisticRegression

    recs = [sim_recording(a, s, seconds=4) for s in (1, 2) for a in ("still", "running")]
    ws = dataset.window_dataset(recs, "all")
    pipe = make_pipeline(ChannelScaler(), flatten, LogisticRegression(max_iter=500))
    train, test = ws.subjects == "s1", ws.subjects == "s2"
    pipe.fit(ws.X[train], ws.y[train])
    assert (pipe.predict(ws.X[test]) == ws.y[test]).mean() > 0.9
    assert np.allclose(pipe[0].mean_, ws.X[train].mean(axis=(0, 2)), atol=1e-4)
    assert "mean_" not in vars(clone(pipe)[0])


# ---------------------------------------------------------------- the data the project ships

DATA = Path(__file__).resolve().parents[1] / "data"


def test_shipped_sim_data_is_every_subject_doing_every_activity_with_raw_logs():
    recs = dataset.load_recordings(DATA / "sim")
    pairs = {(r.subject, str(r.labels[0])) for r in recs}
    assert pairs == {(f"s{s}", a) for s in range(1, 6) for a in motion.ACTIVITIES}
    for rec in recs:
        assert rec.rate_hz == 50 and len(rec) >= 32 * 10 and set(rec.labels) == {rec.labels[0]}
        assert rec.meta["board"]["sensor"] == "MPU-6050"
        # the raw serial log decodes to exactly the CSV's samples
        chunk = protocol.Decoder().feed(rec.path.with_suffix(".bin").read_bytes())
        assert np.array_equal(chunk.raw, np.rint(rec.si / SCALE)) and np.array_equal(chunk.seq, rec.seq)
    ws = dataset.window_dataset(recs, "magnitudes")
    assert set(np.unique(ws.y, return_counts=True)[1]) == {len(ws) // 5}  # balanced


def test_shipped_basicmotions_has_the_archive_split():
    for split in ("train", "test"):
        recs = dataset.load_recordings(DATA / "basicmotions" / split)
        assert len(recs) == 40 and all(len(r) == 100 and r.rate_hz == 10 for r in recs)
        labels, counts = np.unique([r.labels[0] for r in recs], return_counts=True)
        assert list(labels) == ["badminton", "running", "standing", "walking"] and set(counts) == {10}
        assert len({r.subject for r in recs}) == 40
    with pytest.raises(UserError, match="subfolders test, train"):
        dataset.load_recordings(DATA / "basicmotions")


def _as_ts(recs) -> str:
    lines = ["# BasicMotions written back from the converted files", "@problemName BasicMotions", "@data"]
    for r in recs:
        dims = [",".join(f"{v:.6f}" for v in r.si[:, d]) for d in range(6)]
        lines.append(":".join(dims) + ":" + r.labels[0].capitalize())
    return "\n".join(lines) + "\n"


def _as_arff(recs) -> str:
    lines = ["@relation 'BasicMotions'", "@attribute relationalAtt relational", "@end relationalAtt", "@data"]
    for r in recs:
        dims = "\\n".join(",".join(f"{v:.6f}" for v in r.si[:, d]) for d in range(6))
        lines.append(f"'{dims}',{r.labels[0].capitalize()}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt", ["ts", "arff", "zip"])
def test_basicmotions_converter_reads_the_archive_formats(tmp_path, fmt):
    import zipfile

    from harduino.importers import import_basicmotions

    shipped = {split: dataset.load_recordings(DATA / "basicmotions" / split) for split in ("train", "test")}
    src = tmp_path / "src" / "datasets"
    src.mkdir(parents=True)
    for split, recs in shipped.items():
        name = f"BasicMotions_{split.upper()}"
        if fmt == "ts":
            (src / f"{name}.ts").write_text(_as_ts(recs))
        else:
            (src / f"{name}.arff").write_text(_as_arff(recs))
    source = src
    if fmt == "zip":
        source = tmp_path / "pkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(source, "w") as z:
            for f in src.iterdir():
                z.write(f, f"pkg/data/{f.name}")
    if fmt == "zip":  # through the command line, as a user runs it
        from harduino import cli

        assert cli.main(["import", "basicmotions", str(source), str(tmp_path / "out")]) == 0
    else:
        assert import_basicmotions(source, tmp_path / "out") == {"train": 40, "test": 40}
    for split, recs in shipped.items():
        again = dataset.load_recordings(tmp_path / "out" / split)
        assert [r.path.name for r in again] == [r.path.name for r in recs]
        for a, b in zip(again, recs):
            assert np.array_equal(a.si, b.si) and list(a.labels) == list(b.labels) and a.subject == b.subject
    with pytest.raises(UserError, match="already holds recordings"):
        import_basicmotions(source, tmp_path / "out")


def test_basicmotions_converter_bad_sources(tmp_path):
    from harduino.importers import import_basicmotions

    with pytest.raises(UserError, match="no BasicMotions_TRAIN.ts/.arff or BasicMotions_TEST"):
        import_basicmotions(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="not a folder, a .whl/.zip file or an installed package"):
        import_basicmotions("no_such_package_here", tmp_path / "out")
    (tmp_path / "BasicMotions_TRAIN.ts").write_text("@data\n1,2:3,4:Walking\n")
    (tmp_path / "BasicMotions_TEST.ts").write_text("@data\n1,2:3,4:Walking\n")
    with pytest.raises(UserError, match="BasicMotions_TRAIN.ts line 2 has 2 dimensions"):
        import_basicmotions(tmp_path, tmp_path / "out")



def test_basicmotions_from_a_damaged_zip_is_one_sentence(tmp_path):
    import zipfile

    from harduino.importers import import_basicmotions

    source = tmp_path / "pkg-1.0-py3-none-any.whl"
    text = _as_ts(dataset.load_recordings(DATA / "basicmotions" / "test"))
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("TRAIN", "TEST"):
            z.writestr(f"pkg/data/BasicMotions_{split}.ts", text)
    data = bytearray(source.read_bytes())
    data[len(data) // 4:len(data) // 4 + 64] = bytes(64)  # inside the first member's deflate stream
    source.write_bytes(bytes(data))
    with pytest.raises(UserError, match="cannot read"):
        import_basicmotions(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()



def test_basicmotions_from_a_zip_bomb_is_refused_unread(tmp_path):
    import zipfile

    from harduino.importers import basicmotions, import_basicmotions

    source = tmp_path / "bomb.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BasicMotions_TRAIN.ts", bytes(basicmotions.MAX_MEMBER_BYTES + 1))  # compresses to ~64 KB
    with pytest.raises(UserError, match="unpacks to more than"):
        import_basicmotions(source, tmp_path / "out")


def test_make_data_regenerates_the_shipped_sim_samples(tmp_path):
    from harduino import sampledata

    assert sampledata.main([str(tmp_path)]) == 0
    made = {(r.subject, str(r.labels[0])): r for r in dataset.load_recordings(tmp_path)}
    shipped = {(r.subject, str(r.labels[0])): r for r in dataset.load_recordings(DATA / "sim")}
    assert made.keys() == shipped.keys()
    for key, rec in shipped.items():
        assert np.array_equal(made[key].si, rec.si) and np.array_equal(made[key].t_us, rec.t_us), key
        assert made[key].path.with_suffix(".bin").read_bytes() == rec.path.with_suffix(".bin").read_bytes()
