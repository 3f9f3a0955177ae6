"""Export: a model bundle trained on the `board` features becomes C tables the firmware predicts with.

`board_model(bundle)` folds the bundle's scaler and the count-to-SI scale into
integer tables (docs/board-model.md):

- a random forest: each inner node's threshold becomes an integer comparison on
  the integer feature (`int <= floor((mean + t * scale) / si_per_count)` is the
  float test), its children are inner nodes or (LEAF_BIT set) rows of u8 class
  probabilities (0..255), and the class is the argmax of their sums over the trees;
- logistic regression: the features are shifted into 16 bits, weights become
  int16 and intercepts int32 in units of 2^-Q log2-odds, accumulated in int32
  (Q is chosen so no sum can overflow); the scores are 255 * 2^-(best - own)
  with a linear step between powers of two;
- the small perceptron (`mlp-board`): int8 inputs and weights, int32 sums, ReLU,
  int8 output weights in 2^-Q log2-odds, scored as logistic regression
  (export_mlp.py).

`BoardModel.predict` evaluates those tables on `board_features_int` exactly as
firmware/harduino/predictor.cpp does, so the host can check the board window by
window; `header()` writes them as the C header `harduino export` and `make -C
firmware MODEL=...` build in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .boardfeatures import BOARD_FEATURE_NAMES, int_bounds, int_to_si
from .errors import UserError
from .export_mlp import mlp_logits, mlp_tables
from .models.shallow import as_stored

KINDS = {"rf": "forest", "logreg": "logreg", "mlp-board": "mlp"}
FEATURE_SET_IDS = {"board": 1}  # the model frame's feature-set id
MAX_CLASSES = 8
CLASS_NAME_CHARS = 10
MODEL_ID_CHARS = 12
MAX_CHUNKS = 4                  # window = k x step, k chunk accumulators on the board
MAX_WINDOW = 255
LEAF_BIT = 0x8000               # a child reference with this bit is a leaf's row of class scores
FLASH_BUDGET = {"Nano": 30_720, "Uno": 32_256}  # boards.txt: flash less the bootloader
RAM_BUDGET = 1_536              # static RAM, so the stack keeps 512 of the 2,048 bytes
# The firmware with the predictor built in but no tables, and what each chunk accumulator adds to RAM:
# `make -C firmware size` figures, rounded up; the build checks the real total (firmware/Makefile).
FIRMWARE_FLASH = 13_500
FIRMWARE_RAM = 920
CHUNK_RAM = 8 * 13


@dataclass
class BoardModel:
    """An exported model: what the model frame says about it, and its integer tables."""

    kind: str
    model_id: str
    classes: tuple[str, ...]
    window: int
    step: int
    rate_hz: int
    tables: dict[str, np.ndarray] = field(repr=False)
    score_bits: int = 0  # logreg, mlp: Q
    hidden_shift: int = 0  # mlp: the ReLU outputs' shift into int16

    @property
    def chunks(self) -> int:
        return self.window // self.step

    def table_bytes(self) -> int:
        names = len(self.classes) * (CLASS_NAME_CHARS + 1)
        return names + sum(int(a.nbytes) for a in self.tables.values())

    def flash_bytes(self) -> int:
        return FIRMWARE_FLASH + self.table_bytes()

    def ram_bytes(self) -> int:
        return FIRMWARE_RAM + CHUNK_RAM * self.chunks

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 32) integer features -> (class index (n,), scores (n, classes) 0..255), as the board computes."""
        features = np.asarray(features, dtype=np.int64)
        if self.kind == "forest":
            return _predict_forest(self, features)
        if self.kind == "mlp":
            logits = mlp_logits(self.tables, self.hidden_shift, features)
            return np.argmax(logits, axis=1), _log2_scores(logits, self.score_bits)
        return _predict_logreg(self, features)

    def header(self) -> str:
        return render_header(self)


