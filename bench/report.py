"""The showcase report: python bench/report.py [case]  (default ham10000)

Evaluates the training benchmark's bundle (bench/out/<case>/bundle, made by bench/calibration.py) on its
test split and writes bench/out/<case>/report/report.html (git-ignored: generated, over 2 MB).
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, run_of

from carelens.cli import app

DATA = {"ham10000": "ham10000", "busi_binary": "busi_binary", "busi_3class": "busi", "pneumoniamnist": "pneumoniamnist"}
OTHER = {"ham10000": "busi", "busi_binary": "ham10000", "busi_3class": "ham10000", "pneumoniamnist": "ham10000"}

if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else "ham10000"
    out = OUT / case / "report"
    res = CliRunner().invoke(app, ["evaluate", str(OUT / case / "bundle"), DATA[case], "--splits",
                                   str(run_of(case) / "splits.json"), "--other", OTHER[case], "--out", str(out)])
    print(res.output)
    print(f"{out / 'report.html'} ({(out / 'report.html').stat().st_size / 1e6:.1f} MB)")
