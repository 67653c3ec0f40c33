import itertools

import pytest
import torch

from featinv.nets.extractor import FeatureExtractor
from featinv.optim.objectives import (
    AlphaTerm,
    FeatureTerm,
    Objective,
    TVTerm,
    alpha_norm,
    normalized_feature_loss,
    total_variation,
)


def tv_by_loops(x: torch.Tensor, beta: float) -> float:
    """The paper's TV^beta, written out pixel by pixel (eps as in the implementation for beta<2)."""
    _, c, h, w = x.shape
    total, count = 0.0, 0
    for ch, i, j in itertools.product(range(c), range(h - 1), range(w - 1)):
        dx = x[0, ch, i, j + 1] - x[0, ch, i, j]
        dy = x[0, ch, i + 1, j] - x[0, ch, i, j]
        s = float(dx * dx + dy * dy)
        total += s if beta == 2 else (s + 1e-8) ** (beta / 2)
        count += 1
    return total / count


@pytest.mark.parametrize("beta", [2.0, 1.0, 1.5])
def test_tv_matches_the_formula(beta):
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert total_variation(x, beta).item() == pytest.approx(tv_by_loops(x, beta), rel=1e-9)


def test_tv_l1_is_mean_absolute_differences():
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    dx = sum(abs(float(x[0, c, i, j + 1] - x[0, c, i, j])) for c in range(3) for i in range(4) for j in range(4))
    dy = sum(abs(float(x[0, c, i + 1, j] - x[0, c, i, j])) for c in range(3) for i in range(3) for j in range(5))
    expected = dx / (3 * 4 * 4) + dy / (3 * 3 * 5)
    assert total_variation(x, kind="l1").item() == pytest.approx(expected, rel=1e-9)


def test_tv_is_zero_on_flat_images_and_per_image():
    flat = torch.full((1, 3, 8, 8), 0.3)
    noisy = torch.rand(1, 3, 8, 8)
    values = total_variation(torch.cat([flat, noisy]))
    assert values.shape == (2,) and values[0] == 0 and values[1] > 0


@pytest.mark.parametrize("beta,kind", [(2.0, "iso"), (1.0, "iso"), (1.5, "vector"), (2.0, "vector"), (2.0, "l1")])
def test_tv_gradient(beta, kind):
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: total_variation(t, beta, kind), (x,))


@pytest.mark.parametrize("beta,kind", [(2.0, "iso"), (1.0, "vector")])
def test_tv_written_out_gradient_equals_autograd_of_the_formula(beta, kind):
    """float32, channels-last, per-image weights: as the inversion loop calls it."""
    x = torch.rand(3, 3, 9, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weights = torch.tensor([0.5, 2.0, 0.0])
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    squared = dx.pow(2) + dy.pow(2)
    squared = squared.sum(1) if kind == "vector" else squared
    reference = (squared if beta == 2 else (squared + 1e-8).pow(beta / 2)).flatten(1).mean(1)
    (expected,) = torch.autograd.grad((weights * reference).sum(), x)
    value = total_variation(x, beta, kind)
    (grad,) = torch.autograd.grad((weights * value).sum(), x)
    torch.testing.assert_close(value, reference.detach())
    torch.testing.assert_close(grad, expected)


def test_alpha_norm_value_and_gradient():
    x = torch.rand(1, 3, 3, 3, dtype=torch.float64)
    expected = ((2 * x - 1).abs() ** 6).mean()
    assert alpha_norm(x, 6).item() == pytest.approx(expected.item(), rel=1e-12)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: alpha_norm(t, 6.0), (x,))


def test_normalized_feature_loss_exact_on_tiny_net(tiny_net):
    """Features computed by hand through the fixed 1x1 convs of TinyNet."""
    fx = FeatureExtractor(tiny_net, ["relu1"])
    x0 = torch.tensor([0.2, 0.6, 0.4]).view(1, 3, 1, 1)  # relu1 = [0.2, 2*0.6-0.4+0.5] = [0.2, 1.3]
    x = torch.tensor([0.5, 0.1, 0.3]).view(1, 3, 1, 1)  # relu1 = [0.5, 0.2-0.3+0.5] = [0.5, 0.4]
    phi0, phi = fx(x0)["relu1"], fx(x)["relu1"]
    assert phi0.flatten().tolist() == pytest.approx([0.2, 1.3])
    expected = ((0.5 - 0.2) ** 2 + (0.4 - 1.3) ** 2) / (0.2**2 + 1.3**2)
    assert normalized_feature_loss(phi, phi0).item() == pytest.approx(expected, rel=1e-6)
    assert normalized_feature_loss(phi0, phi0).item() == 0


def test_objective_weights_terms_and_reports_raw_values():
    x = torch.rand(2, 3, 6, 6)
    feats = {"a": torch.ones(2, 4)}
    obj = Objective(
        [
            FeatureTerm("a", torch.full((1, 4), 2.0), weight=3.0),
            TVTerm(weight=2.0),
            AlphaTerm(weight=torch.tensor([0.0, 1.0])),
        ]
    )
    total, parts = obj(x, feats)
    assert parts["feat_a"].tolist() == pytest.approx([0.25, 0.25])
    expected = 3 * parts["feat_a"] + 2 * parts["tv"] + torch.tensor([0.0, 1.0]) * parts["alpha"]
    assert torch.allclose(total, expected)
    assert obj.layers == ["a"]


def test_feature_loss_gradient_is_exact_and_finite_at_a_perfect_match():
    target = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: normalized_feature_loss(f, target), (x,))
    same = target.clone().requires_grad_(True)
    normalized_feature_loss(same, target).sum().backward()
    assert torch.equal(same.grad, torch.zeros_like(same.grad))
