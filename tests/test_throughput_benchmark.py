"""benchmarks/throughput.py: a --smoke run (CPU, quick-profile U-Nets) writes every row of issue 9's table,
its numbers agree with each other, and the profile tables add up. No assertion on a duration or a speed."""

from __future__ import annotations

import json
import math
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import throughput  # puts benchmarks/ on sys.path for its sibling modules
import kernel_profile  # noqa: E402
import performance_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEAK_TFLOPS = 1.0  # a made-up peak so that the smoke run's MFU is a number to check
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, one_torch_thread) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("throughput")
    throughput.main(["--smoke", "--profile", "--train-variants", "batch_size=2,cudagraphs=true", "--sample-variants",
                     "channels_last=true", "batch_size=2,coordinate_descent=true", "group_norm_moments=true",
                     "--params", str(ROOT / "profiles" / "quick" / "params.yaml"),
                     "--peak-tflops", str(PEAK_TFLOPS), "--out", str(out / "performance.json"),
                     "--markdown", str(out / "performance.md")])
    return json.loads((out / "performance.json").read_text()), (out / "performance.md").read_text()


def test_smoke_run_says_so_and_has_every_target_row(smoke):
    results, markdown = smoke
    assert results["header"]["smoke"] is True and performance_report.SMOKE_WARNING in markdown
    assert results["header"]["gpu"].startswith("cpu") and results["header"]["date"] and "commit" in results["header"]
    whats = [target.what for target in performance_report.targets(results)]
    for fragment in ("training, CIFAR U-Net vs", "training MFU, CIFAR", "DDIM-50 sampling", "MNIST U-Net",
                     "metric suite", "FID equal"):
        assert sum(fragment in what for what in whats) == 1, fragment
    for dataset in ("cifar10-jpeg", "mnist"):
        for run in ("DDIM-10", "DDPM-100"):
            assert any(what.startswith(f"{run} image-steps/s") and dataset in what for what in whats), (run, dataset)
        assert any(what.startswith("classifier-free guidance") and dataset in what for what in whats), dataset
    for what in whats:
        assert what in markdown
    for section in ("## Issue 9 targets", "## Training", "## Sampling", "## Metric suite", "## Where the time goes"):
        assert section in markdown


def test_variant_rows_sit_beside_the_params_rows_and_never_stand_in_for_them(smoke):
    results, markdown = smoke
    rows = results["training"]["rows"]
    variants = [r for r in rows if r["variant"]]
    variant = "batch_size=2,cudagraphs=true"
    assert [(r["library"], r["dataset"], r["variant"], r["train_batch"]) for r in variants] == [
        ("diffbench", "cifar10-jpeg", variant, 2), ("diffbench", "mnist", variant, 2)]
    for row in variants:
        base = performance_report.training_row(results, "diffbench", row["dataset"])
        assert base["variant"] is None and base["train_batch"] == 4
        ratio = row["train_images_per_s"] / base["train_images_per_s"]
        assert f"| eager + {variant} | " in markdown and f"({ratio:.2f}× params)" in markdown
    titles = list(results["profile"])  # every dataset's pipeline-mode step is profiled, variants too
    for dataset in ("cifar10-jpeg", "mnist"):
        assert f"training step, {dataset} U-Net (eager, batch 4)" in titles
        assert f"training step, {dataset} U-Net (eager, {variant}, batch 2)" in titles


def test_sampling_variants_are_related_to_the_params_ddim50_row_of_the_same_run(smoke):
    results, markdown = smoke
    for entry in results["sampling"]["datasets"]:
        params_row = entry["rows"][0]
        assert [(row["variant"], row["batch"]) for row in entry["variants"]] == [
            ("channels_last=true", 4), ("batch_size=2,coordinate_descent=true", 2), ("group_norm_moments=true", 4)]
        for row in entry["variants"]:
            assert params_row["run"] == row["run"] == "DDIM-50"
            assert row["times_params_row"] == pytest.approx(row["image_steps_per_s"] / params_row["image_steps_per_s"])
            assert (f"| {entry['dataset']} | {row['variant']} | {row['batch']} | {row['images_per_s']:.1f} | "
                    f"{row['image_steps_per_s']:.0f} | {row['times_params_row']:.2f}× |") in markdown


