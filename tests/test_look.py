"""`harduino plot` and `harduino predict`: the pictures show the signals, the labels and the gaps; the rows are
one per window, in the format of `evaluate --predictions`."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from harduino.cli import main
from harduino.colours import ACTIVITY_COLOURS, CURVE_COLOURS
from harduino.figures import GAP_COLOUR, WRONG_COLOUR

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
DEFAULT_MODEL = ROOT / "models" / "default"
RATE = 50.0
GAP_S = 1.0


def joined_recording(folder: Path, parts=("still", "walking", "running"), subject="s1", gap_after=1,
                     labels=None) -> Path:
    """One recording of data/sim's sessions of `parts`, one after another, GAP_S without samples after part
    `gap_after`: a session of several activities and a gap, as a board that was unplugged once records.
    labels: the label written for each part (default: its activity)."""
    labels = labels or parts
    rows, t0, seq0 = [], 0.0, 0
    for i, (activity, label) in enumerate(zip(parts, labels)):
        source = next(SIM.glob(f"{subject}_{activity}_*.csv"))
        with open(source, newline="") as f:
            table = list(csv.DictReader(f))
        for r in table:
            rows.append({**r, "t": f"{float(r['t']) + t0:.2f}", "seq": int(r["seq"]) + seq0, "label": label,
                         "t_us": int(r["t_us"]) + round(t0 * 1e6)})
        skip = len(table) + (round(GAP_S * RATE) if i == gap_after else 0)
        t0, seq0 = t0 + skip / RATE, seq0 + skip
    path = folder / f"{subject}_{'-'.join(labels)}.csv"
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    meta = json.loads(source.with_suffix(".json").read_text())
    meta.update(session=path.stem, label="", labels=sorted(set(labels)), samples=len(rows))
    meta.pop("raw_log", None)
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def cli(*args) -> int:
    return main([str(a) for a in args])


def pixels(png: Path) -> np.ndarray:
    """(h, w, 3) RGB in 0..255."""
    return np.round(imread(png)[:, :, :3] * 255).astype(int)


def count_colour(image: np.ndarray, rgb, tolerance=12) -> int:
    """Pixels within `tolerance` of the colour in every channel (antialiased edges are not counted)."""
    return int((np.abs(image - np.array(rgb)).max(axis=2) <= tolerance).sum())


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def blended(rgb, alpha) -> tuple[int, ...]:
    """A colour drawn at `alpha` over the white background."""
    return tuple(round(alpha * c + (1 - alpha) * 255) for c in rgb)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    return joined_recording(tmp_path_factory.mktemp("joined"))


def test_plot_draws_the_six_signals_the_label_bands_and_the_gap(session, tmp_path, capsys):
    from harduino.figures import BAND_ALPHA

    out = tmp_path / "session.png"
    assert cli("plot", session, "-o", out) == 0
    assert f"plot: {out}" in capsys.readouterr().out
    image = pixels(out)
    assert image.shape[:2] == (550, 1200)
    for colour in CURVE_COLOURS[:3]:  # x, y and z drawn in both panels (over white, or over a band)
        assert count_colour(image, hex_rgb(colour), tolerance=40) > 2000, colour
    for activity in ("still", "walking", "running"):  # each labelled stretch has its band
        assert count_colour(image, blended(ACTIVITY_COLOURS[activity], BAND_ALPHA), tolerance=4) > 20000, activity
    for absent in ("jumping", "waving"):
        assert count_colour(image, blended(ACTIVITY_COLOURS[absent], BAND_ALPHA), tolerance=4) < 200
    # The 1 s gap: a grey band across both panels, ~1/34 of the time axis wide.
    gap = count_colour(image, hex_rgb(GAP_COLOUR), tolerance=3)
    assert 2 * 180 * 20 < gap < 2 * 220 * 60, gap  # two panels ~200 px high, the band 20 to 60 px wide


def test_a_plot_of_a_recording_without_gaps_marks_none(tmp_path):
    out = tmp_path / "walking.png"
    assert cli("plot", next(SIM.glob("s2_walking_*.csv")), "-o", out) == 0
    image = pixels(out)
    assert count_colour(image, hex_rgb(GAP_COLOUR), tolerance=3) < 1000  # some grey edges of text, no band
    assert count_colour(image, hex_rgb(CURVE_COLOURS[2]), tolerance=40) > 2000


def test_plot_without_out_writes_beside_the_current_folder(session, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("plot", session.with_suffix(".json")) == 0  # the sidecar names its recording too
    assert (tmp_path / f"{session.stem}.png").is_file()


def test_predict_writes_a_row_per_window_and_draws_the_timeline(session, tmp_path, capsys):
    rows_csv, timeline = tmp_path / "rows.csv", tmp_path / "timeline.png"
    assert cli("predict", session, "--model", DEFAULT_MODEL, "-o", rows_csv, "--plot", timeline) == 0
    out = capsys.readouterr().out
    with open(rows_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    # Two stretches (the gap splits the session): still + walking, then running; a window every 16 samples.
    n_first, n_second = 550 * 2, 550
    assert len(rows) == (n_first - 32) // 16 + 1 + (n_second - 32) // 16 + 1
    with open(rows_csv) as f:
        header = f.readline().strip().split(",")
    assert header[:4] == ["recording", "t_end", "true", "predicted"]
    assert header[4:] == [f"p_{c}" for c in ("jumping", "running", "still", "walking", "waving")]
    t_end = np.array([float(r["t_end"]) for r in rows])
    assert not ((t_end > 22.0) & (t_end < 23.0 + 31 / RATE)).any()  # no window crosses the gap
    truth = [r["true"] for r in rows]
    assert set(truth) <= {"still", "walking", "running", ""} and truth.count("") <= 2  # the window over a change
    right = np.mean([r["true"] == r["predicted"] for r in rows if r["true"]])
    assert right > 0.8 and f"on the {sum(map(bool, truth))} labelled windows" in out
    proba = np.array([[float(r[h]) for h in header[4:]] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=2e-3)

    image = pixels(timeline)
    for activity in ("still", "walking", "running"):  # in the true and the predicted lane at full colour
        assert count_colour(image, ACTIVITY_COLOURS[activity], tolerance=4) > 3000, activity
    wrong = count_colour(image, hex_rgb(WRONG_COLOUR), tolerance=4)
    assert (wrong > 100) == (right < 1), wrong  # the "wrong" lane marks exactly the windows predicted wrong


def test_the_timeline_marks_the_windows_predicted_wrong(tmp_path, capsys):
    # Running labelled as walking: the model says running there, and the "wrong" lane says so.
    session = joined_recording(tmp_path, labels=("still", "walking", "walking"))
    timeline = tmp_path / "timeline.png"
    assert cli("predict", session, "--model", DEFAULT_MODEL, "-o", tmp_path / "rows.csv", "--plot", timeline) == 0
    with open(tmp_path / "rows.csv", newline="") as f:
        wrong = sum(r["true"] != r["predicted"] for r in csv.DictReader(f) if r["true"])
    assert wrong > 25  # most of the 33 running windows
    image = pixels(timeline)
    assert count_colour(image, hex_rgb(WRONG_COLOUR), tolerance=4) > 100 * wrong
    assert count_colour(image, ACTIVITY_COLOURS["running"], tolerance=4) > 3000  # predicted, never true


def test_labels_the_model_does_not_know_are_shown_but_not_scored(tmp_path, capsys):
    session = joined_recording(tmp_path, labels=("still", "walking", "hopping"))
    timeline = tmp_path / "timeline.png"
    assert cli("predict", session, "--model", DEFAULT_MODEL, "-o", tmp_path / "rows.csv", "--plot", timeline) == 0
    out = capsys.readouterr().out
    # 67 windows, less the 2 across the change
    assert "accuracy 1.000 on the 65 labelled windows of its classes (not: hopping)" in out, out
    assert count_colour(pixels(timeline), hex_rgb(WRONG_COLOUR), tolerance=4) < 100  # the legend has no entry


def test_predict_without_out_prints_the_rows_and_says_the_summary_on_stderr(tmp_path, capsys):
    recording = next(SIM.glob("s3_jumping_*.csv"))
    assert cli("predict", recording, "--model", DEFAULT_MODEL) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("recording,t_end,true,predicted,p_") and len(lines) == 1 + (550 - 32) // 16 + 1
    assert "predicted jumping" in err and "accuracy" in err


def run(*args):
    """(exit code, stderr) of the command, in this process."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli(*args)
    return code, err.getvalue()


