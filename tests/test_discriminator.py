import logging

import pytest
import torch
from conftest import ROOT, codec_conf
from espnet2.gan_codec.shared.discriminator.msmpmb_discriminator import (
    MultiScaleMultiPeriodMultiBandDiscriminator,
)

from espnet_almtok.model.codec import ALMTokenizer
from espnet_almtok.model.discriminator import MultiPeriodMultiBandDiscriminator

SMALL = ROOT / "conf/tuning/train_almtok_small16k_stage2.yaml"
BANDS = [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_band_discriminators_are_built_as_configured():
    conf = codec_conf(SMALL, random_codebooks_for_debugging=True)
    disc = conf["discriminator_params"]
    model = ALMTokenizer(**conf)
    band = disc["band_discriminator_params"]
    bands = model.discriminator.discriminators
    assert [d.window_length for d in bands] == disc["fft_sizes"]
    for d in bands:
        first = d.band_convs[0][0][0]  # WNConv2d: (conv, activation)
        assert first.out_channels == band["channel"] == 4
    # ESPnet's own class ignores channel: 37 times the parameters.
    espnet = MultiScaleMultiPeriodMultiBandDiscriminator(
        fft_sizes=disc["fft_sizes"],
        sample_rate=16000,
        periods=disc["periods"],
        period_discriminator_params=disc["period_discriminator_params"],
        band_discriminator_params={**band, "sample_rate": 16000, "bands": BANDS},
    )
    ours = sum(p.numel() for p in model.discriminator.parameters())
    assert sum(p.numel() for p in espnet.parameters()) > 30 * ours


def test_espnet_defaults_give_espnet_discriminator():
    """At ESPnet's defaults the state dicts match: older checkpoints load."""
    kwargs = dict(fft_sizes=[512, 256], sample_rate=16000, periods=[2, 3])
    band = {"hop_factor": 0.25, "bands": BANDS, "channel": 32}
    torch.manual_seed(0)
    espnet = MultiScaleMultiPeriodMultiBandDiscriminator(
        band_discriminator_params={**band, "sample_rate": 16000}, **kwargs
    )
    ours = MultiPeriodMultiBandDiscriminator(band_discriminator_params=band, **kwargs)
    assert shapes(ours) == shapes(espnet)
    ours.load_state_dict(espnet.state_dict())
    x = torch.randn(2, 1, 4000)
    for a, b in zip(ours(x), espnet(x)):
        for fa, fb in zip(a, b):
            torch.testing.assert_close(fa, fb)


def test_band_hop_factor_is_honoured():
    disc = MultiPeriodMultiBandDiscriminator(
        sample_rate=16000,
        fft_sizes=[512],
        band_discriminator_params={"hop_factor": 0.5},
    )
    assert disc.discriminators[0].hop_length == 256  # ESPnet's class: 128


def test_unknown_band_key_is_refused():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['chanel'\].*band"):
        MultiPeriodMultiBandDiscriminator(
            sample_rate=16000, band_discriminator_params={"chanel": 4}
        )


def test_checkpoint_with_espnet_sized_band_discriminators_loads(caplog):
    """Models trained before the fix have 32-channel band discriminators."""
    kwargs = dict(fft_sizes=[512], sample_rate=16000, periods=[2])
    old = MultiScaleMultiPeriodMultiBandDiscriminator(
        band_discriminator_params={
            "sample_rate": 16000,
            "bands": [(0.0, 0.5), (0.5, 1.0)],
        },
        **kwargs,
    )
    new = MultiPeriodMultiBandDiscriminator(
        band_discriminator_params={"channel": 4, "bands": [[0.0, 0.5], [0.5, 1.0]]},
        **kwargs,
    )
    before = {k: v.clone() for k, v in new.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        new.load_state_dict(old.state_dict())
    assert "other shapes than the config builds" in caplog.text
    old_state = old.state_dict()
    after = new.state_dict()
    # The period discriminator (same shapes) is loaded, the band one kept.
    mpd = [k for k in after if k.startswith("mpd.")]
    assert mpd and all(torch.equal(after[k], old_state[k]) for k in mpd)
    # Every band tensor is kept, those of the old one's shapes too (conv_post).
    band = [k for k in after if k.startswith("discriminators.")]
    assert band and all(torch.equal(after[k], before[k]) for k in band)
    assert any(after[k].shape == old_state[k].shape for k in band)
    # A mismatch outside the band discriminators still fails the load.
    narrow = MultiPeriodMultiBandDiscriminator(
        band_discriminator_params={"bands": [[0.0, 0.5], [0.5, 1.0]]},
        period_discriminator_params={"channels": 4},
        **kwargs,
    )
    with pytest.raises(RuntimeError, match="size mismatch for mpd"):
        narrow.load_state_dict(old_state)