def test_a_sampling_variant_with_an_unknown_key_fails_in_one_line():
    with pytest.raises(SystemExit) as error:
        throughput.parse_args(["--smoke", "--sample-variants", "lr=0.1"])
    assert str(error.value) == ("--sample-variants 'lr=0.1': 'lr=0.1' is not KEY=VALUE with KEY one of "
                                "channels_last, batch_size, group_norm_moments, force_layout, coordinate_descent, "
                                "max_autotune, cudagraphs")


@pytest.mark.parametrize("text, message", [
    ("channels_last=yes", "channels_last must be true or false, got 'yes'"),
    ("batch_size=0", "batch_size must be an integer >= 1, got '0'"),
    ("lr=0.1", "'lr=0.1' is not KEY=VALUE with KEY one of channels_last, batch_size, group_norm_moments, force_layout"),
    ("cudagraphs=1", "cudagraphs must be true or false, got '1'"),
    ("channels_last", "'channels_last' is not KEY=VALUE"),
])
def test_bad_variants_fail_in_one_line(text, message):
    with pytest.raises(SystemExit) as error:
        throughput.parse_variant(text)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert throughput.parse_variant("channels_last=True,batch_size=1024") == {"channels_last": True, "batch_size": 1024}
    assert throughput.parse_variant("cudagraphs=true,coordinate_descent=false") == {"cudagraphs": True,
                                                                                      "coordinate_descent": False}


def test_inductor_levers_hold_inside_their_row_only():
    import inductor_levers
    import torch._inductor.config as config

    before = (config.coordinate_descent_tuning, config.max_autotune, config.max_autotune_pointwise,
              config.triton.cudagraphs)
    settings, levers = inductor_levers.split({"batch_size": 8, "cudagraphs": True, "max_autotune": True})
    assert settings == {"batch_size": 8} and levers == {"cudagraphs": True, "max_autotune": True}
    with inductor_levers.patched(levers):
        assert config.triton.cudagraphs and config.max_autotune and config.max_autotune_pointwise
        assert config.coordinate_descent_tuning == before[0]
    assert (config.coordinate_descent_tuning, config.max_autotune, config.max_autotune_pointwise,
            config.triton.cudagraphs) == before
    with pytest.raises(ValueError, match="not one of force_layout, coordinate_descent, max_autotune, cudagraphs$"):
        inductor_levers.patch_of({"fast": True})
    with inductor_levers.patched({"force_layout": True}):
        assert config.force_layout_optimization
    assert not config.force_layout_optimization


def test_a_group_norm_variant_changes_the_architecture_setting_of_its_row_only():
    """group_norm_moments is a params key of the model: a variant builds the training and sampling U-Nets with the
    other GroupNorm, and a variant that restates the params is no row of its own."""
    import inductor_levers
    import sampling_speed

    from diffbench import distributed
    from diffbench.config import load_params
    from diffbench.group_norm import GroupNorm
    from diffbench.training import make_trainer

    settings, levers = inductor_levers.split({"batch_size": 8, "group_norm_moments": True})
    assert settings == {"batch_size": 8, "group_norm_moments": True} and levers == {}
    params = load_params(ROOT / "profiles" / "quick" / "params.yaml")
    assert "group_norm_moments" not in params.section("architectures")["mnist"]  # the quick profile: native

    def moments(net):
        return {m.moments for m in net.modules() if isinstance(m, GroupNorm)}

    ctx = distributed.Context(rank=0, world_size=1, device=torch.device("cpu"))
    trainer = make_trainer(params, "mnist", "linear", (28, 28, 1), 10, ctx, "benchmark",
                           architecture={"group_norm_moments": True})
    assert moments(trainer.model) == {True}
    assert moments(make_trainer(params, "mnist", "linear", (28, 28, 1), 10, ctx, "benchmark").model) == {False}
    assert moments(sampling_speed.pipeline_model(params, "mnist", torch.device("cpu"), group_norm_moments=True).net) == {True}
    assert moments(sampling_speed.pipeline_model(params, "mnist", torch.device("cpu")).net) == {False}
    assert throughput.same_as_params(params, "mnist", {"group_norm_moments": False})
    assert not throughput.same_as_params(params, "mnist", {"group_norm_moments": True})


