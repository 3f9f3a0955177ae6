"""Subcommands of the `harduino` CLI, one module per group, and the checks they share on their options.

Numbers are checked by argparse itself, with the `type=` functions of `numbers`."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .numbers import positive_int


def add_rate_option(p) -> None:
    """`--rate HZ`: the sample rate asked of the board after connecting (and after every reset)."""
    p.add_argument("--rate", type=positive_int, metavar="HZ",
                   help="ask the board to sample at HZ (it powers up at 50); refused in one sentence if it cannot")


def parse_labels(text: str) -> tuple[str, ...]:
    """--labels of record and live: the labels number keys 1-9 pick, in the order given."""
    from ..recording import check_label

    labels = tuple(x.strip() for x in text.split(",") if x.strip())
    if len(labels) > 9:
        raise UserError(f"--labels takes at most 9 labels (keys 1-9), not {len(labels)}.")
    if len(set(labels)) != len(labels):
        raise UserError("--labels lists a label twice.")
    return tuple(check_label(x) for x in labels)


def check_writable(path: Path, what: str, *, folder: bool) -> None:
    """Before any work: UserError if `path` (a folder, or a file) could never be written there.

    That is when something on its way is a file, or a file would replace a folder.
    CI and many users run as root, so permissions are left to the write itself.
    """
    if not folder and path.is_dir():
        raise UserError(f"cannot write the {what} {path}: it is a folder.")
    for place in (path, *path.parents) if folder else path.parents:
        if place.exists():
            if not place.is_dir():
                raise UserError(f"cannot write the {what} {path}: {place} is a file, not a folder.")
            return


def write_output(what: str, path: Path, write) -> None:
    """write(path), then say where it went; an OSError (a full disk, no permission) becomes one sentence."""
    try:
        print(f"{what}: {write(path)}")
    except OSError as err:
        raise UserError(f"cannot write the {what} {path}: {err.strerror or err}.") from None
