"""`harduino export`: a model bundle trained on the board features, as the C header the firmware builds in."""

from __future__ import annotations

import sys
from pathlib import Path

from . import check_writable


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("export", help="turn a model bundle into C tables for the firmware",
                              description="Write the C header (tables in PROGMEM) that builds a model trained with "
                                          "--features board --channels axes (rf, logreg or mlp-board) into the firmware: "
                                          "`make -C firmware MODEL=BUNDLE` runs this itself; for the Arduino IDE, "
                                          "write it to firmware/harduino/model_tables.h. A model that would not "
                                          "fit an Uno's or a Nano's memory is refused. docs/board-model.md.")
    p.add_argument("--model", type=Path, required=True, help="the model bundle folder")
    p.add_argument("-o", "--out", type=Path, metavar="FILE", help="the header to write (default: standard output)")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from ..export import FLASH_BUDGET, RAM_BUDGET, export_model

    if args.out is not None:
        check_writable(args.out, "header", folder=False)
    model, text = export_model(args.model, args.out)
    if args.out is None:
        sys.stdout.write(text)
    if not args.quiet:
        what = (f"{len(model.tables['tree_root'])} trees" if model.kind == "forest" else
                f"{len(model.tables['hidden_bias'])} hidden units" if model.kind == "mlp" else
                f"{len(model.classes)} classes")
        print(f"exported {model.model_id!r}: {model.kind} of {what}, {model.table_bytes():,} bytes of tables; "
              f"the firmware about {model.flash_bytes():,} of {min(FLASH_BUDGET.values()):,} bytes of flash and "
              f"{model.ram_bytes():,} of {RAM_BUDGET:,} of RAM" + (f"; wrote {args.out}" if args.out else ""),
              file=sys.stderr)
    return 0
