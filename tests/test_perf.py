import torch

from featinv import perf


def test_native_precision_is_true_for_fp32_and_cuda_and_a_bool_for_cpu_low_precision():
    assert perf.native_precision(torch.device("cpu"), "fp32")
    assert perf.native_precision(torch.device("cuda"), "fp16")  # cuDNN has fp16 kernels everywhere
    assert isinstance(perf.native_precision(torch.device("cpu"), "bf16"), bool)


def test_channels_last_is_for_the_cpu_and_can_be_switched_off(monkeypatch):
    assert perf.use_channels_last(torch.device("cpu")) and not perf.use_channels_last(torch.device("cuda"))
    monkeypatch.setenv("FEATINV_NO_CHANNELS_LAST", "1")
    assert not perf.use_channels_last(torch.device("cpu"))
