"""`python -m diffbench summary`: one readable line per run, intervals kept, missing fields shown as '–'."""

import json

from diffbench.__main__ import main


def test_one_line_per_run_with_intervals(tmp_path, capsys):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"mnist": {"mnist-linear": {
        "ddim-10-cfg1": {"fid": 19.1, "fid_lo": 18.55, "fid_hi": 19.65, "class_accuracy": 0.9833,
                         "class_accuracy_lo": 0.981, "class_accuracy_hi": 0.986, "nfe": 10, "n_samples": 10000,
                         "status": "ok"},
        "ddim-50-cfgnone": {"fid": 7.0, "n_samples": 32, "status": "stale (x changed)"},
        "elbo": {"bpd": 1.5, "bpd_lo": 1.4, "bpd_hi": 1.6, "n_samples": 100}}}}))
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| mnist | mnist-linear | ddim-10-cfg1 | 19.10 [18.55, 19.65] | 98.3 [98.1, 98.6] | 10 | 10000 | ok |"
    assert out[3] == "| mnist | mnist-linear | ddim-50-cfgnone | 7.00 | – | – | 32 | stale (x changed) |"
    assert out[4].startswith("| mnist | mnist-linear | ELBO | 1.500 [1.400, 1.600] bits/dim")


def test_a_missing_summary_fails_in_one_line(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "none.json")]) == 2
    assert "none.json: not found; build the reports first" in capsys.readouterr().err
