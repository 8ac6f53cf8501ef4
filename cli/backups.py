"""`centinela backup DIR` and `centinela restore DIR`: a consistent copy of the database and its
model files, and putting one back (with the app stopped)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.context import Context
from cli.output import OPERATOR

IN_USE_HINT = ("While the app runs, take the backup on its Users & audit page (Backups: the button runs it in the "
               "server, which holds the file), or stop the app and run this again.")


def register(commands: argparse._SubParsersAction) -> None:
    b = commands.add_parser("backup", help="copy the database and the model files into a new folder, consistently")
    b.add_argument("folder", help="a new (or empty) folder for this backup")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=backup, in_use_hint=IN_USE_HINT)
    r = commands.add_parser("restore", help="replace the database and model files with a backup (app stopped)")
    r.add_argument("folder", help="a folder `centinela backup` wrote")
    r.set_defaults(func=restore, needs_db=False)


def backup(args: argparse.Namespace, ctx: Context) -> int:
    from application import backups
    done = backups.backup(ctx, args.folder)
    if args.json:
        print(json.dumps({"folder": str(done.folder), "tables": done.manifest.tables, "models": done.manifest.models,
                          "bytes": done.bytes, "seconds": round(done.seconds, 3)}))
    else:
        print(f"backed up {len(done.manifest.tables)} tables ({done.rows:,} rows) and {len(done.manifest.models)} "
              f"model files to {done.folder} ({done.bytes / 1e6:,.1f} MB, {done.seconds:.1f} s); the copy was reopened "
              "and its row counts match")
    return 0


def restore(args: argparse.Namespace, ctx: None) -> int:
    from application import backups
    done = backups.restore(args.folder, actor=OPERATOR)
    print(f"restored {done.database} from the backup of {done.manifest.created_at} "
          f"({sum(done.manifest.tables.values()):,} rows, {len(done.manifest.models)} model files); "
          f"the file it replaced is kept as {done.kept}")
    return 0
