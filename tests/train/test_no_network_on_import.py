"""Importing the training engine (which imports albumentations) asks no server anything."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import urllib.request
calls = []
def refuse(self, url, *a, **k):
    calls.append(getattr(url, "full_url", url))
    raise OSError("no network in this test")
urllib.request.OpenerDirector.open = refuse
import carelens.train
print(len(calls), calls)
"""


def test_importing_the_trainer_opens_no_url() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[0] == "0", out.stdout