def test_extraction_profile_times_the_extract_calls():
    import metrics_speed

    class Extractor:
        calls = 0

        def extract(self, images, batch):
            Extractor.calls += 1
            x = torch.from_numpy(images[:batch]).float()
            return {"pool": torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), torch.ones(4, 3, 3, 3)).numpy()}

    images = np.zeros((6, 8, 8, 3), np.uint8)
    summary = metrics_speed.extraction_profile(Extractor(), images, 2, torch.device("cpu"), calls=3)
    assert Extractor.calls == 4 and summary["steps"] == 3  # one unprofiled call first
    assert summary["categories"]["convolution"] > 0 and math.isclose(sum(summary["categories"].values()), 1.0)


def test_mean_loss_weighs_closed_intervals_by_their_steps_and_adds_the_open_one():
    class Row:
        def __init__(self, step, loss):
            self.step, self.loss = step, loss

    class Window:
        buffer = torch.tensor([[4.0, 0.0], [6.0, 0.0], [99.0, 0.0]])
        count = 2

    class FakeTrainer:
        history = [Row(3, 1.0), Row(4, 2.0)]  # steps 1-3 at mean 1, step 4 at 2
        window = Window()

    assert throughput.mean_loss(FakeTrainer()) == pytest.approx((3 * 1.0 + 2.0 + 4.0 + 6.0) / 6)


def test_a_variant_of_the_same_batches_shows_its_loss_against_the_params_row(smoke):
    results, _ = smoke
    base = performance_report.training_row(results, "diffbench", "cifar10-jpeg")
    assert base["mean_loss"] > 0
    variant = base | {"variant": "force_layout=true", "train_images_per_s": base["train_images_per_s"] * 1.2,
                      "mean_loss": base["mean_loss"] * 1.004}
    merged = results | {"training": results["training"] | {"rows": results["training"]["rows"] + [variant]}}
    assert "(1.20× params, loss +0.4%)" in performance_report.render(merged)
    assert ", loss " not in performance_report.versus_params(results, next(
        r for r in results["training"]["rows"] if r["variant"]))  # another batch size: other batches, no loss


def test_a_training_variant_that_restates_the_params_is_not_measured_again():
    params = throughput.load_params(str(ROOT / "params.yaml"))
    cifar = params.section("training")["cifar10-jpeg"]
    assert throughput.same_as_params(params, "cifar10-jpeg", {"force_layout": cifar["force_layout"]})
    assert not throughput.same_as_params(params, "cifar10-jpeg", {"force_layout": not cifar["force_layout"]})
    assert not throughput.same_as_params(params, "cifar10-jpeg", {"coordinate_descent": False})  # a lever: measured
    assert not throughput.same_as_params(params, "cifar10-jpeg", {"batch_size": cifar["batch_size"] * 2})


def test_training_cudagraphs_and_force_layout_are_trainer_settings_not_patched_levers():
    import inductor_levers

    variant = {"cudagraphs": False, "force_layout": True, "coordinate_descent": True}
    settings, levers = inductor_levers.split(variant, throughput.TRAINING_SETTINGS)
    assert settings == {"cudagraphs": False, "force_layout": True} and levers == {"coordinate_descent": True}


def test_rows_skipped_here_say_why(smoke):
    results, markdown = smoke
    assert "no --metrics-train" in results["metrics"]["skipped"] and "Not measured: no --metrics-train" in markdown
    if not throughput.diffusers_baseline.available():
        assert any("diffusers is not importable" in note for note in results["header"]["notes"])
        assert "diffusers is not importable" in markdown and results["sampling"]["diffusers"] == []


