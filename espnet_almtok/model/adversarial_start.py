"""A reconstruction-only warm-up for ESPnet's own GAN codecs, as ours have.

Our codecs train on their reconstruction losses alone, without running the
discriminator, until ``adversarial_start_step`` generator steps
(``gan_codec.GANCodec``); the small 16 kHz configs never reach it. ESPnet's
SoundStream and DAC run their discriminators from the first step: on one CPU
thread a step of the small configs costs them 3.8 and 2.6 s with the
discriminator, 0.6 and 0.7 s without. Compared at equal steps, the baselines
would be trained on losses the reference does not use, at several times the
cost. ``with_adversarial_start`` gives them the same warm-up, computing their
generator losses with ESPnet's own code.
"""

from typing import Any, Dict

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from torch import nn


class _NoDiscriminator(nn.Module):
    """Stands in for the discriminator in a warm-up generator turn: one
    constant output, which the turn weighs by zero."""

    def forward(self, x: torch.Tensor):
        return [[x.new_zeros(())]]


def with_adversarial_start(codec_class: type) -> type:
    """``codec_class`` (an ESPnet GAN codec) with ``adversarial_start_step``.

    The new keyword ``adversarial_start_step`` (default 0: ESPnet's codec as it
    is, state dict included) counts generator steps in a ``generator_steps``
    buffer. Before that step, the generator turn is ESPnet's with the
    adversarial and feature-matching losses left out and the discriminator
    not run, and the discriminator turn returns a zero loss that reaches no
    parameter, so ESPnet's trainer leaves the discriminator as it is.
    """

    def __init__(self, *args, adversarial_start_step: int = 0, **kwargs):
        if adversarial_start_step < 0:
            raise ValueError(
                f"adversarial_start_step must be >= 0, got {adversarial_start_step}"
            )
        codec_class.__init__(self, *args, **kwargs)
        self.adversarial_start_step = adversarial_start_step
        if adversarial_start_step > 0:
            self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))

    def warming_up(self, forward_generator: bool) -> bool:
        """Whether this turn's step comes before ``adversarial_start_step``."""
        if self.adversarial_start_step == 0:
            return False
        step = int(self.generator_steps)
        if self.training and not forward_generator:
            step -= 1  # the generator turn of this step has counted it
        return step < self.adversarial_start_step

    def forward(
        self, audio: torch.Tensor, forward_generator: bool = True, **kwargs
    ) -> Dict[str, Any]:
        warm_up = self.warming_up(forward_generator)
        if self.adversarial_start_step > 0 and forward_generator and self.training:
            self.generator_steps += 1
        if not warm_up:
            return codec_class.forward(self, audio, forward_generator, **kwargs)
        if not forward_generator:
            loss = torch.zeros((), device=audio.device, requires_grad=True)
            stats = dict(discriminator_loss=None, real_loss=None, fake_loss=None)
            loss, stats, weight = force_gatherable(
                (loss, stats, audio.size(0)), audio.device
            )
            return {"loss": loss, "stats": stats, "weight": weight, "optim_idx": 1}
        # ESPnet's generator turn, with the discriminator's terms weighed by
        # zero and the discriminator itself not run; no generator output is
        # left cached for a discriminator turn that will not use it.
        saved = self.discriminator, self.lambda_adv, self.use_feat_match_loss
        self.discriminator, self.lambda_adv = _NoDiscriminator(), 0.0
        self.use_feat_match_loss = False
        self._cache = None
        try:
            out = codec_class.forward(self, audio, True, **kwargs)
            # Reported as NaN, as our codecs do: not yet part of the loss.
            out["stats"].update(adv_loss=None, feat_match_loss=None)
            return out
        finally:
            self.discriminator, self.lambda_adv, self.use_feat_match_loss = saved
            self._cache = None

    name = f"{codec_class.__name__}AdversarialStart"
    doc = f"{codec_class.__name__} with ``with_adversarial_start``'s warm-up."
    namespace = dict(
        __init__=__init__,
        warming_up=warming_up,
        forward=forward,
        __doc__=doc,
        __module__=__name__,
    )
    return type(name, (codec_class,), namespace)