@pytest.mark.parametrize("args, words", [
    (("plot", "no/such/recording.csv"), "no such recording"),
    (("plot", SIM), "is a folder"),
    (("plot", ROOT / "README.md"), "not a recording"),
    (("plot", next(SIM.glob("*.csv")), "-o", "picture.jpg"), "ending in .png"),
    (("predict", "no/such/recording.csv"), "no such recording"),
    (("predict", next(SIM.glob("*.csv")), "--model", "no/such/model"), "not a model bundle"),
    (("predict", next(SIM.glob("*.csv")), "--plot", "a-file/timeline.png"), "a-file is a file"),
])
def test_bad_paths_are_one_sentence(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    code, err = run(*args)
    assert code == 2 and err.startswith("harduino: error: ") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.png"))


def test_predict_refuses_a_recording_at_another_rate_than_the_model(tmp_path):
    source = next(SIM.glob("s1_still_*.csv"))
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))[::2]  # every other sample: 25 Hz
    with open(tmp_path / "still.csv", "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows({**r, "seq": i} for i, r in enumerate(rows))
    meta = json.loads(source.with_suffix(".json").read_text())
    (tmp_path / "still.json").write_text(json.dumps({**meta, "rate_hz": 25.0}))
    code, err = run("predict", tmp_path / "still.csv", "--model", DEFAULT_MODEL)
    assert code == 2 and "trained on data at 50 Hz but this data is 25 Hz" in err, err
