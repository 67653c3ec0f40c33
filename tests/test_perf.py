import pytest
import torch

from featinv.nets import perf


def test_native_precision_follows_the_cpus_own_instruction_sets(monkeypatch):
    """What decides whether a low-precision run warns that it is emulated (26x slower for fp16
    here): the CPU's flags, read independently from /proc/cpuinfo."""
    import pathlib

    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("reads the CPU's flags from Linux's /proc/cpuinfo")
    flags = set(cpuinfo.read_text().split())
    cpu = torch.device("cpu")
    assert perf.native_precision(cpu, "fp32")
    assert perf.native_precision(torch.device("cuda"), "fp16")  # cuDNN has fp16 kernels everywhere
    # oneDNN's bf16 kernels need AVX512 BW/VL/DQ (AVX512-BF16 adds the dot products); fp16's need
    # AVX512-FP16 or AMX-FP16
    assert perf.native_precision(cpu, "bf16") == ({"avx512bw", "avx512vl", "avx512dq"} <= flags)
    assert perf.native_precision(cpu, "fp16") == bool({"avx512_fp16", "amx_fp16"} & flags)

    def missing():
        raise RuntimeError("no oneDNN in this torch")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", missing)
    assert not perf.native_precision(cpu, "bf16")  # a torch without oneDNN: emulated, so it warns


def test_channels_last_is_for_the_cpu_and_can_be_switched_off(monkeypatch):
    assert perf.use_channels_last(torch.device("cpu")) and not perf.use_channels_last(torch.device("cuda"))
    monkeypatch.setenv("FEATINV_NO_CHANNELS_LAST", "1")
    assert not perf.use_channels_last(torch.device("cpu"))


def test_compile_step_is_opt_in_and_compile_failures_are_recognised():
    from torch._dynamo.exc import TorchDynamoException

    def step(x):
        return x * 2

    assert perf.compile_step(step, None) is step
    assert perf.is_compile_failure(TorchDynamoException("no compiler"))
    assert not perf.is_compile_failure(RuntimeError("something else"))
