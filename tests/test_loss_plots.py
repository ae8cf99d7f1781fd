"""Loss curves in the reports: one PNG per dataset with every schedule's loss.tsv (test inputs in tmp only)."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from diffbench import layout
from diffbench.config import Params
from diffbench.errors import DiffbenchError
from diffbench.loss_plots import plot_loss_curves, read_loss, window_for
from diffbench.reports import build_reports
from tests.test_reports import record

QUICK = Path(__file__).resolve().parents[1] / "profiles" / "quick" / "params.yaml"


def params() -> Params:
    raw = copy.deepcopy(yaml.safe_load(QUICK.read_text()))
    raw["models"]["datasets"] = ["mnist"]
    raw["shards"] = {"quick": ["mnist-linear", "mnist-cosine"]}
    return Params(raw)


def write_loss(model: str, rows: int, scale: float) -> Path:
    path = layout.model_dir(model) / "loss.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{100 * (i + 1)}\t{scale / (i + 1) ** 0.5:.6f}\t1.000e-03\n" for i in range(rows)]
    path.write_text("step\tloss\tlr\n" + "".join(lines))
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    generation = next(g for g in params().plan.generations if g.run == "ddim-10-cfg1")
    path = layout.run_dir(generation.model.name, generation.run) / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record(generation, 50.0)))  # one scored run, as in test_reports
    return tmp_path


def test_report_shows_the_schedules_loss_curves_together(workdir):
    p = params()
    schedules = [m.schedule for m in p.models if m.dataset == "mnist"]
    assert len(schedules) >= 2
    write_loss(f"mnist-{schedules[0]}", 24, 0.4)
    write_loss(f"mnist-{schedules[1]}", 30, 0.3)  # any further schedule has no loss.tsv: left out
    files, _ = build_reports(p, workdir / "reports")
    png = workdir / "reports" / "plots" / "loss_mnist.png"
    assert png in files and png.stat().st_size > 1000
    assert "- ![loss](plots/loss_mnist.png)" in (workdir / "reports" / "index.md").read_text()


def test_no_loss_file_means_no_plot_and_no_index_line(workdir):
    build_reports(params(), workdir / "reports")
    assert not (workdir / "reports" / "plots" / "loss_mnist.png").exists()
    assert "loss_mnist" not in (workdir / "reports" / "index.md").read_text()


def test_header_only_files_are_skipped_and_broken_ones_named(workdir):
    empty = layout.model_dir("mnist-linear") / "loss.tsv"
    empty.parent.mkdir(parents=True)
    empty.write_text("step\tloss\tlr\n")  # training has not logged yet
    assert not plot_loss_curves({"linear": empty, "cosine": workdir / "absent.tsv"}, workdir / "p.png", "mnist")
    assert not (workdir / "p.png").exists()
    broken = workdir / "broken.tsv"
    broken.write_text("when\tvalue\n1\t2\n")
    with pytest.raises(DiffbenchError, match="broken.tsv: no loss, step column"):
        read_loss(broken)


def test_smoothing_window_grows_with_the_curve():
    assert [window_for(n) for n in ([], [5], [24, 30], [800])] == [1, 1, 3, 10]


def test_the_noisy_classifiers_accuracy_by_t_is_plotted_once_trained(tmp_path, monkeypatch):
    from diffbench.loss_plots import plot_noisy_classifier_accuracy

    monkeypatch.chdir(tmp_path)
    guided = params().plan.guided_models  # the guidance schedule's mnist model
    assert [m.name for m in guided] == ["mnist-cosine"]
    assert not plot_noisy_classifier_accuracy(guided, "mnist", tmp_path / "noisy.png")  # not trained yet
    table = layout.model_dir("mnist-cosine-noisy-classifier") / "accuracy_by_t.tsv"
    table.parent.mkdir(parents=True)
    table.write_text("t\talpha_bar\taccuracy\tlo\thi\tn\n0\t1.0\t0.99\t0.98\t1.0\t100\n99\t0.0\t0.1\t0.05\t0.18\t100\n")
    assert plot_noisy_classifier_accuracy(guided, "mnist", tmp_path / "noisy.png")
    assert (tmp_path / "noisy.png").read_bytes().startswith(b"\x89PNG")