def test_sampling_shares_and_cfg_cost_come_from_the_rates_of_the_same_run(smoke):
    results, _ = smoke
    for entry in results["sampling"]["datasets"]:
        rows = {row["run"]: row for row in entry["rows"]}
        assert list(rows) == ["DDIM-50", "DDIM-10", "DDPM-100", "DDIM-50 CFG 3"]
        ddim50 = rows["DDIM-50"]["image_steps_per_s"]
        for row in rows.values():
            assert math.isclose(row["image_steps_per_s"], row["images_per_s"] * row["nfe"])
            assert math.isclose(row["share_of_ddim50"], row["image_steps_per_s"] / ddim50)
            assert row["batch"] == 4 and row["images"] == 4  # --smoke: one batch of 4
        guided = rows["DDIM-50 CFG 3"]
        assert math.isclose(guided["cfg_cost_per_step"], ddim50 / guided["image_steps_per_s"])
        assert guided["network_passes_per_image"] == 2 * guided["nfe"] == 100
        assert [rows[r]["nfe"] for r in ("DDIM-50", "DDIM-10", "DDPM-100")] == [50, 10, 100]


def test_mfu_is_forward_flops_times_passes_times_rate_over_the_peak(smoke):
    results, _ = smoke
    peak = PEAK_TFLOPS * 1e12
    for row in results["training"]["rows"]:
        flops = 3 * row["forward_gflops_per_image"] * 1e9 * row["train_images_per_s"]
        assert math.isclose(row["train_mfu"], flops / peak) and math.isclose(row["train_tflops_per_second"], flops / 1e12)
    for entry in results["sampling"]["datasets"]:
        for row in entry["rows"]:
            flops = row["network_passes_per_image"] * entry["forward_gflops_per_image"] * 1e9 * row["images_per_s"]
            assert math.isclose(row["mfu"], flops / peak)


def test_profile_shares_add_up_and_name_known_categories(smoke):
    results, markdown = smoke
    assert len(results["profile"]) == 5  # 2 datasets × (params row + 1 variant) training steps, 1 sampling step
    for summary in results["profile"].values():
        assert 0 < sum(k["share"] for k in summary["top"]) <= 1 + 1e-9 and len(summary["top"]) <= 10
        assert math.isclose(sum(summary["categories"].values()), 1.0)
        assert set(summary["categories"]) == set(kernel_profile.CATEGORIES)
        assert all(k["category"] == kernel_profile.category(k["name"]) for k in summary["top"])
        assert summary["top"] == sorted(summary["top"], key=lambda k: -k["share"])
        assert f"{summary['top'][0]['share']:.1%}" in markdown


def test_from_json_merges_parts_of_several_runs(smoke, tmp_path):
    results, _ = smoke
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({k: results[k] for k in ("header", "training")}))
    second_header = results["header"] | {"command": "python benchmarks/throughput.py --parts sampling"}
    second.write_text(json.dumps({"header": second_header} | {k: results[k] for k in ("sampling", "profile")}))
    throughput.main(["--from-json", str(first), str(second), "--markdown", str(tmp_path / "p.md")])
    merged = throughput.merged([str(first), str(second)])
    assert merged["training"] == results["training"] and merged["sampling"] == results["sampling"]
    assert performance_report.render(merged) == (tmp_path / "p.md").read_text()
    assert merged["header"]["command"] == f"{results['header']['command']}; {second_header['command']}"


