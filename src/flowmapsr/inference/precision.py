"""Network precision: ``fp32``, ``bf16``, or ``auto`` chosen per model and device.

Kept apart from the pipeline so that benchmarks and the CLI can resolve a precision without
importing the image API.
"""

from __future__ import annotations

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
#: ``auto`` (the default everywhere) resolves to one of PRECISIONS per model and device.
PRECISION_CHOICES = ("auto", *PRECISIONS)


def bf16_fast_on_cpu() -> bool:
    """Whether oneDNN has fast bf16 kernels on this CPU (AVX-512 BF16 or AMX).

    Without them PyTorch runs bf16 convolutions through a slow reference path: on the AVX2-only
    AMD EPYC of the development machine a 1-NFE upscale took ~55x longer in bf16 than in fp32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, pipe) -> str:
    """``auto`` → the model's ``cpu_precision`` on a CPU with fast bf16 kernels, else ``fp32``.

    Why per model: bf16 weights and activations cost each model a different amount of PSNR; the
    built-in model's cost was measured (model card) before its config said ``bf16``. Why not on
    GPUs: only the CPU path was measured; a GPU user asks for ``bf16`` explicitly.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(
            f"unknown precision '{precision}' (choose from {', '.join(PRECISION_CHOICES)})"
        )
    if precision != "auto":
        return precision
    if pipe.device.type == "cpu" and pipe.config.cpu_precision == "bf16" and bf16_fast_on_cpu():
        return "bf16"
    return "fp32"
