"""Recordings: the format (CSV + JSON sidecar, read and written) and the session that records a board.

    files       Recording, load_recording, names: what a recording is, read back
    writer      RecordingWriter, write_recording, claim_stem: writing one, crash-safe, names taken exclusively
    session     RecordingSession: one recording session of a running Reader (start / poll / finish), for the
                CLI and the dashboard alike; SessionRecorder: what it receives, one recording per board
    predictions PredictionWriter: the board's own predictions beside a recording (NAME.pred.csv)
    rawlog      split_raw_log: a session's raw log cut to match its recordings
    stillwatch  StillWatch: the calibration of a recording, taken while it is recorded
"""

from .files import (COLUMNS, FORMAT_VERSION, REQUIRED, SI_COLUMNS, Recording, RecordingNote, load_recording,
                    raw_log_path, recording_stem, safe_name, sidecar_path)
from .rawlog import split_raw_log
from .session import RecordingSession, SessionRecorder
from .stillwatch import StillWatch
from .writer import (RECORDING_SUFFIXES, RecordingWriter, check_label, check_subject, claim_stem, fixed,
                     format_rows, prepare_folder, release, write_recording)

__all__ = ["COLUMNS", "FORMAT_VERSION", "RECORDING_SUFFIXES", "REQUIRED", "SI_COLUMNS", "Recording",
           "RecordingNote", "RecordingSession", "RecordingWriter", "SessionRecorder", "StillWatch", "check_label",
           "check_subject", "claim_stem", "fixed", "format_rows", "load_recording", "prepare_folder", "raw_log_path",
           "recording_stem", "release", "safe_name", "sidecar_path", "split_raw_log", "write_recording"]
