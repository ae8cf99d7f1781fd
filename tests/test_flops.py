from diffbench.flops import TRAINING_FLOPS_PER_FORWARD, forward_flops, utilisation
from tests.conftest import tiny_unet_config


def test_training_utilisation_is_three_forwards_per_image_against_the_named_gpus_peak():
    out = utilisation(1000.0, 2e9, "NVIDIA H200")
    assert out["tflops_per_second"] == TRAINING_FLOPS_PER_FORWARD * 2e9 * 1000 / 1e12 == 6.0
    assert out["mfu"] == 6e12 / 989e12 and out["peak_tflops"] == 989


def test_sampling_utilisation_counts_network_passes_and_a_given_peak_wins():
    out = utilisation(100.0, 2e9, "cpu (2 threads)", forwards_per_image=100, peak=1e12)
    assert out["tflops_per_second"] == 20.0 and out["mfu"] == 20.0 and out["peak_tflops"] == 1.0
    assert utilisation(100.0, 2e9, "cpu (2 threads)", forwards_per_image=100)["mfu"] is None  # no known peak
    assert utilisation(None, 2e9, "NVIDIA H200") == {"tflops_per_second": None, "mfu": None, "peak_tflops": None}


def test_forward_flops_grow_with_the_width():
    narrow, wide = tiny_unet_config(), tiny_unet_config()
    wide = type(wide)(**{**wide.__dict__, "channels": 32})
    assert forward_flops(wide) > 2 * forward_flops(narrow) > 0
