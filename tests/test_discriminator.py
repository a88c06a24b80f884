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
        assert d.hop_length == d.window_length // 4
    # ESPnet's own class ignores channel: 37 times the parameters.
    espnet = MultiScaleMultiPeriodMultiBandDiscriminator(
        fft_sizes=disc["fft_sizes"],
        sample_rate=16000,
        periods=disc["periods"],
        period_discriminator_params=disc["period_discriminator_params"],
        band_discriminator_params={**band, "sample_rate": 16000, "bands": d.bands},
    )
    ours = sum(p.numel() for p in model.discriminator.parameters())
    assert sum(p.numel() for p in espnet.parameters()) > 30 * ours


def test_espnet_defaults_give_espnet_discriminator():
    """At ESPnet's defaults the state dicts match: older checkpoints load."""
    bands = [(0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    kwargs = dict(fft_sizes=[512, 256], sample_rate=16000, periods=[2, 3])
    band = {"hop_factor": 0.25, "bands": bands, "channel": 32}
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
    before = new.state_dict()
    with caplog.at_level(logging.WARNING):
        new.load_state_dict(old.state_dict())
    assert "other shapes than the config builds" in caplog.text
    after = new.state_dict()
    # The period discriminator (same shapes) is loaded, the band one kept.
    mpd = [k for k in after if k.startswith("mpd.")]
    assert mpd and all(torch.equal(after[k], old.state_dict()[k]) for k in mpd)
    band = [k for k in after if k.startswith("discriminators.")]
    assert band and all(torch.equal(after[k], before[k]) for k in band)
