"""`python -m diffbench compare`: params, runs, provenance and metric verdicts between two git revisions."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffbench.__main__ import main
from diffbench.compare.significance import (
    BETTER, CHANGED, NO_INTERVAL, NOT_SIGNIFICANT, UNCHANGED, WORSE, Estimate, direction, verdict, z_score,
)

ROOT = Path(__file__).resolve().parents[1]
VERDICTS = {BETTER, WORSE, CHANGED, NOT_SIGNIFICANT, NO_INTERVAL, UNCHANGED}


# --- the significance test ----------------------------------------------------------------------------------


def test_z_is_the_difference_over_the_combined_standard_error():
    old, new = Estimate(10.0, 9.0, 11.0), Estimate(13.0, 12.0, 14.0)
    se = 1.0 / 1.959964
    assert z_score(old, new) == pytest.approx(3.0 / math.hypot(se, se), rel=1e-5)
    assert z_score(new, old) == pytest.approx(-z_score(old, new))


def test_overlapping_intervals_can_still_differ_significantly():
    old, new = Estimate(10.0, 9.0, 11.0), Estimate(11.5, 10.5, 12.5)  # intervals overlap on [10.5, 11]
    z, word = verdict("fid", old, new)
    assert z == pytest.approx(2.08, abs=0.01) and word == WORSE


def test_asymmetric_intervals_use_the_half_width_facing_the_other_estimate():
    # facing sides are wide (4 each): not significant; the narrow far sides (0.1) would have given z ≈ 14
    old, new = Estimate(10.0, 9.9, 14.0), Estimate(11.0, 7.0, 11.1)
    z, word = verdict("fid", old, new)
    assert abs(z) < 0.5 and word == NOT_SIGNIFICANT


def test_interval_level_sets_the_standard_error():
    at_95 = z_score(Estimate(0.0, -1.0, 1.0), Estimate(1.0, 0.0, 2.0))
    at_68 = z_score(Estimate(0.0, -1.0, 1.0, level=0.6827), Estimate(1.0, 0.0, 2.0, level=0.6827))
    assert at_68 == pytest.approx(at_95 / 1.959964, rel=1e-3)


@pytest.mark.parametrize("metric, new_value, expected", [
    ("fid", 8.0, BETTER), ("fid", 12.0, WORSE), ("classifier_fid", 12.0, WORSE), ("kid_mean", 8.0, BETTER),
    ("bpd", 8.0, BETTER), ("precision", 12.0, BETTER), ("recall", 8.0, WORSE),
    ("classifier_inception_score_mean", 12.0, BETTER), ("class_accuracy", 8.0, WORSE),
    ("clip_score", 12.0, BETTER), ("mystery", 12.0, CHANGED), ("fid", 10.0, UNCHANGED),
])
def test_direction_of_better(metric, new_value, expected):
    old, new = Estimate(10.0, 9.5, 10.5), Estimate(new_value, new_value - 0.5, new_value + 0.5)
    assert verdict(metric, old, new)[1] == expected


def test_no_direction_is_guessed_for_unknown_metrics():
    assert direction("mystery") is None and direction("classifier_mystery_mean") is None
    assert direction("classifier_fid") == "lower" and direction("inception_score_mean") == "higher"


def test_without_an_interval_on_either_side_there_is_no_test():
    assert verdict("fid", Estimate(10.0), Estimate(20.0, 19.0, 21.0)) == (None, NO_INTERVAL)


# --- a synthetic repository with two commits ----------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                           *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def ci(value: float, half: float) -> dict[str, float]:
    return {"": value, "_lo": value - half, "_hi": value + half}


def run_row(n: int = 100, device: str = "cpu (2 threads)", **metrics: dict | float) -> dict:
    row: dict = {"n_samples": n, "device": device, "deterministic": True, "seconds_per_image": 0.1}
    for name, value in metrics.items():
        row.update({name + k: v for k, v in value.items()} if isinstance(value, dict) else {name: value})
    return row


OLD_SUMMARY = {"mnist": {"mnist-cosine": {
    "ddim-10": run_row(fid=ci(100.0, 2.0), precision=ci(0.5, 0.05), recall=ci(0.6, 0.02),
                       classifier_fid=ci(50.0, 1.0), mystery=ci(1.0, 0.1), kid_mean=ci(0.1, 0.01)),
    "ddim-50": run_row(fid=40.0),
    "ddpm-100": run_row(fid=ci(30.0, 1.0)),
    "gpu-run": run_row(fid=ci(20.0, 1.0)),
    "ddim-20": run_row(fid=ci(60.0, 1.0)),
}}}
NEW_SUMMARY = {"mnist": {"mnist-cosine": {
    "ddim-10": run_row(fid=ci(92.0, 2.0), precision=ci(0.49, 0.05), recall=ci(0.5, 0.02),
                       classifier_fid=ci(53.0, 1.0), mystery=ci(2.0, 0.1), kid_mean=ci(0.1, 0.01)),
    "ddim-50": run_row(device="cpu (4 threads)", fid=ci(39.0, 1.0)),  # same device kind: comparable
    "ddpm-100": run_row(n=200, fid=ci(10.0, 1.0)),                       # n changed: not comparable
    "gpu-run": run_row(device="NVIDIA H200", fid=ci(5.0, 1.0)),         # device kind changed
    "ddim-5": run_row(fid=ci(70.0, 1.0)),
}}}
OLD_PARAMS = {"seed": 0, "training": {"mnist": {"steps": 100, "lr": 0.001}}, "old_key": 1, "clip": {"weights": None}}
NEW_PARAMS = {"seed": 0, "training": {"mnist": {"steps": 200, "lr": 0.001}}, "sampling": {"eta": 0.5},
              "clip": {"weights": None}}


def write_profile(folder: Path, summary: dict, params: dict) -> None:
    (folder / "reports").mkdir(parents=True, exist_ok=True)
    (folder / "reports" / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """Two commits of one profile at the root and under profiles/p (identical), cwd at the repository."""
    git(tmp_path, "init", "-q")
    for folder in (tmp_path, tmp_path / "profiles" / "p"):
        write_profile(folder, OLD_SUMMARY, OLD_PARAMS)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "old")
    for folder in (tmp_path, tmp_path / "profiles" / "p"):
        write_profile(folder, NEW_SUMMARY, NEW_PARAMS)
    git(tmp_path, "commit", "-q", "-am", "new")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def compare_json(capsys, *argv: str) -> dict:
    assert main(["compare", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def verdicts(report: dict) -> dict[tuple[str, str], str]:
    return {(m["run"], m["metric"]): m["verdict"] for m in report["metrics"]}


def test_every_verdict_and_section(repo, capsys):
    report = compare_json(capsys)  # default: HEAD~1 HEAD
    assert verdicts(report) == {
        ("ddim-10", "fid"): BETTER,             # moved by 4 half-widths
        ("ddim-10", "precision"): NOT_SIGNIFICANT,  # moved by a fifth of one
        ("ddim-10", "recall"): WORSE,
        ("ddim-10", "classifier_fid"): WORSE,   # follows fid: lower is better
        ("ddim-10", "mystery"): CHANGED,        # no declared direction
        ("ddim-10", "kid_mean"): UNCHANGED,
        ("ddim-50", "fid"): NO_INTERVAL,        # the old row has none
    }
    assert all(m["metric"] != "seconds_per_image" for m in report["metrics"])
    ordered = [(m["run"], m["metric"]) for m in report["metrics"]]
    assert ordered[:4] == [("ddim-10", "mystery"), ("ddim-10", "recall"), ("ddim-10", "fid"),
                           ("ddim-10", "classifier_fid")]  # significant first, largest |z| first (13.9 … 4.2)
    assert ordered[4:] == [("ddim-10", "precision"), ("ddim-50", "fid"), ("ddim-10", "kid_mean")]
    assert report["runs_added"] == ["mnist/mnist-cosine/ddim-5"]
    assert report["runs_removed"] == ["mnist/mnist-cosine/ddim-20"]
    assert report["not_comparable"] == [
        {"run": "mnist/mnist-cosine/ddpm-100", "fields": [{"key": "n_samples", "kind": "changed", "old": 100,
                                                             "new": 200}]},
        {"run": "mnist/mnist-cosine/gpu-run", "fields": [{"key": "device", "kind": "changed",
                                                            "old": "cpu (2 threads)", "new": "NVIDIA H200"}]},
    ]
    assert report["params_changed"] == [
        {"key": "old_key", "kind": "removed", "old": 1},
        {"key": "sampling.eta", "kind": "added", "new": 0.5},
        {"key": "training.mnist.steps", "kind": "changed", "old": 100, "new": 200},
    ]
    assert report["counts"] == {"significant": 4, "regressions": 2, "tested": 6, "metrics": 7}
    assert report["summary"].startswith(
        "4 significant changes, 2 regressions: recall mnist/mnist-cosine/ddim-10 0.6 → 0.5; "
        "classifier_fid mnist/mnist-cosine/ddim-10 50 → 53 (6 metrics tested")


def test_markdown_report(repo, capsys):
    assert main(["compare", "HEAD~1", "HEAD"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[2].startswith("**4 significant changes, 2 regressions: recall")
    assert "## Params: 1 changed, 1 added, 1 removed" in lines
    assert "| training.mnist.steps | 100 | 200 |" in lines and "| sampling.eta | (absent) | 0.5 |" in lines
    assert "  - mnist/mnist-cosine/ddpm-100: n_samples 100 → 200" in lines
    assert "- added: mnist/mnist-cosine/ddim-5" in lines and "- removed: mnist/mnist-cosine/ddim-20" in lines
    significant = lines.index("## Significant changes (4)")
    assert lines[significant + 4].startswith("| mnist/mnist-cosine/ddim-10 | mystery | 1 [0.9, 1.1] | 2 [1.9, 2.1] | "
                                             "+1 | +13.86 | no direction | **changed** |")
    assert lines[significant + 5].startswith("| mnist/mnist-cosine/ddim-10 | recall | 0.6 [0.58, 0.62] | "
                                             "0.5 [0.48, 0.52] | -0.1 | -6.93 | higher | **worse** |")
    assert "## Not significant (1)" in lines and "## Changed without an interval: Δ only, untested (1)" in lines
    assert "clip.weights" not in out  # a null that stays null is no change


def test_profile_option_and_workspace(repo, capsys):
    assert verdicts(compare_json(capsys, "--profile", "profiles/p"))[("ddim-10", "fid")] == BETTER
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    summary["mnist"]["mnist-cosine"]["ddim-10"]["fid"] = 90.5  # uncommitted, inside its interval
    (repo / "reports" / "summary.json").write_text(json.dumps(summary))
    report = compare_json(capsys, "--workspace")  # HEAD → working tree
    assert report["new"] == "working tree" and report["params_changed"] == []
    assert verdicts(report)[("ddim-10", "fid")] == NOT_SIGNIFICANT
    assert verdicts(report)[("ddim-10", "recall")] == UNCHANGED


def test_a_file_stored_as_a_symbolic_link_is_followed_inside_the_revision(repo, capsys):
    (repo / "profiles" / "p" / "params.yaml").unlink()
    os.symlink("../../params.yaml", repo / "profiles" / "p" / "params.yaml")
    git(repo, "commit", "-q", "-am", "link")
    assert compare_json(capsys, "HEAD~1", "HEAD", "--profile", "profiles/p")["params_changed"] == []


def fails(capsys, *argv: str) -> str:
    assert main(["compare", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and err.startswith("error: ") and "\n" not in err
    return err


def test_bad_input_fails_in_one_line(repo, capsys, tmp_path_factory):
    assert "no-such-rev: not a commit of this repository" in fails(capsys, "no-such-rev", "HEAD")
    assert "HEAD~5: not a commit" in fails(capsys, "HEAD~5")
    err = fails(capsys, "--profile", "profiles/missing")
    assert "HEAD~1:profiles/missing/reports/summary.json: file not found at this revision" in err
    assert "--profile picks the folder" in err
    (repo / "reports" / "summary.json").write_text("{not json")
    assert "reports/summary.json: not valid JSON" in fails(capsys, "--workspace")
    (repo / "reports" / "summary.json").write_text('{"mnist": [1, 2]}')
    assert "reports/summary.json: must be dataset → model → run" in fails(capsys, "--workspace")
    assert "takes at most two revisions" in fails(capsys, "HEAD", "HEAD", "HEAD")
    assert "takes at most one revision" in fails(capsys, "--workspace", "HEAD~1", "HEAD")
    os.chdir(tmp_path_factory.mktemp("not-a-repo"))
    assert "not inside a git repository" in fails(capsys)


def test_a_profile_without_reports_yet_has_no_runs_so_every_row_is_added(repo, capsys):
    (repo / "reports" / "summary.json").unlink()
    git(repo, "commit", "-q", "-am", "reports not built yet")
    report = compare_json(capsys, "HEAD", "HEAD~1")
    assert report["metrics"] == [] and report["runs_removed"] == []
    assert len(report["runs_added"]) == len(NEW_SUMMARY["mnist"]["mnist-cosine"])


def test_broken_params_at_a_revision_name_the_revision_and_file(repo, capsys):
    (repo / "params.yaml").write_text("a: [1,\n")
    git(repo, "commit", "-q", "-am", "broken params")
    assert "HEAD:params.yaml: not valid YAML" in fails(capsys, "HEAD~1", "HEAD")


def test_command_line_entry_exits_2_with_one_line(repo):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "diffbench", "compare", "nope"], cwd=repo, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: nope: not a commit of this repository (give a commit, branch or tag, e.g. HEAD~1)"]
    listed = subprocess.run([sys.executable, "-m", "diffbench", "--help"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "compare" in listed.stdout


def test_compare_imports_neither_torch_nor_the_other_commands(repo):
    code = ("import sys; from diffbench.__main__ import main; rc = main(['compare', '--format', 'json']); "
            "bad = [m for m in ('torch', 'diffbench.plan') if m in sys.modules]; "
            "sys.exit(rc or (str(bad) if bad else 0))")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["significant"] == 4


# --- this repository's own history --------------------------------------------------------------------------


def test_this_repository_history(monkeypatch, capsys):
    path = "profiles/quick/reports/summary.json"
    try:
        commits = git(ROOT, "log", "--format=%H", "-n", "8", "--", path).split()
        shallow = git(ROOT, "rev-parse", "--is-shallow-repository") == "true"
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("not a git checkout")
    if len(commits) < 2 or shallow:
        pytest.skip(f"history too short or shallow: {len(commits)} commit(s) touch {path}")
    monkeypatch.chdir(ROOT)
    # The newest consecutive pair of profile runs with rows to compare: a commit that renamed every run
    # (e.g. to `<setting>-<steps>-cfg<scale>`) has none, and must say so rather than compare silently.
    for new, old in zip(commits, commits[1:]):
        report = compare_json(capsys, old, new, "--profile", "profiles/quick")
        if any(m["metric"] == "fid" for m in report["metrics"]):
            break
        assert report["runs_added"] or report["runs_removed"] or report.get("not_comparable")
    else:
        pytest.skip("no two consecutive quick-profile runs share a comparable row")
    assert report["metrics"] and {m["verdict"] for m in report["metrics"]} <= VERDICTS
    assert {m["dataset"] for m in report["metrics"]} == {"mnist", "cifar10-jpeg"}
    fid = [m for m in report["metrics"] if m["metric"] == "fid"]
    assert fid and all(m["better"] == "lower" for m in fid)
    significant = sum(m["verdict"] in (BETTER, WORSE, CHANGED) for m in report["metrics"])
    assert report["summary"].startswith(f"{significant} significant change")
    assert main(["compare", old, new, "--profile", "profiles/quick"]) == 0
    assert capsys.readouterr().out.startswith(f"# diffbench compare: {old[:7]} → {new[:7]} (profile profiles/quick)")
