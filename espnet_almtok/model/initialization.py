"""Scale-keeping initialisation of the layers that carry the signal."""

import functools
import math

import torch
from torch import nn
from torch.nn.utils import parametrize


def init_variance_preserving(module: nn.Module) -> nn.Module:
    """Give every convolution and linear layer of ``module`` a scale-keeping init.

    PyTorch's default init draws weights of variance ``1 / (3 fan_in)`` and biases
    up to ``1 / sqrt(fan_in)``: each layer shrinks the input-dependent part of
    its output by about ``sqrt(3)`` and adds a constant of similar size. Through
    SEANet's twenty-odd layers the output no longer depends on the input at all
    (relative change 0.0000 for a 10 % louder input), so training can only fit
    one constant sound. Weights of variance ``1 / fan_in`` (He, with ELU close to
    linear at these levels) and zero biases keep the signal's share and scale.
    Weight-normed layers are set through their parametrization.
    """
    for m in module.modules():
        if isinstance(m, nn.ConvTranspose1d):
            # Each output sample sums kernel / stride taps of every input channel.
            fan_in = m.in_channels * m.kernel_size[0] / m.stride[0]
        elif isinstance(m, nn.Conv1d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0]
        elif isinstance(m, nn.Linear):
            fan_in = m.in_features
        else:
            continue
        if hasattr(m, "weight_g"):
            raise TypeError(
                f"{type(m).__name__} uses the deprecated torch.nn.utils.weight_norm, "
                "whose weight this init cannot set; use "
                "torch.nn.utils.parametrizations.weight_norm"
            )
        weight = torch.randn_like(m.weight) / math.sqrt(fan_in)
        with torch.no_grad():
            if parametrize.is_parametrized(m, "weight"):
                m.weight = weight  # weight norm: sets its magnitude and direction
            else:
                m.weight.copy_(weight)
            if m.bias is not None:
                m.bias.zero_()
    return module


# Speech at about -20 dBFS, the level of the training sets: the output level
# ``match_output_level`` gives a codec at init.
SPEECH_RMS = 0.1


def match_output_level(generator: nn.Module, rms: float = SPEECH_RMS) -> nn.Module:
    """Scale the last layer of ``generator.decoder`` so that white noise at
    ``rms`` comes out of ``decoder(encoder(.))`` at ``rms``.

    He weights keep each layer's scale, but a SEANet block adds its residual
    branch to its shortcut, and Snake adds a positive part: ESPnet's DAC
    decoder then starts 90 times louder than its input, and its mel loss grows.
    The quantizer is left out: it would take the probe for its k-means init.
    """
    last = [
        m
        for m in generator.decoder.modules()
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear))
    ][-1]
    probe = torch.randn(4, 1, 16000) * rms
    with torch.no_grad():
        out = generator.decoder(generator.encoder(probe))
        scale = rms / out.pow(2).mean().sqrt()
        if parametrize.is_parametrized(last, "weight"):
            last.weight = last.weight * scale
        else:
            last.weight.mul_(scale)
        if last.bias is not None:
            last.bias.mul_(scale)
    return generator


def with_variance_preserving_init(codec_class: type) -> type:
    """``codec_class`` (an ESPnet GAN codec) whose generator is given
    ``init_variance_preserving`` and ``match_output_level`` once built.

    ESPnet's SoundStream and DAC keep PyTorch's default init, under which their
    encoders' output hardly depends on the input (``local/encoder_signal_share.py``),
    and ``espnet2.tasks.gan_codec`` has no ``--init``. Registered as
    ``codec: soundstream_he`` and ``codec: dac_he``, this gives the baselines the
    init our codecs use; their discriminators keep ESPnet's.
    """

    @functools.wraps(codec_class.__init__)
    def __init__(self, *args, **kwargs):
        codec_class.__init__(self, *args, **kwargs)
        match_output_level(init_variance_preserving(self.generator))

    name = f"{codec_class.__name__}VariancePreserving"
    doc = f"{codec_class.__name__} with our init (``with_variance_preserving_init``)."
    namespace = dict(__init__=__init__, __doc__=doc, __module__=__name__)
    return type(name, (codec_class,), namespace)
