"""llama.cpp itself, once per process: its initialisation, its error log forwarded to ours
(logger ``tokint.llama``), and what this llama-cpp-python build is (its version, its GPU backend)."""
from __future__ import annotations

import ctypes
import logging
import threading

import llama_cpp

log = logging.getLogger("tokint.llama")

_LOG_ERROR = 4  # GGML_LOG_LEVEL_ERROR
_init_lock = threading.Lock()
_initialised = False


@llama_cpp.llama_log_callback
def _forward_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    if level == _LOG_ERROR:
        log.warning("%s", text.decode("utf-8", "replace").rstrip())


def _init_backend() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            llama_cpp.llama_log_set(_forward_log, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True


def versions() -> dict[str, str]:
    return {"llama_cpp_python": llama_cpp.__version__}


def gpu_offload_supported() -> bool:
    _init_backend()
    return bool(llama_cpp.llama_supports_gpu_offload())


_GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL", "CANN", "MUSA")


def accelerator() -> str:
    """The GPU backend this llama-cpp-python build was compiled with, or "CPU"."""
    _init_backend()
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    found = [name for name in _GPU_BACKENDS if f"{name.upper()} :" in info.upper() or f"{name.upper()}=" in info.upper()]
    return found[0] if found and gpu_offload_supported() else "CPU"

