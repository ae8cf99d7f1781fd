"""The committed reports say of every run what the committed code, params and dvc.lock say now.

A change to a file that a generate or score stage reads makes its committed results stale; the report must
then be rebuilt (and show them stale) or the change held back. Without this check, reports/ could call "ok"
a row that `dvc repro` would regenerate.
"""

import json
from pathlib import Path

from diffbench.config import load_params
from diffbench.report_data import load_frame

ROOT = Path(__file__).resolve().parents[1]


def test_every_committed_rows_status_is_what_the_code_says_now(monkeypatch):
    monkeypatch.chdir(ROOT)
    summary = json.loads((ROOT / "reports" / "summary.json").read_text())
    committed = {(model, run): entry["status"] for dataset in summary.values() for model, runs in dataset.items()
                 for run, entry in runs.items() if isinstance(entry, dict) and "status" in entry}
    frame, _ = load_frame(load_params(ROOT / "params.yaml"))
    now = {(row.model, row.run): row.status for row in frame.itertuples() if row.status != "missing"}
    assert committed, "reports/summary.json holds no run"
    assert {key: now.get(key) for key in committed} == committed
