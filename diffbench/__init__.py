"""diffbench: reproducible DDPM/DDIM training, sampling and evaluation."""

__version__ = "0.1.0"
