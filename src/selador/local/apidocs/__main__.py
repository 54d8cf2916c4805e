"""``python -m selador.local.apidocs [--out DIR] [--check]``: write (or check) the API documents."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selador.local.apidocs import render_documents, write_documents


def main(argv: list[str] | None = None) -> int:
    """Write ``asyncapi.yaml`` and ``openapi.json``, or with ``--check`` say whether they are current.

    Args:
        argv: Arguments (default: the command line).

    Returns:
        0, or 1 when ``--check`` finds a document out of date.
    """
    parser = argparse.ArgumentParser(prog="python -m selador.local.apidocs", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out: {args.out} is not a directory")
    if args.check:
        stale = [
            name
            for name, text in render_documents().items()
            if not (args.out / name).is_file() or (args.out / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"{args.out / name} is out of date: run `make docs`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_documents(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