def board_model(bundle) -> BoardModel:
    """The exported tables of a loaded bundle; UserError in one sentence when it cannot go on the board."""
    check_exportable(bundle)
    pipeline = as_stored(bundle.estimator)  # the scikit-learn model itself, not its compiled trees
    scaler, clf = pipeline.named_steps["scale"], pipeline.steps[-1][1]
    si = int_to_si(bundle.window)
    mean, scale = scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)
    common = dict(model_id=_model_id(bundle.path), classes=tuple(str(c) for c in bundle.classes_),
                  window=bundle.window, step=bundle.step, rate_hz=int(round(bundle.rate_hz)))
    if bundle.arch == "rf":
        return BoardModel("forest", tables=_forest_tables(clf, mean, scale, si), **common)
    if bundle.arch == "mlp-board":
        tables, hidden_shift, bits = mlp_tables(clf, mean, scale, si, bundle.path)
        return BoardModel("mlp", tables=tables, score_bits=bits, hidden_shift=hidden_shift, **common)
    tables, bits = _logreg_tables(clf, mean, scale, si, bundle.window, bundle.path)
    return BoardModel("logreg", tables=tables, score_bits=bits, **common)


def check_exportable(bundle) -> None:
    """UserError unless the bundle is a forest, a logistic regression or a small perceptron on the board features
    of the axes."""
    where = f"the model bundle {bundle.path}"
    features = bundle.meta.get("feature_set")
    if bundle.arch not in KINDS:
        raise UserError(f"{where} is a {bundle.arch}; the board runs {', '.join(KINDS)} models: train one of "
                        "those with --features board --channels axes.")
    if features != "board" or bundle.channel_set not in ("axes", "all"):
        raise UserError(f"{where} was trained on the {features!r} features of the {bundle.channel_set!r} channels; "
                        "the board computes only the board features of its axes: train with --features board "
                        "--channels axes.")
    if len(bundle.classes_) > MAX_CLASSES:
        raise UserError(f"{where} has {len(bundle.classes_)} classes; the board's prediction frame holds at most "
                        f"{MAX_CLASSES}.")
    if bundle.window % bundle.step or bundle.window // bundle.step > MAX_CHUNKS or bundle.window > MAX_WINDOW:
        raise UserError(f"{where} takes windows of {bundle.window} samples every {bundle.step}; the board needs a "
                        f"window of at most {MAX_WINDOW} samples that is 1 to {MAX_CHUNKS} steps long.")
    rate = bundle.rate_hz
    if not (1 <= rate <= 1000 and abs(rate - round(rate)) < 1e-6):
        raise UserError(f"{where} was trained at {rate:g} Hz; the board samples at a whole 1 to 1000 Hz.")


def check_budget(model: BoardModel, path) -> None:
    """UserError in one sentence when the firmware with this model would not fit a Nano's or an Uno's memory."""
    flash, ram = model.flash_bytes(), model.ram_bytes()
    if flash > min(FLASH_BUDGET.values()):
        raise UserError(f"the model bundle {path} needs about {flash:,} bytes of flash with the firmware (its "
                        f"tables {model.table_bytes():,}), over the budget of {FLASH_BUDGET['Nano']:,} on a Nano "
                        f"and {FLASH_BUDGET['Uno']:,} on an Uno; train a smaller one (fewer --trees, a lower "
                        "--max-depth).")
    if ram > RAM_BUDGET:
        raise UserError(f"the model bundle {path} needs about {ram:,} bytes of static RAM with the firmware, over "
                        f"the budget of {RAM_BUDGET:,}; use a window of fewer steps.")


def export_model(bundle_path: Path, out: Path | None = None) -> tuple[BoardModel, str]:
    """Load, check, convert, check the budget; write the header to `out` (only when it changed). (model, text)."""
    from .models import load_bundle

    bundle = load_bundle(bundle_path)
    model = board_model(bundle)
    check_budget(model, bundle.path)
    text = model.header()
    if out is not None:
        try:
            if not out.is_file() or out.read_text() != text:  # untouched: make rebuilds nothing
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
        except OSError as err:
            raise UserError(f"cannot write the header {out}: {err.strerror or err}.") from None
    return model, text


def _model_id(path: Path) -> str:
    name = Path(path).resolve().name
    return name.encode("ascii", "replace").decode("ascii")[:MODEL_ID_CHARS]


# ---------------------------------------------------------------- forest