def test_from_json_of_several_commits_merges_training_rows_and_takes_ratios_within_one_run(smoke, tmp_path):
    results, _ = smoke
    cifar = performance_report.training_row(results, "diffbench", "cifar10-jpeg")
    diffusers = cifar | {"library": "diffusers", "train_images_per_s": cifar["train_images_per_s"] / 2}
    old = results | {"header": results["header"] | {"commit": "a" * 40},
                     "training": results["training"] | {"rows": results["training"]["rows"] + [diffusers]}}
    mnist_rows = [r | {"train_images_per_s": r["train_images_per_s"] * 3} for r in results["training"]["rows"]
                  if r["dataset"] == "mnist" and r["library"] == "diffbench"]
    new = {"header": results["header"] | {"commit": "b" * 40, "command": "second run"},
           "training": results["training"] | {"rows": mnist_rows, "pipeline_modes": {"mnist": "eager"},
                                              "train_steps": results["training"]["train_steps"] + 1},
           "sampling": results["sampling"]}
    paths = []
    for name, part in (("old.json", old), ("new.json", new)):
        paths.append(str(tmp_path / name))
        (tmp_path / name).write_text(json.dumps(part))
    throughput.main(["--from-json", *paths, "--note", "a note", "--markdown", str(tmp_path / "p.md")])
    merged = throughput.merged(paths)
    markdown = (tmp_path / "p.md").read_text()
    rows = merged["training"]["rows"]
    assert len(rows) == len(results["training"]["rows"]) + 1 + len(mnist_rows)  # every run's rows kept
    assert {r["commit"][0] for r in rows if r["dataset"] == "mnist" and r["library"] == "diffbench"} == {"a", "b"}
    assert {r["commit"][0] for r in rows if r["dataset"] == "cifar10-jpeg"} == {"a"}
    newest = performance_report.newest_training_row(merged, "mnist")
    assert newest["commit"][0] == "b" and newest["train_images_per_s"] == mnist_rows[0]["train_images_per_s"]
    variant = next(r for r in rows if r["dataset"] == "mnist" and r["variant"] and r["commit"][0] == "b")
    assert f"({variant['train_images_per_s'] / newest['train_images_per_s']:.2f}× params)" in markdown
    ratio = next(t for t in performance_report.targets(merged) if t.what.startswith("training, CIFAR U-Net vs"))
    assert ratio.measured.startswith("2.00×") and "run `aaaaaaa`" in ratio.measured  # within the run with diffusers
    assert [run["parts"] for run in merged["header"]["runs"]] == [["training", "metrics"], ["training", "sampling"]]
    assert "`aaaaaaaaaaaa`" in markdown and "`bbbbbbb` |" in markdown and "- a note" in markdown
    assert all(title.endswith(("`aaaaaaa`", "`bbbbbbb`")) for title in merged["profile"])
    assert f"{results['training']['train_steps'] + 1} steps after" in markdown and "warm-up steps in `bbbbbbb`" in markdown


