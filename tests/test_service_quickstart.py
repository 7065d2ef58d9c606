"""``make quickstart``'s program: starts the service, scores the sample over HTTP, prints the table, stops."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_quickstart_runs_end_to_end():
    r = subprocess.run([sys.executable, "-m", "scripts.quickstart", "--workers", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "service up at http://127.0.0.1:" in out and "stopping the service" in out
    rows = [ln for ln in out.splitlines() if ln[:2].strip().isdigit()]
    assert len(rows) >= 9
    verdicts = [ln.split()[0] for ln in rows]
    assert verdicts == [str(i) for i in range(1, len(rows) + 1)]
    assert sum(" correct " in ln for ln in rows) >= 6 and any(" no_answer " in ln for ln in rows)
    assert any(" wrong " in ln for ln in rows)
