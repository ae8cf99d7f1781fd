"""Metric evaluation time: N generated images against cached reference features, diffbench vs torch-fidelity.

Times, on one GPU, in one run: Inception features of the N images, then FID, KID and precision/recall
against the cached reference features — diffbench's device implementations (diffbench.metrics.fast)
beside torch-fidelity's own functions on the same features — then the half-sample intervals (B
resamples), the reference classifier's features, and CLIP image embeddings (a randomly initialised
ViT-B-32: speed only, no CLIP number is computed or printed). Images are real training images of a
prepared split (data/<dataset>/train.npz), the reference is the test split. Prints a table; --out
writes JSON. ``benchmarks/throughput.py --metrics-train ... --metrics-test ...`` runs the same ``measure``
for its metric-suite row.

    python benchmarks/metrics_speed.py --train data/cifar10-jpeg/train.npz --test data/cifar10-jpeg/test.npz
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from bench_common import result_and_seconds, seconds_of
from kernel_profile import profile_calls
from diffbench.data import load_split
from diffbench.metrics.fast import FidStatistic, KidStatistic, PrecisionRecallStatistic, reference_statistics
from diffbench.metrics.fidelity import fid_from_features, kid_from_features
from diffbench.metrics.inception import load_inception
from diffbench.metrics.intervals import half_samples
from diffbench.metrics.suite import SuiteConfig, fidelity_metrics

STAGE_N = 10000  # images per headline run (params sampling.n_samples): the set the score stage scores


def tile(images: np.ndarray, n: int) -> np.ndarray:
    """The first n images, repeating the split if it holds fewer."""
    return np.concatenate([images] * (-(-n // len(images))))[:n]


def torch_fidelity_prc(gen: np.ndarray, ref: np.ndarray, k: int, device: torch.device) -> tuple[float, float]:
    """torch-fidelity's precision/recall with its features on the GPU (its blocks go through the CPU)."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    out = prc_features_to_metric(torch.from_numpy(gen).to(device), torch.from_numpy(ref).to(device),
                                 prc_neighborhood=k, save_cpu_ram=True, verbose=False)
    return out["precision"], out["recall"]


def clip_embedding_rate(images: np.ndarray, device: torch.device, batch: int) -> float | None:
    """Images/s through a random-init open_clip ViT-B-32 image tower with diffbench's preprocessing."""
    try:
        import open_clip
    except ImportError:
        return None
    from diffbench.metrics.clip_score import ClipScorer

    model = open_clip.create_model("ViT-B-32", pretrained=None).to(device)
    scorer = ClipScorer(model, open_clip.get_tokenizer("ViT-B-32"), {}, str(device))

    def run():
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                scorer.model.encode_image(scorer.preprocess(images[start:start + batch]), normalize=True)

    _, seconds = result_and_seconds(run, device)
    return len(images) / seconds


# Settings of Inception feature extraction to measure (the pipeline extracts with PyTorch's defaults: cuDNN
# convolutions in TF32, NCHW, fp32, no autotuning). Measured on 2026-12-03 (reports/performance.md): cudnn.benchmark
# with TF32 off 21.5 s for 50k images, with TF32 11.2 s, the default 11.2 s.
EXTRACTION_VARIANTS = {
    "cudnn.benchmark + TF32": {"benchmark": True, "tf32": True},
    "channels_last + cudnn.benchmark + TF32": {"benchmark": True, "tf32": True, "channels_last": True},
    "channels_last + bf16 autocast": {"benchmark": True, "tf32": True, "channels_last": True, "autocast": "bf16"},
    # fp16 keeps 3 more mantissa bits than bf16 (whose FID moved 2.3e-3 relative on 2026-12-03, over the 1e-3 bar)
    "channels_last + fp16 autocast": {"benchmark": True, "tf32": True, "channels_last": True, "autocast": "fp16"},
    "channels_last + torch.compile + TF32": {"benchmark": True, "tf32": True, "channels_last": True, "compile": True},
    # measured 1.92x with TF32 (fd03ce9); fp16 autocast alone 1.39x, within 2.1e-6 of the default FID
    "channels_last + torch.compile + fp16 autocast": {"benchmark": True, "tf32": True, "channels_last": True,
                                                      "compile": True, "autocast": "fp16"},
}


