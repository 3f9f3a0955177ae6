"""The int8 perceptron the board runs: a bundle's `mlp-board` network quantised into integer tables.

Fold and quantise (docs/board-model.md):

- each integer feature becomes an int16 input `q = clip((x - offset) >> shift)`: the offset is the
  scaler's mean in feature units, the shift the least that keeps INPUT_SIGMAS of its spread in 32767;
- the hidden layer's weights, the scaler folded in, are int8 with one scale per hidden unit (folded
  into the output weights), its biases int32 in the same units, summed in int32; ReLU, then a right
  shift by the least that keeps every possible sum in int16;
- the output layer's weights are int8 in units of 2^-Q log2-odds (Q the largest that keeps them in 127),
  its biases int32, summed in int32: the logits the scores come from as logistic regression's do.

`mlp_logits` is the board's arithmetic on the host (firmware/harduino/predictor.cpp does the same).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UserError

INPUT_SIGMAS = 8      # standard deviations of a feature that its int16 input spans each side of the mean
INPUT_MAX = 32767     # int16 inputs: int8 ones (20 steps a standard deviation) cost 4 points of agreement on HAPT
MAX_SCORE_BITS = 16   # the scores' fixed point (export.py's 255 * 2^-behind) stays within 32 bits
INT32_MAX = 2**31 - 1


def mlp_tables(clf, mean, scale, si, path) -> tuple[dict[str, np.ndarray], int, int]:
    """(tables, hidden shift, Q) of a fitted one-hidden-layer ReLU MLPClassifier behind a StandardScaler."""
    w1, w2 = (np.asarray(w, dtype=np.float64) for w in clf.coefs_)
    b1, b2 = (np.asarray(b, dtype=np.float64) for b in clf.intercepts_)
    if w2.shape[1] == 1:  # two classes: the logistic output is the softmax of (0, logit)
        w2, b2 = np.hstack([np.zeros_like(w2), w2]), np.concatenate([[0.0], b2])
    spread = scale / si  # a feature's standard deviation in its integer units
    offset = np.clip(np.round(mean / si), -INT32_MAX, INT32_MAX)
    shift = np.zeros(len(si), dtype=np.int64)
    while np.any(INPUT_SIGMAS * spread > INPUT_MAX * 2.0 ** shift):
        shift += INPUT_SIGMAS * spread > INPUT_MAX * 2.0 ** shift
    # z = (si * x - mean) / scale with x at the middle of the input's floor bin: per_q * q + at_zero.
    per_q = 2.0 ** shift * si / scale
    at_zero = (si * (offset + (2.0 ** shift - 1) / 2) - mean) / scale
    hidden = w1.T * per_q[None, :]                     # (hidden, features) per input step
    # One scale per hidden unit (its largest weight is +-127): the scale is folded into the output weights,
    # so the board pays nothing for it, and a unit of small weights keeps its precision.
    unit = np.abs(hidden).max(axis=1) / 127
    unit[unit == 0] = 1.0
    weight1 = np.round(hidden / unit[:, None]).astype("i1")
    bias1 = np.round((b1 + at_zero @ w1) / unit)
    worst = int((np.abs(weight1.astype(np.int64)).sum(axis=1) * (INPUT_MAX + 1) + np.abs(bias1)).max())
    if worst > INT32_MAX:
        raise UserError(f"the model bundle {path} has a hidden layer too wide for the board's 32-bit sums.")
    hidden_shift = 0
    while worst >> hidden_shift > 32767:
        hidden_shift += 1
    # logit = sum w2 * (unit * 2^shift * a) + b2, in log2 units.
    out = w2.T * unit[None, :] * 2.0 ** hidden_shift * math.log2(math.e)
    bits = MAX_SCORE_BITS
    while bits >= 0 and np.abs(out).max() * 2**bits > 127:
        bits -= 1
    bias2 = np.round(b2 * math.log2(math.e) * 2**bits) if bits >= 0 else b2
    if bits < 0 or (np.abs(np.round(out * 2**bits)).sum(axis=1) * 32767 + np.abs(bias2)).max() > INT32_MAX:
        raise UserError(f"the model bundle {path} has output weights too large for 8 bits; train it with a "
                        "larger alpha.")
    tables = {"input_offset": offset.astype("<i4"), "input_shift": shift.astype("u1"), "hidden_weight": weight1,
              "hidden_bias": bias1.astype("<i4"), "output_weight": np.round(out * 2**bits).astype("i1"),
              "output_bias": bias2.astype("<i4")}
    return tables, hidden_shift, bits


def mlp_logits(tables: dict[str, np.ndarray], hidden_shift: int, x: np.ndarray) -> np.ndarray:
    """(n, features) integer features -> (n, classes) int32 logits in 2^-Q log2 units, as the board sums them."""
    q = np.clip((x - tables["input_offset"].astype(np.int64)) >> tables["input_shift"].astype(np.int64),
                -INPUT_MAX - 1, INPUT_MAX)
    acc = q @ tables["hidden_weight"].astype(np.int64).T + tables["hidden_bias"].astype(np.int64)
    hidden = np.maximum(acc, 0) >> hidden_shift
    return hidden @ tables["output_weight"].astype(np.int64).T + tables["output_bias"].astype(np.int64)
