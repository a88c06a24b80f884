"""Scale-keeping initialisation of the layers that carry the signal."""

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
        weight = torch.randn_like(m.weight) / math.sqrt(fan_in)
        with torch.no_grad():
            if parametrize.is_parametrized(m, "weight"):
                m.weight = weight  # weight norm: sets its magnitude and direction
            else:
                m.weight.copy_(weight)
            if m.bias is not None:
                m.bias.zero_()
    return module