@contextmanager
def extraction_settings(extractor, flags: dict) -> Iterator[None]:
    """Backend flags, the network's memory format, autocast and compile of one variant; everything restored
    after it."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.benchmark = flags["benchmark"]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = flags["tf32"]
    if flags.get("channels_last"):
        extractor.model.to(memory_format=torch.channels_last)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(flags.get("autocast", ""))
    if autocast:  # features come back in float32, as the pipeline's extraction returns them
        forward = extractor.model.forward
        extractor.model.forward = lambda *args: tuple(value.float() for value in forward(*args))
    network = extractor.model
    if flags.get("compile"):  # static shapes: every batch of the variant has the same size
        extractor.model = torch.compile(network, dynamic=False)
    try:
        with torch.autocast("cuda", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            yield
    finally:
        extractor.model = network
        if autocast:
            del extractor.model.forward  # the class's forward again
        extractor.model.to(memory_format=torch.contiguous_format)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def extraction_variants(extractor, gen_images: np.ndarray, ref_images: np.ndarray, batch: int, fid: float,
                        device: torch.device) -> list[dict]:
    """Seconds of the generated images' features under each of ``EXTRACTION_VARIANTS`` (CUDA only), and the FID
    from the variant's generated and reference features against the default path's ``fid``: a setting can
    become the default only where its FID stays within 1e-3 relative of the exact path's."""
    if device.type != "cuda":
        return []
    rows = []
    for name, flags in EXTRACTION_VARIANTS.items():
        with extraction_settings(extractor, flags):
            # warm-up: the autotuner's trials, the compile (a stage would pay it once per process)
            _, warmup = result_and_seconds(lambda: extractor.extract(gen_images[:batch], batch), device)
            ref = extractor.extract(ref_images, batch)["pool"]
            gen, seconds = result_and_seconds(lambda: extractor.extract(gen_images, batch), device)
        variant_fid = FidStatistic(gen["pool"], *reference_statistics(ref), device=device).fid()
        rows.append({"name": name, "seconds": seconds, "warmup_seconds": warmup, "fid": variant_fid,
                     "fid_relative_difference": abs(variant_fid - fid) / abs(fid)})
    return rows


def interval_seconds(gen: np.ndarray, ref: np.ndarray, config: SuiteConfig, device: torch.device) -> dict:
    """Seconds of each metric's B half-sample values, computed as ``fidelity_metrics`` computes them (the
    statistics built once beforehand): where the time of the suite's intervals goes."""
    subsets = half_samples(len(gen), config.resamples, config.seed)
    fid = FidStatistic(gen, *reference_statistics(ref), device=device)
    kid = KidStatistic(gen, ref, config.kid_subset_size, config.kid_subsets, config.seed, device)
    prc = PrecisionRecallStatistic(gen, ref, config.prc_k, device)
    parts = {"FID": lambda: fid.fid_many(subsets), "KID": lambda: kid.kid_many(subsets),
             "precision": lambda: prc.precision_many(subsets), "recall": lambda: prc.recall_many(subsets)}
    return {name: seconds_of(values, device) for name, values in parts.items()}


def extraction_profile(extractor, images: np.ndarray, batch: int, device: torch.device, calls: int = 3) -> dict:
    """Where the time of Inception feature extraction goes: ``calls`` batches of ``batch`` images through the
    pipeline's ``extract`` (upload, the network with its 299×299 resize, features back to the host), profiled
    (``kernel_profile.profile_calls``)."""
    return profile_calls(lambda: extractor.extract(images[:batch], batch), calls, device)


