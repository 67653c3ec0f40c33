import pytest
import torch

from featinv.errors import ConfigError
from featinv.nets.preprocess import PRESETS, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preprocess_is_the_documented_affine_map_with_its_gradient(name):
    pre = PRESETS[name]
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    expected = ((x.flip(1) if pre.bgr else x) * pre.scale - mean) / std
    out = pre(x)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-4 * pre.scale)
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad, expected_grad)


def test_centred_space_and_pixel_norm_bound():
    caffe = PRESETS["caffe"]
    x = torch.rand(1, 3, 4, 4)
    centred = caffe.centred(x)
    assert torch.allclose(centred[:, 0], x[:, 2] * 255 - 103.939, atol=1e-4)  # BGR, 0-255, mean gone
    bounded = caffe.bound_pixel_norm(x, 50.0)
    assert caffe.centred(bounded).norm(dim=1).max() <= 50.0 + 1e-3


def test_unknown_preset_names_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'caffe'"):
        preset("cafe")
