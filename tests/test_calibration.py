"""How the board sits on the wearer: calibration, gravity-aligned channels, and models that survive a turned board."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from harduino import calibration, dataset, motion, protocol
from harduino.errors import UserError
from harduino.models import ARCHITECTURES, DEEP, fit_estimator, make_estimator
from harduino.recording import Recording, RecordingNote, load_recording, write_recording

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
SCALE = protocol.BoardInfo().si_scale


def sim_session(script: list[tuple[str, float]], subject: int, rate: float = 50.0) -> Recording:
    """One recording of a simulated subject doing the activities of `script` ((name, seconds), ...) in turn."""
    parts, labels, t0 = [], [], 0.0
    for activity, seconds in script:
        n = int(seconds * rate)
        parts.append(motion.synth_activity(activity, n, rate, subject=subject, t0=t0) * SCALE)
        labels += [activity] * n
        t0 += n / rate
    si = np.vstack(parts)
    return Recording(path=Path(f"s{subject}_{script[0][0]}.csv"), subject=f"s{subject}",
                     session=f"s{subject}-{'-'.join(a for a, _ in script)}", rate_hz=rate,
                     t=np.arange(len(si)) / rate, si=si, labels=np.array(labels))


def test_the_calibration_is_where_gravity_points_and_the_gyros_bias_while_standing_still():
    rec = sim_session([("walking", 2), ("still", 5), ("running", 3)], subject=3)
    found = calibration.estimate(rec.t, rec.si, rec.rate_hz)
    profile = motion.subject_profile(3)
    upright = profile.orientation @ [0.0, 0.0, protocol.GRAVITY] + profile.accel_bias
    assert np.degrees(np.arccos(np.dot(found.gravity, upright / np.linalg.norm(upright)))) < 1.0
    assert np.allclose(found.gyro_bias, profile.gyro_bias, atol=np.radians(0.4))  # the still drift is 0.3 °/s
    assert found.source.startswith("own still stretch at 2.0 s")
    moving = sim_session([("walking", 6), ("running", 6)], subject=3)
    assert calibration.estimate(moving.t, moving.si, moving.rate_hz) is None


def test_a_calibration_round_trips_through_the_sidecar_and_equals_the_one_estimated_on_loading(tmp_path):
    rec = sim_session([("still", 4), ("walking", 4)], subject=2)
    estimated = calibration.estimate(rec.t, rec.si, rec.rate_hz)
    stored = tmp_path / "stored"
    write_recording(stored, "s2_a", rec.t, rec.si, rec.labels,
                    {"subject": "s2", "rate_hz": 50.0, "calibration": estimated.to_dict()})
    again = load_recording(stored / "s2_a.csv").calibration
    assert np.allclose(again.gravity, estimated.gravity, atol=1e-6)
    assert np.allclose(again.gyro_bias, estimated.gyro_bias, atol=1e-6)
    bare = tmp_path / "bare"
    write_recording(bare, "s2_a", rec.t, rec.si, rec.labels, {"subject": "s2", "rate_hz": 50.0})
    assert load_recording(bare / "s2_a.csv").calibration is None
    loaded = dataset.load_recordings(bare)[0].calibration  # calibrated from its own data when loaded
    assert np.allclose(loaded.gravity, estimated.gravity, atol=1e-4)
    assert np.allclose(loaded.gyro_bias, estimated.gyro_bias, atol=1e-4)


def test_a_sidecar_calibration_that_does_not_hold_together_is_one_sentence(tmp_path):
    rec = sim_session([("still", 4)], subject=1)
    for bad in ({"gravity": [0, 0, 5], "gyro_bias": [0, 0, 0]}, {"gravity": [0, 0], "gyro_bias": [0, 0, 0]},
                {"gravity": "up"}, {"gravity": [0, 0, 1], "gyro_bias": [0, "nan", 0]}):
        write_recording(tmp_path, "s1_a", rec.t, rec.si, rec.labels,
                        {"subject": "s1", "rate_hz": 50.0, "calibration": bad})
        with pytest.raises(UserError, match="s1_a.json has a calibration"):
            load_recording(tmp_path / "s1_a.csv")


def test_fallbacks_the_subjects_still_recording_then_none_with_a_note_and_none_without_gravity():
    still, walking = sim_session([("still", 5)], subject=4), sim_session([("walking", 6)], subject=4)
    alone = sim_session([("running", 6)], subject=5)
    assert calibration.calibrate([still, walking, alone]) and alone.calibration is None
    assert walking.calibration.gravity == still.calibration.gravity
    assert walking.calibration.source == f"subject s4's {still.session}"
    notes = calibration.calibrate([alone])
    assert len(notes) == 1 and alone.path.name in notes[0] and "leave them out" in notes[0]
    no_gravity = dataset.load_recordings(ROOT / "data" / "basicmotions" / "test")  # gravity removed
    assert all(rec.calibration is None for rec in no_gravity)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecordingNote)  # ... and no note about it
        dataset.load_recordings(ROOT / "data" / "basicmotions" / "test")


def test_gravity_aligned_channels_are_the_same_however_the_board_is_turned():
    rec = sim_session([("still", 4), ("walking", 4), ("jumping", 4)], subject=1)
    calibration.calibrate([rec])
    turned = calibration.rotated_copies([rec], seed=3)[0]
    assert not np.allclose(turned.si, rec.si, atol=0.5)
    for channel_set in ("aligned", "body", "magnitudes"):
        plain = dataset.select_channels(rec.si, channel_set, 50, rec.calibration)
        again = dataset.select_channels(turned.si, channel_set, 50, turned.calibration)
        assert np.allclose(plain, again, atol=2e-3), channel_set
    axes = dataset.select_channels(rec.si, "axes", 50)
    assert not np.allclose(axes, dataset.select_channels(turned.si, "axes", 50), atol=0.5)


@pytest.fixture(scope="module")
def sim_plain_and_turned():
    recordings = dataset.load_recordings(SIM)
    return recordings, calibration.rotated_copies(recordings, seed=1)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_default_inputs_lose_almost_nothing_on_a_turned_board(arch, sim_plain_and_turned):
    """A held-out subject, each recording of theirs turned at random: within 0.03 macro F1 of plain.

    s3 is held out: on these inputs s1 is the subject hgb finds hardest (0.77 plain and turned alike),
    and what this test is about is the loss from turning the board.
    """
    recordings, turned = sim_plain_and_turned
    channels = dataset.default_channel_set(recordings)
    assert channels == "aligned"  # sim's walking sessions borrow a calibration: tilt is left out
    plain, rotated = dataset.window_dataset(recordings, channels), dataset.window_dataset(turned, channels)
    train = plain.subjects != "s3"
    params = {"epochs": 30, "verbose": False} if arch in DEEP else {}
    est = fit_estimator(make_estimator(arch, channels, rate_hz=plain.rate_hz, **params),
                        plain.X[train], plain.y[train], plain.sessions[train])
    f1_plain = f1_score(plain.y[~train], est.predict(plain.X[~train]), average="macro")
    test = rotated.subjects == "s3"
    f1_turned = f1_score(rotated.y[test], est.predict(rotated.X[test]), average="macro")
    assert f1_plain >= 0.9 and f1_turned >= f1_plain - 0.03, (f1_plain, f1_turned)


def test_the_inputs_train_uses_unless_told_follow_the_data():
    own = [sim_session([("still", 4), (activity, 4)], subject=s) for s in (1, 2) for activity in ("walking", "waving")]
    calibration.calibrate(own)
    assert dataset.default_channel_set(own) == "body"  # every session opens standing still
    borrowed = own + [sim_session([("running", 6)], subject=1)]
    calibration.calibrate(borrowed)
    assert dataset.default_channel_set(borrowed) == "aligned"  # one borrows its subject's calibration
    assert dataset.default_channel_set(dataset.load_recordings(ROOT / "data" / "basicmotions" / "train")) == "magnitudes"


def test_the_rotation_check_is_printed_beside_the_plain_score_and_catches_inputs_that_depend_on_it(capsys):
    from harduino.cli import main

    def turned_f1(*extra):
        assert main(["evaluate", str(SIM), "--arch", "logreg", "--rotate", "5", "--quiet", "--jobs", "1", *extra]) == 0
        out = capsys.readouterr().out
        line = next(ln for ln in out.splitlines() if ln.startswith("turned at random (--rotate 5)"))
        turned, plain = line.split("macro F1 ")[1].split(" (plain ")
        return float(turned), float(plain.split(", ")[1].rstrip(")"))

    turned, plain = turned_f1()  # the default inputs: gravity-aligned
    assert turned >= plain - 0.03 and plain >= 0.9
    turned, plain = turned_f1("--channels", "all")  # raw axes: a turned board fools the model
    assert turned < plain - 0.1


def test_live_with_a_body_model_asks_the_wearer_to_stand_still_then_predicts(tmp_path, monkeypatch, capsys):
    from harduino.cli import main
    from harduino.models import save_bundle

    recordings = dataset.load_recordings(SIM)
    ws = dataset.window_dataset(recordings, "body")
    est = fit_estimator(make_estimator("logreg", "body", rate_hz=ws.rate_hz), ws.X, ws.y)
    bundle = save_bundle(est, tmp_path / "body", dict(architecture="logreg", channel_set="body", window=32,
                                                       step=16, rate_hz=ws.rate_hz))
    raw, _ = motion.synth_script([("walking", 3.0), ("still", 5.0), ("walking", 4.0)], 50, subject=6, seed=7)
    info = protocol.BoardInfo(rate_hz=50)
    t_us = 1_000_000 + np.arange(len(raw)) * 20_000
    log = tmp_path / "walk-stand-walk.bin"
    log.write_bytes(protocol.encode_info(info) + protocol.encode_samples(np.arange(len(raw)), t_us, raw))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["live", f"replay://{log}?speed=4", "--model", str(bundle)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "harduino live: waiting for the wearer to stand still for a few seconds (calibration)"
    times = [float(line.split()[0]) for line in lines[2:-1]]
    labels = [line.split()[2] for line in lines[2:-1]]
    assert times and labels[-1] == "walking"  # calibrated on the still stretch, then predicting
