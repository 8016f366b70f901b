"""Compute device choice, mixed precision and CPU threads.

``resolve_device("auto")`` picks CUDA when present, then Apple's MPS, then the
CPU. Mixed precision: bfloat16 on CUDA GPUs that support it (no loss scaling
needed), float16 with a gradient scaler on older ones, and bfloat16 on CPUs with
native bfloat16 arithmetic (AVX512-BF16 or AMX: there it makes the 3D
convolutions of training about twice as fast). Other CPUs and MPS run in
float32.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "resolve_device",
    "available_devices",
    "amp_dtype",
    "cpu_native_bf16",
    "cpu_name",
    "device_label",
    "autocast_context",
    "configure_cpu_threads",
    "default_cpu_threads",
    "release_device_memory",
]

#: Upper bound on the default number of CPU threads (more rarely helps 3D convolutions).
MAX_DEFAULT_THREADS = 8


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1", "mps"]``."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def resolve_device(name: "str | torch.device | None" = "auto") -> "torch.device":
    """Turn a device name into a usable ``torch.device``.

    ``"auto"`` (or None) picks ``cuda`` when available, then ``mps``, then
    ``cpu``. ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"mps"`` are accepted when
    present; anything else raises ``ValueError`` listing what is available.
    """
    import torch

    if name is None:
        name = "auto"
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {name!r}")
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"unknown device {name!r}: use 'auto' or one of {available_devices()}"
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here; available: {available_devices()}")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found; "
                f"available: {available_devices()}"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {name!r} requested but MPS is not available here; available: {available_devices()}")
        return torch.device("mps")
    raise ValueError(f"unsupported device {name!r}: use 'auto' or one of {available_devices()}")


def _cpuinfo_field(name: str) -> str | None:
    """The value of the first ``name`` line of /proc/cpuinfo, or None (no such file or line)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith(name)), None)
    except OSError:
        return None


def cpu_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag)."""
    global _CPU_BF16
    if _CPU_BF16 is None:
        _CPU_BF16 = bool({"avx512_bf16", "amx_bf16"} & set((_cpuinfo_field("flags") or "").split()))
    return _CPU_BF16


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 9R14 96-Core Processor"), else its architecture."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def device_label(device: "torch.device") -> str:
    """The device in words, for benchmark reports: the GPU's name, or the CPU's with torch's thread count."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads, {cpu_name()})"


_CPU_BF16: bool | None = None


def amp_dtype(device: "torch.device | str") -> "torch.dtype | None":
    """The reduced precision dtype used by mixed precision on ``device``, or None (float32).

    bfloat16 on CUDA GPUs that support it, float16 on older ones, bfloat16 on
    CPUs with native bfloat16 (:func:`cpu_native_bf16`), None elsewhere.
    """
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_native_bf16() else None
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    with torch.cuda.device(device):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: "torch.device | str", enabled: bool = True) -> Any:
    """Mixed precision context (``torch.autocast`` with :func:`amp_dtype`), a no-op where that is None."""
    import torch

    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _physical_cores() -> int:
    """Distinct (socket, core) pairs in /proc/cpuinfo; 0 when unknown."""
    cores: set[tuple[str, str]] = set()
    socket = "0"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    socket = value.strip()
                elif key == "core id":
                    cores.add((socket, value.strip()))
    except OSError:
        return 0
    return len(cores)


def default_cpu_threads() -> int:
    """Threads for CPU work: the usable cores (physical ones when hyper-threaded), at most 8."""
    n = _usable_cpus()
    logical = os.cpu_count() or n
    physical = _physical_cores()
    if 0 < physical < logical and n == logical:
        n = physical
    return max(1, min(n, MAX_DEFAULT_THREADS))


def configure_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads (``n``, or :func:`default_cpu_threads`); returns the number set."""
    import torch

    if n is None:
        n = default_cpu_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of CPU threads must be a positive integer, got {n!r}")
    torch.set_num_threads(int(n))
    return int(n)


def release_device_memory(device: "torch.device | str | None" = None) -> None:
    """Collect garbage and return cached GPU memory to the driver (CUDA and MPS).

    On the CPU there is no cache to return and nothing is done: a full garbage
    collection there would only pause the caller (the GUI, when a run ends).
    """
    import torch

    kind = torch.device(device).type if device is not None else None
    if kind == "cpu":
        return
    gc.collect()
    if kind in (None, "cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if kind in (None, "mps") and _mps_available():
        with contextlib.suppress(Exception):
            torch.mps.empty_cache()
