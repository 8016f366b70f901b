"""Device choice, mixed precision and CPU threads."""

from __future__ import annotations

import io
import os

import pytest
import torch

from napari_dewedge.core import device as device_module
from napari_dewedge.core.device import (
    amp_dtype,
    autocast_context,
    available_devices,
    configure_cpu_threads,
    cpu_name,
    cpu_native_bf16,
    default_cpu_threads,
    device_label,
    release_device_memory,
    resolve_device,
)

from ..conftest import requires_cuda


def test_auto_prefers_cuda_then_cpu() -> None:
    device = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if "mps" in available_devices() else "cpu")
    assert device.type == expected
    assert resolve_device(None).type == expected


def test_cpu_and_normalised_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert "cpu" in available_devices()


@pytest.mark.parametrize("name", ["gpu0", "tpu", "cuda:x", ""])
def test_unknown_device_names_raise_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device(name)


def test_missing_cuda_device_raises() -> None:
    index = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"cuda:{index}"):
        resolve_device(f"cuda:{index}")


def test_non_string_device_raises() -> None:
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("native", [False, True])
def test_cpu_autocast_is_bfloat16_only_with_native_support(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(device_module, "_CPU_BF16", native)
    assert amp_dtype("cpu") == (torch.bfloat16 if native else None)
    a = torch.randn(4, 4)
    with autocast_context(torch.device("cpu")):
        out = a @ a
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    with autocast_context(torch.device("cpu"), enabled=False):
        assert (a @ a).dtype == torch.float32


def test_cpu_bfloat16_flag_comes_from_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(device_module, "_CPU_BF16", None)
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    assert cpu_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_device_label_names_the_cpu_model_and_threads(monkeypatch) -> None:
    lines = ["processor\t: 0\n", "model name\t: Example CPU 9000\n", "flags\t\t: fpu sse\n"]
    monkeypatch.setattr(device_module, "open", lambda *a, **k: io.StringIO("".join(lines)), raising=False)
    assert cpu_name() == "Example CPU 9000"
    assert device_label(torch.device("cpu")) == f"CPU ({torch.get_num_threads()} threads, Example CPU 9000)"


def test_cpu_name_falls_back_to_the_architecture(monkeypatch) -> None:
    def missing(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(device_module, "open", missing, raising=False)
    assert cpu_name()  # platform.processor() or platform.machine()


def test_configure_cpu_threads_sets_and_validates() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1) == 1
        assert torch.get_num_threads() == 1
        n = configure_cpu_threads()
        assert n == default_cpu_threads()
        assert 1 <= n <= 8
        with pytest.raises(ValueError, match="threads"):
            configure_cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def test_release_device_memory_runs_on_cpu() -> None:
    release_device_memory("cpu")
    release_device_memory(None)


@requires_cuda
def test_cuda_autocast_uses_reduced_precision() -> None:
    device = resolve_device("cuda")
    dtype = amp_dtype(device)
    assert dtype in (torch.bfloat16, torch.float16)
    a = torch.randn(8, 8, device=device)
    with autocast_context(device):
        out = a @ a
    assert out.dtype == dtype
    with autocast_context(device, enabled=False):
        assert (a @ a).dtype == torch.float32
