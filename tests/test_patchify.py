import pytest
import torch

from espnet_almtok.patchify import build_patchify

CONV = dict(n_filters=4, ratios=[4, 4, 2], causal=True)
LINEAR = dict(hop=32, num_layers=1, num_heads=2)


@pytest.mark.parametrize("kind,params", [("conv", CONV), ("linear", LINEAR)])
def test_frames_and_waveform_shapes(kind, params):
    patchify, unpatchify = build_patchify(kind, 16, params)
    assert patchify.hop == unpatchify.hop == 32
    x = torch.randn(2, 1, 10 * 32)
    lengths = torch.tensor([10, 10])
    e = patchify(x, lengths)
    assert e.shape == (2, 10, 16)
    assert unpatchify(e, lengths).shape == (2, 1, 320)


def test_istft_unpatchify_shapes_and_refusals():
    patchify, unpatchify = build_patchify(
        "conv", 16, CONV, "istft", dict(width=8, ff_dim=16, num_layers=1)
    )
    assert unpatchify.hop == patchify.hop == 32
    e = torch.randn(2, 10, 16)
    assert unpatchify(e, torch.tensor([10, 10])).shape == (2, 1, 320)
    with pytest.raises(ValueError, match="unknown unpatchify kind 'hifigan'"):
        build_patchify("conv", 16, CONV, "hifigan")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        build_patchify("conv", 16, CONV, "istft", dict(depth=2))
    with pytest.raises(ValueError, match="needs unpatchify_kind: istft"):
        build_patchify("conv", 16, CONV, None, dict(width=8))


def test_conv_patchify_is_causal():
    """Padding after a clip cannot change its frames."""
    patchify, _ = build_patchify("conv", 16, CONV)
    x = torch.randn(1, 1, 320)
    y = x.clone()
    y[..., 160:] = torch.randn(160)
    ex, ey = patchify(x, None), patchify(y, None)
    assert torch.allclose(ex[:, :5], ey[:, :5], atol=1e-6)
    assert not torch.allclose(ex[:, 5:], ey[:, 5:])


def test_linear_patchify_masks_padding():
    patchify, _ = build_patchify("linear", 16, LINEAR)
    patchify.eval()
    x = torch.randn(1, 1, 320)
    padded = torch.cat([x, torch.randn(1, 1, 96)], dim=-1)
    e1 = patchify(x, torch.tensor([10]))
    e2 = patchify(padded, torch.tensor([10]))
    assert torch.allclose(e1, e2[:, :10], atol=1e-5)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown patchify kind 'fft'"):
        build_patchify("fft", 16, {})