def _forest_tables(forest, mean, scale, si) -> dict[str, np.ndarray]:
    feature, threshold, children, leaves, roots = [], [], [], [], []

    def ref(t, node) -> int:  # a child: an inner node's index, or LEAF_BIT + a leaf's row
        if t.children_left[node] == -1:
            p = t.value[node, 0] / max(t.value[node, 0].sum(), 1e-300)
            leaves.append(np.round(p * 255))
            return LEAF_BIT | (len(leaves) - 1)
        at = len(feature)
        j = int(t.feature[node])
        feature.append(j)
        threshold.append(min(max(math.floor((mean[j] + float(t.threshold[node]) * scale[j]) / si[j]), -2**31),
                             2**31 - 1))
        children.append([0, 0])
        children[at] = [ref(t, int(t.children_left[node])), ref(t, int(t.children_right[node]))]
        return at

    for est in forest.estimators_:
        roots.append(ref(est.tree_, 0))
    if len(feature) >= LEAF_BIT or len(leaves) >= LEAF_BIT:
        raise UserError(f"the forest has {len(leaves):,} leaves; the board addresses at most {LEAF_BIT - 1:,}.")
    return {"tree_root": np.array(roots, dtype="<u2"), "node_feature": np.array(feature, dtype="u1"),
            "node_threshold": np.array(threshold, dtype="<i4"),
            "node_child": np.array(children, dtype="<u2").reshape(-1, 2),
            "leaf_score": np.array(leaves, dtype="u1")}


def _predict_forest(model: BoardModel, x: np.ndarray):
    t = model.tables
    n, trees = len(x), len(t["tree_root"])
    ref = np.broadcast_to(t["tree_root"].astype(np.int64), (n, trees)).copy()
    rows = np.arange(n)[:, None]
    while True:
        inner = ref < LEAF_BIT
        if not inner.any():
            break
        node = np.where(inner, ref, 0)
        go_right = x[rows, t["node_feature"][node]] > t["node_threshold"][node]
        ref = np.where(inner, t["node_child"][node, go_right.astype(np.int64)], ref)
    votes = t["leaf_score"][ref - LEAF_BIT].astype(np.int64).sum(axis=1)  # u16 sums on the board
    return np.argmax(votes, axis=1), votes // trees


# ---------------------------------------------------------------- logistic regression