def measure(train: str, test: str, n: int = 50000, n_ref: int = 10000, batch: int = 500, resamples: int = 50,
            weights: str | None = None, classifier: str | None = None, profile: bool = False) -> dict:
    """Seconds of each part for ``n`` images of split ``train`` against ``n_ref`` of ``test``, both
    implementations' numbers, and the totals (benchmarks/throughput.py reports this as its metric row); with
    ``profile``, where the extraction's time goes (``extraction_profile``)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen_images = tile(load_split(train)[0], n)
    ref_images = load_split(test)[0][:n_ref]
    extractor = load_inception(weights, str(device))
    extractor.extract(gen_images[:batch], batch)  # warm-up (cuDNN autotune, allocations)

    t: dict[str, float] = {}
    ref, t["reference features (once, cached)"] = result_and_seconds(lambda: extractor.extract(ref_images, batch), device)
    gen, t["Inception features"] = result_and_seconds(lambda: extractor.extract(gen_images, batch), device)
    g, r = gen["pool"], ref["pool"]
    stats_ref = reference_statistics(r)
    fid, t["FID (diffbench)"] = result_and_seconds(lambda: FidStatistic(g, *stats_ref, device=device).fid(), device)
    kid, t["KID (diffbench)"] = result_and_seconds(lambda: KidStatistic(g, r, 1000, 100, device=device).kid(), device)
    prc_stat, t["precision/recall (diffbench)"] = result_and_seconds(lambda: PrecisionRecallStatistic(g, r, 3, device), device)
    prc = (prc_stat.precision(), prc_stat.recall())
    t["precision/recall (diffbench)"] += result_and_seconds(prc_stat.recall, device)[1]
    tf_fid, t["FID (torch-fidelity)"] = result_and_seconds(lambda: fid_from_features(g, r), device)
    tf_kid, t["KID (torch-fidelity)"] = result_and_seconds(lambda: kid_from_features(g, r, 1000, 100), device)
    tf_prc, t["precision/recall (torch-fidelity)"] = result_and_seconds(lambda: torch_fidelity_prc(g, r, 3, device), device)
    config = SuiteConfig(kid_subset_size=1000, kid_subsets=100, prc_k=3, resamples=resamples)
    suite, t[f"full suite with intervals (B={resamples})"] = result_and_seconds(
        lambda: fidelity_metrics(gen, ref, config, device), device)
    stage_n = min(n, STAGE_N)  # the score stage's set: its suite and where its intervals' time goes
    stage_gen = {"pool": g[:stage_n]}
    t[f"full suite with intervals (B={resamples}), n={stage_n}"] = seconds_of(
        lambda: fidelity_metrics(stage_gen, ref, config, device), device)
    intervals = {f"n={size}": interval_seconds(g[:size], r, config, device) for size in sorted({n, stage_n})}
    if classifier:
        from diffbench.classifier_features import load_classifier

        clf = load_classifier(classifier, device)
        _, t["classifier features"] = result_and_seconds(lambda: clf.extract(gen_images, batch), device)
    clip_rate = clip_embedding_rate(gen_images[:10000], device, batch)
    variants = extraction_variants(extractor, gen_images, ref_images, batch, fid, device)
    where = {"extraction_profile": extraction_profile(extractor, gen_images, batch, device)} if profile else {}

    ours = t["Inception features"] + t["FID (diffbench)"] + t["KID (diffbench)"] + t["precision/recall (diffbench)"]
    theirs = (t["Inception features"] + t["FID (torch-fidelity)"] + t["KID (torch-fidelity)"]
              + t["precision/recall (torch-fidelity)"])
    return {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "n": n, "n_ref": len(ref_images), "batch": batch,
        "seconds": t, "fid_kid_prc_total_seconds": ours, "torch_fidelity_total_seconds": theirs,
        "speedup_vs_torch_fidelity": theirs / ours,
        "agreement": {"fid": [fid, tf_fid], "kid": [kid[0], tf_kid[0]], "precision_recall": [list(prc), list(tf_prc)]},
        "fid_relative_difference": abs(fid - tf_fid) / abs(tf_fid),
        "suite": {k: suite[k] for k in ("fid", "fid_lo", "fid_hi", "precision", "precision_lo", "precision_hi")},
        "inception_images_per_second": n / t["Inception features"],
        "clip_images_per_second": clip_rate, "extraction_variants": variants, "interval_seconds": intervals,
    } | where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True, help="prepared split whose images play the generated set")
    parser.add_argument("--test", required=True, help="prepared split used as the reference")
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--n-ref", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=50)
    parser.add_argument("--weights", default=None, help="Inception weights (else $DIFFBENCH_INCEPTION_WEIGHTS)")
    parser.add_argument("--classifier", default=None, help="a classifier.pt to time its features too")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = measure(args.train, args.test, args.n, args.n_ref, args.batch, args.resamples, args.weights,
                     args.classifier)
    for name, seconds in result["seconds"].items():
        print(f"{name:45s} {seconds:8.2f} s")
    print(f"FID+KID+P/R of {args.n} images incl. features: diffbench {result['fid_kid_prc_total_seconds']:.1f} s, "
          f"torch-fidelity {result['torch_fidelity_total_seconds']:.1f} s "
          f"({result['speedup_vs_torch_fidelity']:.2f}x) on {result['gpu']}")
    print(json.dumps(result["agreement"]))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
