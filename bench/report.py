"""The showcase report: python bench/report.py [case]  (default ham10000)

Evaluates the case's bundle on its test split and writes bench/out/<case>/report/report.html (git-ignored:
generated, and it embeds the dataset's images). The bundle: for ham10000 when the recipe chosen on validation is the
ensemble of two seeds, the shipped one (bench/ensemble.py's first pair); otherwise the training benchmark's
(_common.bundle_of).
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, bundle_of, run_of

from carelens.cli import app

DATA = {"ham10000": "ham10000", "busi_binary": "busi_binary", "busi_3class": "busi", "pneumoniamnist": "pneumoniamnist"}
OTHER = {"ham10000": "busi", "busi_binary": "ham10000", "busi_3class": "ham10000", "pneumoniamnist": "ham10000"}


if __name__ == "__main__":
    case = sys.argv[1] if len(sys.argv) > 1 else "ham10000"
    out = OUT / case / "report"
    res = CliRunner().invoke(app, ["evaluate", str(bundle_of(case)), DATA[case], "--splits",
                                   str(run_of(case) / "splits.json"), "--other", OTHER[case], "--out", str(out)])
    print(res.output)
    print(f"{out / 'report.html'} ({(out / 'report.html').stat().st_size / 1e6:.1f} MB)")