def _logreg_tables(clf, mean, scale, si, window, path):
    coef, intercept = np.asarray(clf.coef_, dtype=np.float64), np.asarray(clf.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # two classes: the softmax of (0, w.x + b)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    bounds = int_bounds(window)
    shift = np.array([_shift_into_16_bits(b) for b in bounds], dtype="u1")
    # logit_k = sum_j coef_kj (si_j * x_j - mean_j) / scale_j + b_k, in log2 units per shifted input.
    per_unit = coef * (si * 2.0 ** shift / scale)[None, :] * math.log2(math.e)
    bias = (intercept - coef @ (mean / scale)) * math.log2(math.e)
    inputs = (bounds >> shift) + 1
    bits = 16
    while bits >= 0 and (np.abs(per_unit).max() * 2**bits > 32767
                         or (np.abs(np.round(per_unit * 2**bits)) @ inputs + np.abs(bias) * 2**bits).max() > 2**31 - 1):
        bits -= 1
    if bits < 0:
        raise UserError(f"the model bundle {path} has weights too large for 16 bits; train it with a smaller C.")
    weight = np.round(per_unit * 2**bits).astype("<i2")
    return {"input_shift": shift, "weight": weight, "bias": np.round(bias * 2**bits).astype("<i4")}, bits


def _shift_into_16_bits(bound: int) -> int:
    r = 0
    while (int(bound) >> r) > 32767:
        r += 1
    return r


def _predict_logreg(model: BoardModel, x: np.ndarray):
    t, q = model.tables, model.score_bits
    shifted = x >> t["input_shift"].astype(np.int64)
    acc = shifted @ t["weight"].astype(np.int64).T + t["bias"].astype(np.int64)
    return np.argmax(acc, axis=1), _log2_scores(acc, q)


def _log2_scores(acc: np.ndarray, q: int) -> np.ndarray:
    """255 * 2^-(best - own) of (n, classes) logits in 2^-q log2 units, linear between powers of two."""
    behind = acc.max(axis=1, keepdims=True) - acc
    whole, part = behind >> q, behind & ((1 << q) - 1)
    scores = ((255 * ((2 << q) - part)) >> (q + 1)) >> np.minimum(whole, 8)
    return np.where(whole >= 8, 0, scores)


# ---------------------------------------------------------------- the C header

def _c_array(ctype: str, name: str, values: np.ndarray, dims: str = "[]") -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    rows = [", ".join(flat[i:i + 16]) for i in range(0, len(flat), 16)]
    body = ",\n  ".join(rows)
    return f"static const {ctype} {name}{dims} PROGMEM = {{\n  {body}\n}};\n"


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_header(model: BoardModel) -> str:
    names = [c.encode("ascii", "replace").decode("ascii")[:CLASS_NAME_CHARS] for c in model.classes]
    lines = [
        "// Generated by `harduino export`: the model built into the firmware (docs/board-model.md). Do not edit.",
        f"// {model.kind}, classes {', '.join(model.classes)}; {model.table_bytes():,} bytes of tables in flash.",
        "#ifndef HARDUINO_MODEL_TABLES_H",
        "#define HARDUINO_MODEL_TABLES_H",
        "#include <Arduino.h>",
        "",
        f"#define MODEL_ID {_c_string(model.model_id)}",
        f"#define MODEL_RATE_HZ {model.rate_hz}",
        f"#define MODEL_WINDOW {model.window}",
        f"#define MODEL_STEP {model.step}",
        f"#define MODEL_CLASSES {len(model.classes)}",
        f"#define MODEL_FEATURES {len(BOARD_FEATURE_NAMES)}",
        f"#define MODEL_FEATURE_SET {FEATURE_SET_IDS['board']}",
        f"#define MODEL_{model.kind.upper()} 1",
        "",
        f"static const char MODEL_CLASS_NAME[MODEL_CLASSES][{CLASS_NAME_CHARS + 1}] PROGMEM = {{"
        + ", ".join(_c_string(n) for n in names) + "};",
    ]
    t = model.tables
    if model.kind == "forest":
        lines += [f"#define MODEL_TREES {len(t['tree_root'])}", f"#define MODEL_LEAF_BIT 0x{LEAF_BIT:04X}", "",
                  _c_array("uint16_t", "MODEL_TREE_ROOT", t["tree_root"]),
                  _c_array("uint8_t", "MODEL_NODE_FEATURE", t["node_feature"]),
                  _c_array("int32_t", "MODEL_NODE_THRESHOLD", t["node_threshold"]),
                  _c_array("uint16_t", "MODEL_NODE_CHILD", t["node_child"], "[][2]"),
                  _c_array("uint8_t", "MODEL_LEAF_SCORE", t["leaf_score"], "[][MODEL_CLASSES]")]
    elif model.kind == "mlp":
        lines += [f"#define MODEL_SCORE_BITS {model.score_bits}", f"#define MODEL_HIDDEN {len(t['hidden_bias'])}",
                  f"#define MODEL_HIDDEN_SHIFT {model.hidden_shift}", "",
                  _c_array("int32_t", "MODEL_INPUT_OFFSET", t["input_offset"]),
                  _c_array("uint8_t", "MODEL_INPUT_SHIFT", t["input_shift"]),
                  _c_array("int8_t", "MODEL_HIDDEN_WEIGHT", t["hidden_weight"], "[MODEL_HIDDEN][MODEL_FEATURES]"),
                  _c_array("int32_t", "MODEL_HIDDEN_BIAS", t["hidden_bias"]),
                  _c_array("int8_t", "MODEL_OUTPUT_WEIGHT", t["output_weight"], "[MODEL_CLASSES][MODEL_HIDDEN]"),
                  _c_array("int32_t", "MODEL_OUTPUT_BIAS", t["output_bias"])]
    else:
        lines += [f"#define MODEL_SCORE_BITS {model.score_bits}", "",
                  _c_array("uint8_t", "MODEL_INPUT_SHIFT", t["input_shift"]),
                  _c_array("int16_t", "MODEL_WEIGHT", t["weight"], "[MODEL_CLASSES][MODEL_FEATURES]"),
                  _c_array("int32_t", "MODEL_BIAS", t["bias"])]
    lines += ["#endif", ""]
    return "\n".join(lines)
