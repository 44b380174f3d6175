"""Regenerate the tables of apps/benchmarks/README.md from the results files (apps/benchmarks/results/*.md).

    python apps/benchmarks/render.py            # rewrite the README's generated part
    python apps/benchmarks/render.py --check    # exit 1 when the README does not match the results

The benchmark scripts call the same function (`_common.render_readme`) after they write into
results/, so this is only needed after a results file was edited by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the README is out of date")
    args = parser.parse_args(argv)
    up_to_date = C.render_readme(write=not args.check)
    if args.check and not up_to_date:
        print(f"{C.README} does not match {C.RESULTS_DIR}: run python apps/benchmarks/render.py", file=sys.stderr)
        return 1
    print(f"{C.README}: {'up to date' if up_to_date else 'regenerated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
