"""Known-answer validation of every QA check and of nSDR (issue: evidence you can trust).

Injects each defect of stemkit.dsp.defects at several strengths into the reference stems of
a MUSDB18-layout folder (default: the demo data, written if missing) and prints, per check,
detection at the QA profile's thresholds, false alarms on the clean stems, and the nSDR
error of the known-answer stems with bleed. Same as ``stemkit validate``.

    .venv/bin/python bench/validate.py [FOLDER] [--tracks N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import time

from stemkit.analyze.validation import validate_checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default="data/demo")
    parser.add_argument("--tracks", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    began = time.monotonic()
    result = validate_checks(args.folder, tracks=args.tracks, seconds=args.seconds)
    print(result.table())
    load = os.getloadavg()[0]
    print(f"\ngoal met: {result.goal_met}  ({time.monotonic() - began:.0f} s, load {load:.1f})")


if __name__ == "__main__":
    main()
