import pytest
import torch

from espnet_almtok.model.patchify import build_patchify

CONV = dict(n_filters=4, ratios=[4, 4, 2], causal=True)
LINEAR = dict(hop=32, num_layers=1, num_heads=2)
MEL = dict(hop=32, n_mels=8, kernel_size=2)
ISTFT = dict(width=8, ff_dim=16, num_layers=1)


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


def test_mel_patchify_shapes_and_refusals():
    patchify, unpatchify = build_patchify("mel", 16, MEL, "istft", ISTFT, 8000)
    assert patchify.hop == unpatchify.hop == 32
    assert patchify.n_fft == 4 * 32  # the default window
    x = torch.randn(2, 1, 10 * 32)
    e = patchify(x, torch.tensor([10, 10]))
    assert e.shape == (2, 10, 16)
    assert unpatchify(e, torch.tensor([10, 10])).shape == (2, 1, 320)
    # The filterbank follows the codec's rate: half the rate, other filters.
    other, _ = build_patchify("mel", 16, MEL, "istft", ISTFT, 16000)
    assert not torch.allclose(patchify.mel.mel_scale.fb, other.mel.mel_scale.fb)
    with pytest.raises(ValueError, match="no decoder of its own"):
        build_patchify("mel", 16, MEL)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['ratios'\]"):
        build_patchify("mel", 16, dict(MEL, ratios=[4, 8]), "istft", ISTFT)
    with pytest.raises(ValueError, match="n_fft .* at least hop"):
        build_patchify("mel", 16, dict(MEL, n_fft=16), "istft", ISTFT)
    # LoSATok's patches: 4 mel frames of hop / 4 per frame, one frame per hop.
    patches, _ = build_patchify("mel", 16, dict(MEL, patch_frames=4), "istft", ISTFT)
    assert patches.mel_hop == 8 and patches(x, None).shape == (2, 10, 16)
    assert patches.embed.kernel_size == (2 * 4,) and patches.embed.stride == (4,)
    with pytest.raises(ValueError, match="patch_frames .* must divide hop"):
        build_patchify("mel", 16, dict(MEL, patch_frames=5), "istft", ISTFT)


def test_mel_patchify_trains_only_its_embedding():
    """The STFT and filterbank are fixed buffers: stage 2 freezes nothing
    that stage 1 did not learn, and a model file holds the filterbank."""
    patchify, _ = build_patchify("mel", 16, MEL, "istft", ISTFT)
    trained = {n for n, p in patchify.named_parameters()}
    assert trained == {"embed.weight", "embed.bias"}
    assert "mel.mel_scale.fb" in patchify.state_dict()


@pytest.mark.parametrize(
    "kind,params",
    [("conv", CONV), ("mel", MEL), ("mel", dict(MEL, patch_frames=4, kernel_size=2))],
)
def test_patchify_is_causal(kind, params):
    """Padding after a clip cannot change its frames."""
    patchify, _ = build_patchify(kind, 16, params, "istft", ISTFT)
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