@pytest.mark.parametrize("name, expected", [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nchw_tilesize128x128x64", "convolution"),
    ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>", "convolution"),
    ("aten::convolution_backward", "convolution"),
    ("void cudnn::bn_fw_inf_1C11_kernel_NCHW<float, float, true, 1>(float, float, cudnnTensorStruct)", "normalisation"),
    ("void at::native::(anonymous namespace)::avg_pool2d_out_cuda_frame<float, float>(int, float const*)", "pooling"),
    ("aten::max_pool2d_with_indices", "pooling"),
    ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 64, 4>>", "attention"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
    ("triton_red_fused_native_group_norm_0", "normalisation"),
    ("aten::native_group_norm_backward", "normalisation"),
    ("triton_poi_fused_add_convolution_silu_3", "elementwise/activation"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::silu_kernel>",
     "elementwise/activation"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer/EMA"),
    ("aten::_foreach_lerp_", "optimizer/EMA"),
    ("Memcpy DtoD (Device -> Device)", "copies"),
    ("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16>", "copies"),
    ("sm90_xmma_wgrad_indexed_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64", "convolution"),
    ("void at::native::index_elementwise_kernel<128, 4>", "copies"),
    ("aten::index_select", "copies"),
    ("aten::empty_strided", "other"),
])
def test_categories_of_known_kernel_names(name, expected):
    assert kernel_profile.category(name) == expected


def test_summarise_ranks_by_self_time_and_shares_all_of_it():
    times = {"aten::mkldnn_convolution": 600.0, "aten::silu": 300.0, "aten::empty": 100.0}
    summary = kernel_profile.summarise(times, steps=2, top=2)
    assert [k["name"] for k in summary["top"]] == ["aten::mkldnn_convolution", "aten::silu"]
    assert [k["share"] for k in summary["top"]] == [0.6, 0.3] and summary["ms_per_step"] == 0.5
    assert summary["categories"]["convolution"] == 0.6 and summary["categories"]["other"] == 0.1
    with pytest.raises(ValueError, match="no steps or no time"):
        kernel_profile.summarise({}, steps=1)


def test_launchers_name_the_operator_chain_of_each_kernel_and_the_report_shows_it():
    Kernel = namedtuple("Kernel", "name device duration")
    Op = namedtuple("Op", "name cpu_parent kernels")
    backward = Op("aten::convolution_backward", Op("ProfilerStep#3", None, ()), ())
    contiguous = Op("aten::contiguous", backward, ())
    copy = Op("aten::copy_", contiguous, [Kernel("elementwise_kernel", 0, 30.0)])
    other_copy = Op("aten::copy_", Op("aten::clone", None, ()), [Kernel("elementwise_kernel", 0, 10.0)])
    conv = Op("aten::cudnn_convolution", None, [Kernel("xmma_fprop", 0, 5.0), Kernel("nchwToNhwcKernel", 0, 2.0)])
    launch = Op("cudaLaunchKernelExC", conv, [Kernel("nchwToNhwcKernel", 0, 1.0)])  # runtime event: skipped
    chains = kernel_profile.launchers([backward, contiguous, copy, other_copy, conv, launch])
    assert chains["elementwise_kernel"] == {
        "aten::copy_ ← aten::contiguous ← aten::convolution_backward": 30.0, "aten::copy_ ← aten::clone": 10.0}
    assert chains["nchwToNhwcKernel"] == {"aten::cudnn_convolution": 3.0}
    summary = kernel_profile.attribute(kernel_profile.summarise(
        {"elementwise_kernel": 40.0, "xmma_fprop": 5.0, "unlinked": 1.0}, steps=1), chains, top=1)
    by_name = {row["name"]: row for row in summary["top"]}
    assert by_name["elementwise_kernel"]["launched_by"] == [
        {"ops": "aten::copy_ ← aten::contiguous ← aten::convolution_backward", "share": 0.75}]
    assert "launched_by" not in by_name["unlinked"]
    lines = performance_report.launched_by_lines(summary["top"])
    assert "- #1: aten::copy_ ← aten::contiguous ← aten::convolution_backward (75%)" in lines
    assert not any(line.startswith("- #3") for line in lines)
    assert performance_report.short_ops(
        "## Call CompiledFxGraph fzhluz5v6 ## ← CompiledFunctionBackward ← autograd::engine::evaluate_function: "
        "CompiledFunctionBackward") == "compiled graph ← CompiledFunctionBackward ← CompiledFunctionBackward"


def test_metric_targets_compare_the_50k_total_and_fid_with_the_exact_path():
    metrics = {"n": 50000, "fid_kid_prc_total_seconds": 4.2, "fid_relative_difference": 2e-4}
    fast, exact = performance_report.metric_targets({"metrics": metrics})
    assert (fast.met, fast.measured, exact.met) == (True, "4.2 s", True)
    fewer = performance_report.metric_targets({"metrics": metrics | {"n": 1000, "fid_relative_difference": 0.01}})
    assert fewer[0].met is False and "not the target's 50k" in fewer[0].measured and fewer[1].met is False


@pytest.mark.parametrize("argv, message", [
    (["--parts", "training,nosuch"], "--parts: unknown"),
    (["--datasets", "cifar10"], "--datasets: unknown"),
    (["--metrics-train", "x.npz"], "--metrics-train and --metrics-test go together"),
    (["--train-steps", "0"], "--train-steps: must be >= 1"),
])
def test_bad_flags_fail_in_one_line(argv, message):
    with pytest.raises(SystemExit, match=message):
        throughput.parse_args(["--smoke", *argv])


def test_metric_section_lists_extraction_variants_against_the_default():
    import metrics_speed

    assert metrics_speed.extraction_variants(None, None, None, 1, 1.0, throughput.torch.device("cpu")) == []
    metrics = {"n": 10, "n_ref": 5, "batch": 2, "seconds": {"Inception features": 8.0},
               "agreement": {"fid": [3.0, 3.0]}, "fid_kid_prc_total_seconds": 9.0,
               "torch_fidelity_total_seconds": 18.0, "speedup_vs_torch_fidelity": 2.0, "fid_relative_difference": 0.0,
               "extraction_variants": [{"name": "cudnn.benchmark + TF32", "seconds": 2.0, "fid": 3.003,
                                        "fid_relative_difference": 1e-3}]}
    lines = performance_report.metrics_section({"metrics": metrics})
    assert "| cudnn.benchmark + TF32 | 2.00 | 4.00× | – | 3.003000 | 1.0e-03 |" in lines  # a run without warm-up
    metrics["extraction_variants"][0]["warmup_seconds"] = 41.0
    assert "| cudnn.benchmark + TF32 | 2.00 | 4.00× | 41.0 | 3.003000 | 1.0e-03 |" in \
        performance_report.metrics_section({"metrics": metrics})
    del metrics["extraction_variants"]  # results of earlier runs render as before
    assert not any("TF32" in line for line in performance_report.metrics_section({"metrics": metrics}))


@pytest.mark.filterwarnings("ignore:.*Disabling autocast")
def test_extraction_settings_hold_inside_their_variant_only():
    import metrics_speed
    import torch

    class Features(torch.nn.Module):  # stands in for torch-fidelity's network: returns a tuple of features
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return (self.conv(x).mean((2, 3)),)

    extractor = type("Extractor", (), {"model": Features()})()
    saved = torch.backends.cudnn.benchmark
    for name in ("channels_last + bf16 autocast", "channels_last + fp16 autocast"):
        with metrics_speed.extraction_settings(extractor, metrics_speed.EXTRACTION_VARIANTS[name]):
            assert extractor.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
            assert torch.backends.cudnn.benchmark
            (out,) = extractor.model(torch.randn(2, 3, 8, 8))
            assert out.dtype == torch.float32
        assert extractor.model.conv.weight.is_contiguous() and "forward" not in vars(extractor.model)
        assert torch.backends.cudnn.benchmark == saved
    network = extractor.model
    for name in ("channels_last + torch.compile + TF32", "channels_last + torch.compile + fp16 autocast"):
        with metrics_speed.extraction_settings(extractor, metrics_speed.EXTRACTION_VARIANTS[name]):
            assert extractor.model is not network and extractor.model._orig_mod is network  # compiled at first call
        assert extractor.model is network and "forward" not in vars(network)


def test_interval_seconds_time_each_metric_and_the_report_tables_them():
    import metrics_speed

    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(40, 6)), rng.normal(size=(50, 6))
    config = metrics_speed.SuiteConfig(kid_subset_size=10, kid_subsets=3, prc_k=3, resamples=4)
    seconds = metrics_speed.interval_seconds(gen, ref, config, throughput.torch.device("cpu"))
    assert list(seconds) == ["FID", "KID", "precision", "recall"] and all(s >= 0 for s in seconds.values())
    table = performance_report.interval_table({"n=50000": seconds | {"KID": 1.5}, "n=10000": seconds})
    assert table[3] == "| set | FID | KID | precision | recall |" and "| 1.50 |" in table[5]
    assert performance_report.interval_table({}) == []


