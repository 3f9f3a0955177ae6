"""Every command, given input a user could get wrong, answers with one clear sentence and a non-zero exit."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

from harduino.cli import main

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim"
DEFAULT_MODEL = ROOT / "models" / "default"


def harduino(*args) -> subprocess.CompletedProcess:
    """Run a command in this process, as the console script runs it: exit code, stdout and stderr.

    In-process, so the suite does not pay an interpreter start per case; an exception
    escaping `main` is what a user would see as a traceback, so it is kept as one. A test
    that needs another working folder moves there with monkeypatch.chdir.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        except BaseException:  # noqa: BLE001 - a traceback is exactly what the tests look for
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_one_sentence(result, *words):
    """Exit non-zero, no traceback, one error line naming the thing."""
    assert result.returncode != 0, result.stdout
    err = result.stderr
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("harduino: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def sim_copy(tmp_path: Path, n: int = 4) -> Path:
    """A few real recordings from data/sim, to damage one of them."""
    out = tmp_path / "data"
    out.mkdir()
    for csv in sorted(SIM.glob("*.csv"))[:n]:
        shutil.copy(csv, out)
        shutil.copy(csv.with_suffix(".json"), out)
    return out


def bundle_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(DEFAULT_MODEL, dst)
    return dst


# ---------------------------------------------------------------- ports and logs

@pytest.mark.parametrize("args, words", [
    (("stream", "/dev/ttyNOPE", "--duration", "1"), ["/dev/ttyNOPE"]),
    (("stream", "nope://board", "--duration", "1"), ["nope"]),
    (("stream", "sim://?activity=walking&bogus=1", "--duration", "1"), ["bogus"]),
    (("stream", "sim://?activity=flying", "--duration", "1"), ["flying"]),
    (("replay", "missing.bin"), ["missing.bin"]),
    (("stream", "/tmp", "--duration", "1"), ["/tmp is a folder"]),
    (("stream", "/dev/null", "--duration", "1"), ["/dev/null is not a serial port"]),
    (("live", "/dev/ttyNOPE", "--model", DEFAULT_MODEL, "--no-gui", "--duration", "2"), ["/dev/ttyNOPE"]),
    (("record", "/dev/ttyNOPE", "--subject", "a", "--label", "walking", "--duration", "1"), ["/dev/ttyNOPE"]),
])
def test_bad_ports(args, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_sentence(harduino(*args), *words)


def test_a_bad_port_through_the_installed_command(tmp_path):
    """The one case run as its own process: the sentence comes through the real entry point."""
    script = Path(sys.executable).with_name("harduino")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "harduino.cli"]
    result = subprocess.run(cmd + ["stream", "/dev/ttyNOPE", "--duration", "1"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert_one_sentence(result, "/dev/ttyNOPE")


def test_replay_of_a_file_that_is_not_a_serial_log(tmp_path):
    fake = tmp_path / "notes.bin"
    fake.write_text("these are my notes, not a serial log\n" * 20)
    assert_one_sentence(harduino("replay", fake), "notes.bin")


def test_record_into_a_folder_that_cannot_exist(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = harduino("record", "sim://?activity=walking&speed=max", "--subject", "a", "--label", "walking",
                      "--out", tmp_path / "afile" / "sub", "--duration", "2")
    assert_one_sentence(result, "afile")


def test_record_with_a_label_outside_its_label_set(tmp_path):
    result = harduino("record", "sim://?activity=walking&speed=max", "--subject", "a", "--labels", "walk,run",
                      "--label", "swim", "--out", tmp_path, "--duration", "1")
    assert_one_sentence(result, "swim")


# ---------------------------------------------------------------- data folders

def test_train_on_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_sentence(harduino("train", tmp_path / "empty", "--arch", "rf", "-o", tmp_path / "m"), "empty")


def test_train_on_a_missing_folder(tmp_path):
    assert_one_sentence(harduino("train", tmp_path / "nowhere", "--arch", "rf", "-o", tmp_path / "m"), "nowhere")


def test_train_on_a_csv_that_is_not_a_recording(tmp_path):
    data = sim_copy(tmp_path)
    (data / "shopping.csv").write_text("item,price\nmilk,1.20\nbread,2.10\n")
    (data / "shopping.json").write_text(json.dumps({"subject": "x", "rate_hz": 50}))
    assert_one_sentence(harduino("train", data, "--arch", "rf", "-o", tmp_path / "m"), "shopping.csv")


def test_train_on_a_recording_with_missing_columns(tmp_path):
    data = sim_copy(tmp_path)
    victim = sorted(data.glob("*.csv"))[0]
    lines = victim.read_text().splitlines()
    victim.write_text("\n".join(",".join(ln.split(",")[:5]) for ln in lines) + "\n")  # no gyro, no label
    assert_one_sentence(harduino("train", data, "--arch", "rf", "-o", tmp_path / "m"), victim.name)


def test_train_on_a_recording_with_nans(tmp_path):
    data = sim_copy(tmp_path)
    victim = sorted(data.glob("*.csv"))[1]
    lines = victim.read_text().splitlines()
    cells = lines[10].split(",")
    cells[2] = "nan"
    lines[10] = ",".join(cells)
    victim.write_text("\n".join(lines) + "\n")
    assert_one_sentence(harduino("train", data, "--arch", "rf", "-o", tmp_path / "m"), victim.name)


def test_train_on_a_recording_without_its_sidecar(tmp_path):
    data = sim_copy(tmp_path)
    victim = sorted(data.glob("*.json"))[0]
    victim.unlink()
    assert_one_sentence(harduino("train", data, "--arch", "rf", "-o", tmp_path / "m"), victim.stem)


def test_train_with_one_class_only(tmp_path):
    out = tmp_path / "walking"
    out.mkdir()
    for csv in SIM.glob("*_walking_*.csv"):
        shutil.copy(csv, out)
        shutil.copy(csv.with_suffix(".json"), out)
    assert_one_sentence(harduino("train", out, "--arch", "rf", "-o", tmp_path / "m"), "class")


def test_train_an_unknown_architecture(tmp_path):
    assert_one_sentence(harduino("train", SIM, "--arch", "transformer", "-o", tmp_path / "m"), "transformer")


# ---------------------------------------------------------------- model bundles

def test_evaluate_with_a_folder_that_is_not_a_bundle(tmp_path):
    assert_one_sentence(harduino("evaluate", "--model", tmp_path, SIM), str(tmp_path.name))


def test_evaluate_with_a_bundle_whose_json_was_tampered(tmp_path):
    bundle = bundle_copy(tmp_path)
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["classes"] = list(reversed(meta["classes"]))
    (bundle / "bundle.json").write_text(json.dumps(meta))
    (bundle / "bundle.json").write_text((bundle / "bundle.json").read_text()[:-20])  # and cut short
    assert_one_sentence(harduino("evaluate", "--model", bundle, SIM), "bundle")


def test_evaluate_with_weights_that_were_tampered(tmp_path):
    bundle = bundle_copy(tmp_path)
    weights = next(p for p in bundle.iterdir() if p.name != "bundle.json")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert_one_sentence(harduino("evaluate", "--model", bundle, SIM), "bundle")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_model_on_a_recording_that_holds_only_its_header(tmp_path, command):
    data = sim_copy(tmp_path, 1)
    csv = next(data.glob("*.csv"))
    csv.write_text(csv.read_text().splitlines()[0] + "\n")  # recording stopped before the first sample
    result = harduino(command, data if command == "evaluate" else csv, "--model", DEFAULT_MODEL)
    assert_one_sentence(result, "32")


def test_evaluate_on_one_class_prints_its_one_by_one_matrix_without_a_library_warning(tmp_path, recwarn):
    from matplotlib.image import imread

    png = tmp_path / "confusion.png"
    result = harduino("evaluate", sim_copy(tmp_path, 1), "--model", DEFAULT_MODEL, "--png", png)
    assert result.returncode == 0, result.stderr
    assert "confusion matrix" in result.stdout
    assert not [str(w.message) for w in recwarn if "sklearn" in w.filename]  # a user would see its source line
    pixels = imread(png)
    h, w = pixels.shape[:2]
    assert pixels[h // 2 - 20, w // 2, :3].mean() < 0.5  # the one cell is coloured as a count, not as nothing


def test_a_model_on_data_at_another_rate(tmp_path):
    result = harduino("evaluate", "--model", DEFAULT_MODEL, ROOT / "data" / "basicmotions" / "test")
    assert_one_sentence(result, "Hz")


def test_live_with_a_folder_that_is_not_a_bundle(tmp_path):
    result = harduino("live", "sim://?activity=walking", "--model", tmp_path, "--no-gui", "--duration", "2")
    assert_one_sentence(result, str(tmp_path.name))


def test_import_from_somewhere_that_has_no_data(tmp_path):
    result = harduino("import", "basicmotions", tmp_path / "nothing-here", tmp_path / "out")
    assert_one_sentence(result, "nothing-here")


# ---------------------------------------------------------------- options and output paths

def in_process(*args) -> tuple[int, str]:
    """Run the CLI here (the checks come before any port or training): exit code and stderr."""
    result = harduino(*args)
    return result.returncode, result.stderr


@pytest.mark.parametrize("args, option", [
    (("train", SIM, "--arch", "rf", "--step", "0"), "--step"),
    (("train", SIM, "--arch", "mlp", "--epochs", "0"), "--epochs"),
    (("train", SIM, "--arch", "mlp", "--batch-size", "0"), "--batch-size"),
    (("train", SIM, "--arch", "cnn", "--lr", "-0.1"), "--lr"),
    (("evaluate", SIM, "--arch", "lstm", "--hidden", "0"), "--hidden"),
    (("compare", SIM, "--archs", "cnn", "--filters", "-4"), "--filters"),
    (("stream", "sim://?activity=walking", "--duration", "-2"), "--duration"),
    (("simulate", "--duration", "0"), "--duration"),
    (("record", "sim://?activity=walking", "--subject", "a", "--duration", "0"), "--duration"),
    (("live", "sim://?activity=walking", "--no-gui", "--seconds", "0"), "--seconds"),
])
def test_a_number_that_must_be_positive(args, option):
    code, err = in_process(*args)
    assert code == 2 and err.startswith(f"harduino: error: {option} must be a positive number"), err


@pytest.mark.parametrize("args, refusal", [
    (("record", "sim://?activity=walking", "--subject", "a", "--duration", "inf"), "--duration must be a finite"),
    (("stream", "sim://?activity=walking", "--duration", "nan"), "--duration must be a number, not nan"),
    (("simulate", "--duration", "1e400"), "--duration must be a finite number, not 1e400"),
    (("train", SIM, "--arch", "mlp", "--lr", "inf"), "--lr must be a finite number, not inf"),
    (("train", SIM, "--arch", "cnn", "--lr", "NaN"), "--lr must be a number, not NaN"),
    (("evaluate", SIM, "--arch", "rf", "--cv", "inf"), "--cv must be a whole number, not inf"),
    (("train", SIM, "--arch", "rf", "--seed", "-1"), "--seed must be a whole number from 0"),
    (("live", "sim://?activity=walking", "--no-gui", "--seconds=-inf"), "--seconds must be a finite number"),
    (("live", "sim://?activity=walking", "--no-gui", "--threshold", "nan"), "--threshold must be a number"),
    (("live", "sim://?activity=walking", "--no-gui", "--seconds", "1e9"), "--seconds must be a positive number of "
                                                                          "seconds up to 3600, not 1e9"),
])
def test_inf_and_nan_are_refused_while_the_options_are_read(args, refusal, tmp_path):
    # Before: `record --duration inf` ended in an OverflowError, `train --lr inf` saved a model of NaN weights.
    out = tmp_path / "out"
    args = args + (("--out", out) if args[0] == "record" else ("-o", out) if args[0] == "train" else ())
    result = harduino(*args)
    assert_one_sentence(result, refusal)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize("command", ["record", "live"])
def test_a_blank_subject(tmp_path, command):
    code, err = in_process(command, "sim://?activity=walking", "--subject", "  ", "--duration", "1",
                           "--out", tmp_path, *(["--no-gui"] if command == "live" else []))
    assert code == 2 and "needs a subject" in err, err
    assert not list(tmp_path.iterdir())  # nothing recorded under a blank name


def test_train_into_a_path_through_a_file_fails_before_training(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, err = in_process("train", SIM, "--arch", "rf", "-o", tmp_path / "afile" / "bundle")
    assert code == 2 and "afile is a file" in err and "Traceback" not in err, err


def test_evaluate_with_a_confusion_image_through_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, err = in_process("evaluate", SIM, "--arch", "rf", "--png", tmp_path / "afile" / "cm.png")
    assert code == 2 and "confusion matrix" in err and "afile is a file" in err, err


def test_import_of_a_file_that_is_not_text(tmp_path):
    (tmp_path / "BasicMotions_TRAIN.ts").write_bytes(b"\xff\xfe\x00\x01" * 50)
    (tmp_path / "BasicMotions_TEST.ts").write_bytes(b"\xff\xfe\x00\x01" * 50)
    code, err = in_process("import", "basicmotions", tmp_path, tmp_path / "out")
    assert code == 2 and "BasicMotions_TRAIN.ts is not a text file" in err, err


# ---------------------------------------------------------------- recordings that are not what they say

def _sidecar(rate_text: str):
    def damage(csv: Path) -> None:
        side = csv.with_suffix(".json")
        meta = json.loads(side.read_text())
        text = json.dumps(meta)
        side.write_text(text.replace(f'"rate_hz": {json.dumps(meta["rate_hz"])}', f'"rate_hz": {rate_text}'))
    return damage


def _rows(edit):
    def damage(csv: Path) -> None:
        header, *rows = csv.read_text().splitlines()
        csv.write_text("\n".join([header] + edit(rows)) + "\n")
    return damage


def _huge(rows):
    cells = rows[7].split(",")
    cells[3] = "1e308"
    return rows[:7] + [",".join(cells)] + rows[8:]


@pytest.mark.parametrize("damage, words", [
    (_sidecar("true"), ["rate_hz true"]),
    (_sidecar("Infinity"), ["rate_hz Infinity"]),
    (_sidecar("100"), ["rate_hz 100", "50 Hz"]),          # the samples are 0.02 s apart
    (_rows(_huge), ["line 9", "beyond"]),
    (_rows(lambda rows: rows[::-1]), ["back in time"]),
], ids=["rate-true", "rate-infinity", "rate-against-t", "1e308", "reverse-time"])
def test_a_recording_that_is_not_what_it_says(tmp_path, damage, words):
    data = sim_copy(tmp_path)
    victim = sorted(data.glob("*.csv"))[2]
    damage(victim)
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    result = harduino("train", data, "--arch", "rf", "-o", tmp_path / "m")
    assert_one_sentence(result, victim.stem, *words)
    assert "RuntimeWarning" not in result.stderr
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before  # nothing recorded is touched


def test_a_csv_that_starts_with_a_byte_order_mark_loads_like_the_same_csv_without(tmp_path):
    from harduino.recording import load_recording

    data = sim_copy(tmp_path, 1)
    plain = next(data.glob("*.csv"))
    marked = data / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())  # as a spreadsheet saves "CSV UTF-8"
    shutil.copy(plain.with_suffix(".json"), marked.with_suffix(".json"))
    a, b = load_recording(plain), load_recording(marked)
    assert np.array_equal(a.si, b.si) and np.array_equal(a.t, b.t) and list(a.labels) == list(b.labels)


# ---------------------------------------------------------------- recording, replaying, streaming

def test_a_subject_that_would_name_hidden_files(tmp_path):
    result = harduino("record", "sim://?activity=walking&speed=max", "--subject", "..", "--label", "walking",
                      "--out", tmp_path, "--duration", "1")
    assert_one_sentence(result, "'..'", "letter or digit")
    assert not list(tmp_path.iterdir())


def test_label_keys_without_a_terminal(tmp_path):
    assert not sys.stdin.isatty()  # as under pytest, cron or a pipe
    result = harduino("record", "sim://?activity=walking&speed=max", "--subject", "a", "--labels", "walk,run",
                      "--out", tmp_path, "--duration", "1")
    assert_one_sentence(result, "--labels", "not a terminal", "--label")
    assert not list(tmp_path.iterdir())


def test_replay_of_a_folder(tmp_path):
    assert_one_sentence(harduino("replay", SIM), "is a folder", ".bin")


def test_stream_from_a_port_where_nothing_is_attached_says_what_to_check():
    import pty

    master, slave = pty.openpty()  # a serial port with nothing on the other end: silent
    try:
        result = harduino("stream", os.ttyname(slave), "--duration", "4")
    finally:
        os.close(master)
        os.close(slave)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    [note] = [line for line in result.stderr.splitlines() if line.startswith("harduino: no frame")]
    assert "board" in note and "firmware" in note and "115200 baud" in note


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already had its line
    try:
        proc = subprocess.run([sys.executable, "-m", "harduino.cli", "evaluate", "--model", DEFAULT_MODEL, SIM],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr


def test_train_over_an_existing_bundle_needs_force(tmp_path):
    bundle = bundle_copy(tmp_path)  # the shipped deep model
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    data = sim_copy(tmp_path)
    assert_one_sentence(harduino("train", data, "--arch", "rf", "-o", bundle), "already holds", "--force")
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    result = harduino("train", data, "--arch", "rf", "-o", bundle, "--force")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "pipeline.skops"]  # no stale weights
    assert json.loads((bundle / "bundle.json").read_text())["architecture"] == "rf"
