import torch

from featinv.nets import perf


def test_native_precision_is_true_for_fp32_and_cuda_and_a_bool_for_cpu_low_precision():
    assert perf.native_precision(torch.device("cpu"), "fp32")
    assert perf.native_precision(torch.device("cuda"), "fp16")  # cuDNN has fp16 kernels everywhere
    assert isinstance(perf.native_precision(torch.device("cpu"), "bf16"), bool)


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