def test_the_channels_last_sampling_variant_gives_the_same_images_with_nhwc_weights_and_inputs(one_torch_thread):
    """--sample-variants channels_last=true: NHWC weights and inputs, same images (to 1/255: convolution order)."""
    import sampling_speed
    import torch

    from diffbench.config import load_params
    from diffbench.generation import generate

    params = load_params(ROOT / "profiles" / "quick" / "params.yaml")
    params.raw["sampling"]["compile"] = False
    plain = sampling_speed.pipeline_model(params, "mnist", torch.device("cpu"))
    nhwc = sampling_speed.pipeline_model(params, "mnist", torch.device("cpu"), channels_last=True)
    convs = [m.weight for m in nhwc.net.modules()
             if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.weight.shape[-1] > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    settings, seeds = params.sampler_settings("ddim"), list(range(4))
    a = generate(plain, "ddim", settings, 4, seeds, 3.0, batch_size=4).images.astype(int)
    b = generate(nhwc, "ddim", settings, 4, seeds, 3.0, batch_size=4).images.astype(int)
    assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.99
    seen = []
    x = torch.randn(2, 3, 4, 4)
    out = sampling_speed.nhwc_inputs(lambda x, t, labels: (seen.append(x.is_contiguous(memory_format=torch.channels_last)), x)[1])(x, None)
    assert seen == [True] and torch.equal(out, x)


def test_a_variant_that_fails_is_reported_and_the_other_rows_still_run(monkeypatch, tmp_path):
    import sampling_speed

    def training_row(params, library, dataset, mode, args, profiles, variant=None):
        if variant:
            raise RuntimeError("force_layout: no CUDA here\nsecond line")
        return {"library": library, "dataset": dataset, "mode": mode, "variant": None, "parameters": 1e6,
                "forward_gflops_per_image": 1.0, "train_batch": 4, "train_images_per_s": 10.0,
                "train_tflops_per_second": None, "train_mfu": None, "startup_seconds": 1.0}

    def sampling_variant(*args, **kwargs):
        raise ValueError("no kernel for this lever")

    monkeypatch.setattr(throughput, "measure_training", training_row)
    monkeypatch.setattr(sampling_speed, "measure_variant", sampling_variant)
    out = tmp_path / "performance.json"
    throughput.main(["--smoke", "--parts", "training,sampling", "--datasets", "mnist", "--train-variants",
                     "force_layout=true", "--sample-variants", "coordinate_descent=true", "--out", str(out),
                     "--markdown", str(tmp_path / "performance.md")])
    results = json.loads(out.read_text())
    assert [r["variant"] for r in results["training"]["rows"]] == [None]
    assert results["training"]["failed_variants"] == [
        {"library": "diffbench", "dataset": "mnist", "mode": "eager", "variant": "force_layout=true",
         "error": "RuntimeError: force_layout: no CUDA here"}]
    (entry,) = results["sampling"]["datasets"]
    assert "variants" not in entry and entry["rows"][0]["run"] == "DDIM-50"
    assert entry["failed_variants"] == [{"variant": "coordinate_descent=true",
                                         "error": "ValueError: no kernel for this lever"}]
    markdown = (tmp_path / "performance.md").read_text()
    assert "- variant failed: diffbench mnist eager + force_layout=true: `RuntimeError: force_layout: no CUDA here`" in markdown
    assert "- variant failed: mnist DDIM-50 + coordinate_descent=true: `ValueError: no kernel for this lever`" in markdown


def test_the_ratio_names_the_diffusers_mode_it_beat_and_only_measured_modes_compete():
    rows = [{"library": "diffusers", "mode": "eager", "train_images_per_s": 3000.0},
            {"library": "diffusers", "mode": "compile", "train_images_per_s": 5000.0},
            {"library": "diffbench", "mode": "compile", "train_images_per_s": 9000.0}]
    assert performance_report.best_diffusers({"training": {"rows": rows}}, "train_images_per_s") == (5000.0, "compile")
    assert performance_report.best_diffusers({"training": {"rows": rows[:1]}}, "train_images_per_s") == (3000.0, "eager")
    target = performance_report.ratio_target("training", "≥ 1.5×", 6000.0, (5000.0, "compile"), 1.5)
    assert target.measured == "1.20× (6000 vs 5000 img/s, diffusers compile)" and target.met is False
    assert performance_report.ratio_target("training", "≥ 1.5×", 6000.0, None, 1.5).measured == "not measured"


def test_a_merged_report_merges_again_keeping_its_runs_and_row_commits(smoke, tmp_path):
    """The committed reports/performance.json is itself a merge: a new run is merged onto it."""
    results, _ = smoke
    paths = []
    for name, commit, parts in (("a", "a" * 40, ("training", "sampling")), ("b", "b" * 40, ("training",)),
                                ("c", "c" * 40, ("training", "sampling", "profile"))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"header": results["header"] | {"commit": commit, "command": f"run {name}"}}
                                        | {part: results[part] for part in parts}))
    (tmp_path / "ab.json").write_text(json.dumps(throughput.merged([str(paths[0]), str(paths[1])])))
    again = throughput.merged([str(tmp_path / "ab.json"), str(paths[2])])
    assert again == throughput.merged([str(path) for path in paths])
    assert [(run["commit"][0], run["parts"]) for run in again["header"]["runs"]] == [
        ("a", ["training"]), ("b", ["training"]), ("c", ["training", "sampling"])]
    assert {row["commit"][0] for row in again["training"]["rows"]} == {"a", "b", "c"}
    assert set(again["training"]["steps_by_run"]) == {"a" * 40, "b" * 40, "c" * 40}
    assert all(title.count("`ccccccc`") == 1 for title in again["profile"])
