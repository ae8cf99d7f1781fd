"""benchmarks/recipe.py: argument checks, equal images per recipe, extra EMAs, the tables, a CPU smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from benchmarks import recipe
from benchmarks.recipe import Outputs, Recipe, averages, eval_points, follow_every_step  # puts benchmarks/ on sys.path
from recipe_report import at_equal_time, best_cells, render_markdown  # noqa: E402
from diffbench.ema import EMA
from tests.test_evaluation import FakeExtractor
from tests.test_training import config, data, states_equal, trainer
from tests.toy_profile import toy_archive, toy_params

SMOKE = ["--params", "params.yaml", "--dataset", "toy", "--schedule", "linear", "--recipes", "batch=4",
         "lr=2e-3,batch=8", "--ema", "0.2", "0.5", "--images", "32", "--eval-every", "16", "--n", "8",
         "--steps", "3", "--device", "cpu", "--out", "out/recipe.json", "--markdown", "out/recipe.md",
         "--plot", "out/recipe.png"]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy image folder and its profile in ``tmp_path`` (the working folder), a fake Inception."""
    (tmp_path / "data" / "toy").mkdir(parents=True)
    toy_archive(tmp_path / "data" / "toy" / "toy.tar.gz")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    monkeypatch.setenv("DIFFBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    extractor = FakeExtractor("inception")
    monkeypatch.setattr(recipe, "load_inception", lambda weights, device: extractor)
    return tmp_path


def with_args(**changes: str) -> list[str]:
    """SMOKE with some options' values replaced (``eval_every`` → ``--eval-every``)."""
    argv = list(SMOKE)
    for key, value in changes.items():
        option = "--" + key.replace("_", "-")
        if option not in argv:
            argv.append(option)
        start = argv.index(option) + 1
        end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
        argv[start:end] = value.split(" ")
    return argv


@pytest.mark.parametrize("changes, message", [
    ({"recipes": "lr=1e-3,bs=4"}, "--recipes 'lr=1e-3,bs=4': unknown key 'bs'; allowed: lr, batch, warmup"),
    ({"recipes": "lr"}, "--recipes 'lr': 'lr' is not key=value; keys: lr, batch, warmup"),
    ({"recipes": "lr=0"}, "--recipes 'lr=0': lr must be a number > 0, got '0'"),
    ({"recipes": "batch=2.5"}, "--recipes 'batch=2.5': batch must be an integer >= 1, got '2.5'"),
    ({"recipes": "warmup=-1"}, "--recipes 'warmup=-1': warmup must be an integer >= 0, got '-1'"),
    ({"recipes": "batch=4 batch=4,lr=0.001"}, "--recipes: 'batch=4,lr=0.001' repeats lr=0.001,batch=4,warmup=50"),
    ({"ema": "0.2 1.0"}, "--ema: a decay must be in [0, 1), got 1"),
    ({"ema": "0.2 0.5 0.9"}, "--ema: 0.5, 0.9 never leave the EMA warm-up (min(decay, (1 + n)/(10 + n)) after n "
                             "updates) in the 8 steps of lr=0.001,batch=4,warmup=50, so they are the same average "
                             "bit for bit; keep one and add decays below 0.4706"),
    ({"eval_every": "4"}, "--eval-every: 4 images is less than one batch of 8"),
    ({"eval_every": "64"}, "--eval-every: 64 exceeds --images 32"),
    ({"dataset": "mnits"}, "datasets: unknown dataset 'mnits'; allowed: toy"),
    ({"schedule": "cosin"}, "--schedule: unknown schedule 'cosin'; allowed: cosine, linear, sigmoid"),
    ({"n": "3"}, "--n: must be >= 4"),
    ({"steps": "21"}, "--steps: must be an integer in 1..20 (T), got 21"),
    ({"sampler": "ddpm"}, "--sampler: 'ddpm' is no DDIM setting of params samplers; allowed: ddim"),
])
def test_bad_arguments_fail_in_one_line_before_any_work(toy, capsys, changes, message):
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(with_args(**changes))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (toy / "out").exists() and not (toy / ".cache").exists()


def test_recipes_take_params_for_keys_not_named():
    defaults = {"lr": 1e-3, "batch_size": 512, "warmup_steps": 200}
    assert recipe.parse_recipe("lr=2e-4", defaults) == Recipe(lr=2e-4, batch_size=512, warmup_steps=200)
    assert recipe.parse_recipe("batch=256, warmup=100", defaults) == Recipe(lr=1e-3, batch_size=256, warmup_steps=100)


def test_every_batch_size_sees_the_same_images():
    small, large = Recipe(1e-3, 256, 0), Recipe(1e-3, 512, 0)
    assert (small.steps(1_228_800), large.steps(1_228_800)) == (4800, 2400)
    for images in eval_points(2_000_000, 250_000):  # 250k / 512 is no whole number of steps
        seen = [r.steps(images) * r.batch_size for r in (small, large)]
        assert all(abs(s - images) <= r.batch_size / 2 for s, r in zip(seen, (small, large)))
    assert eval_points(1000, 400) == (400, 800, 1000) and eval_points(800, 400) == (400, 800)


def test_an_extra_ema_with_the_trainers_decay_is_the_trainers_ema_bit_for_bit():
    images, labels = data()
    run = trainer(config(steps=5, ema_decay=0.3))  # the warm-up (1+n)/(10+n) passes 0.3 at n = 3
    twin, shorter = EMA(run.model, 0.3), EMA(run.model, 0.2)
    follow_every_step(run, [twin, shorter])
    run.fit(images, labels, None, lambda *row: None, stop_at=2)
    run.fit(images, labels, None, lambda *row: None)
    assert twin.updates == shorter.updates == run.ema.updates == 5
    assert states_equal(twin.weights(), run.ema.weights())
    assert not states_equal(shorter.weights(), run.ema.weights())
    own = averages(run, (0.3, 0.9))
    assert own[0.3] is run.ema and own[0.9] is not run.ema and own[0.9].decay == 0.9


def test_following_the_steps_does_not_change_training():
    images, labels = data()
    runs = []
    for follow in (False, True):  # one after the other: dropout draws from the global RNG the Trainer seeds
        run = trainer(config(steps=3))
        if follow:
            follow_every_step(run, [EMA(run.model, 0.5)])
        run.fit(images, labels, None, lambda *row: None)
        runs.append(run)
    plain, followed = runs
    assert states_equal(plain.model.state_dict(), followed.model.state_dict())
    assert states_equal(plain.ema.weights(), followed.ema.weights()) and plain.history == followed.history


def hand_made_record() -> dict:
    """Two recipes x two decays x two points; one cell missing; FIDs chosen so each column has its own best."""
    fids = {("a", 0.9, 10): 30.0, ("a", 0.99, 10): 25.0, ("b", 0.9, 10): 28.0, ("b", 0.99, 10): 26.0,
            ("a", 0.9, 20): 12.0, ("a", 0.99, 20): 14.0, ("b", 0.9, 20): 11.5}
    rows = [{"recipe": r, "ema": e, "images": i, "images_seen": i, "fid": f, "fid_lo": f - 1, "fid_hi": f + 1,
             "n": 8, "step": i, "train_seconds": 2.0, "train_images_per_s": i / 2} for (r, e, i), f in fids.items()]
    return {"dataset": "toy", "schedule": "linear",
            "recipes": [{"name": "a", "steps": 1000}, {"name": "b", "steps": 100}],
            "ema_decays": [0.9, 0.99], "ema_warmup": "rule", "images": 20, "eval_points": [10, 20], "n": 8,
            "sampler": {"steps": 3, "guidance": 1.0}, "reference": {"n": 20, "split": "test"},
            "provenance": {"device": "cpu", "environment": {"torch": "x"}, "commit": "abc", "command": "cmd"},
            "rows": rows}


def test_markdown_has_a_row_per_recipe_and_ema_and_bolds_each_columns_best():
    record = hand_made_record()
    assert best_cells(record["rows"]) == {("a", 0.99, 10), ("b", 0.9, 20)}
    table = [line for line in render_markdown(record).splitlines() if line.startswith("| ") and "---" not in line]
    assert table[1:] == [
        "| a | 0.9 | 30.00 [29.00, 31.00] | 12.00 [11.00, 13.00] |",
        "| a | 0.99 | **25.00 [24.00, 26.00]** | 14.00 [13.00, 15.00] |",
        "| b | 0.9 | 28.00 [27.00, 29.00] | **11.50 [10.50, 12.50]** |",
        "| b | 0.99 (warm-up only) | 26.00 [25.00, 27.00] | – |",
    ]
    markdown = render_markdown(record)
    assert "Leading so far (3 of 4 averages there): **b, EMA 0.9**: lowest FID at 20 images, 11.50 [10.50, 12.50] " \
           "(n=8)." in markdown
    assert "- b: 20 of 100 steps, 20 images in 2 s of training (10 img/s, start-up and compile included)" in markdown
    record["rows"].append(record["rows"][-1] | {"ema": 0.99, "fid": 11.6})
    assert "Chosen: **b, EMA 0.9**: lowest FID at 20 images" in render_markdown(record)
    record["rows"] = [r for r in record["rows"] if r["images"] == 10]
    assert "Chosen: none yet" in render_markdown(record)
    record["rows"][0]["fid"] = 25.0  # a tie: both bold
    assert best_cells(record["rows"]) == {("a", 0.9, 10), ("a", 0.99, 10)}


def test_equal_time_verdict_gives_a_slower_recipe_its_first_point_past_the_fastest_ones_time():
    record = hand_made_record()
    assert at_equal_time(record) is None  # b's EMA 0.99 has not got to 20 images
    record["rows"].append(record["rows"][-1] | {"ema": 0.99, "fid": 11.6})
    for row in record["rows"]:  # a (batch 256, say) is slower: 3 s per point; b 2 s
        row["train_seconds"] = {"a": 3.0, "b": 2.0}[row["recipe"]] * row["images"] / 10
    # b finished at 4 s; a at its first point at or past 4 s (its last, 6 s): 12.00 against b's 11.50
    verdict = at_equal_time(record)
    assert verdict.startswith("At equal training time (4 s") and "**b, EMA 0.9** leads" in verdict
    assert "a, EMA 0.9: 12.00 [11.00, 13.00] at 20 images, 6 s" in verdict
    for row in record["rows"]:
        row["train_seconds"] = {"a": 1.5, "b": 2.0}[row["recipe"]] * row["images"] / 10
    # now a finished first (3 s): b at its first point past 3 s (20 images, 4 s) still leads with 11.50
    assert "At equal training time (3 s" in at_equal_time(record)
    assert "a, EMA 0.9: 12.00 [11.00, 13.00] at 20 images, 3 s" in at_equal_time(record)


def test_cuda_without_an_index_means_the_current_device(monkeypatch):
    monkeypatch.setattr(recipe.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(recipe.torch.cuda, "current_device", lambda: 3)
    assert recipe.check_device("cuda") == recipe.torch.device("cuda", 3)  # torch.cuda.set_device("cuda") raises
    assert recipe.check_device("cuda:1") == recipe.torch.device("cuda", 1)


def test_render_rewrites_table_and_plot_from_a_json(tmp_path):
    record = hand_made_record()
    (tmp_path / "r.json").write_text(json.dumps(record))
    recipe.main(["--render", str(tmp_path / "r.json")])
    assert "| a | 0.9 |" in (tmp_path / "r.md").read_text() and (tmp_path / "r.png").is_file()


def test_side_by_side_rows_merge_in_table_order(tmp_path):
    record = hand_made_record()
    rows = record.pop("rows")
    parts = [tmp_path / "0.json", tmp_path / "1.json", tmp_path / "missing.json"]
    for part, name in zip(parts, ("b", "a")):
        part.write_text(json.dumps({"rows": [r for r in rows if r["recipe"] == name][::-1]}))
    outputs = Outputs(tmp_path / "r.json", tmp_path / "r.md", None)
    recipe.merge_parts(record, parts, outputs)
    expected = sorted(rows, key=lambda r: (r["recipe"], r["ema"], r["images"]))
    assert json.loads(outputs.json.read_text())["rows"] == expected and outputs.markdown.is_file()


def test_smoke_run_on_the_cpu_writes_a_row_per_recipe_ema_and_point(toy):
    recipe.main(SMOKE)
    record = json.loads((toy / "out" / "recipe.json").read_text())
    assert [(r["recipe"], r["ema"], r["images"]) for r in record["rows"]] == [
        (name, ema, images) for name in ("lr=0.001,batch=4,warmup=50", "lr=0.002,batch=8,warmup=50")
        for ema in (0.2, 0.5) for images in (16, 32)]
    assert [(r["step"], r["images_seen"]) for r in record["rows"][::2]] == [(4, 16), (4, 16), (2, 16), (2, 16)]
    assert all(r["fid_lo"] <= r["fid"] <= r["fid_hi"] and r["n"] == 8 and r["sampler_steps"] == 3
               and r["train_seconds"] > 0 for r in record["rows"])
    final = [r for r in record["rows"] if r["images"] == 32]  # the last step is always a loss.tsv row
    assert all(np.isfinite(r["loss"]) and r["loss_step"] == r["step"] for r in final)
    provenance = record["provenance"]
    assert provenance["device"].startswith("cpu") and len(provenance["params_sha256"]) == 64
    assert record["reference"]["n"] == 20 and record["reference"]["path"].startswith(".cache/recipe/")
    markdown = (toy / "out" / "recipe.md").read_text()
    assert markdown.count("| lr=") == 4 and "Chosen: **" in markdown and "python benchmarks/recipe.py" in markdown
    assert (toy / "out" / "recipe.png").stat().st_size > 0


def test_default_outputs_lie_outside_what_the_report_stage_clears():
    """`dvc repro` deletes a stage's outputs before it runs: a recipe plot in reports/plots/ was lost so."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    outs = [next(iter(out)) if isinstance(out, dict) else out
            for key in ("outs", "metrics", "plots")
            for out in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["report"].get(key, [])]
    assert "reports/plots" in outs
    args = recipe.parser().parse_args(["--dataset", "mnist", "--schedule", "cosine"])
    paths = recipe.output_paths(args)
    for path in (paths.json, paths.markdown, paths.plot):
        assert not any(path == Path(out) or Path(out) in path.parents for out in outs), path
