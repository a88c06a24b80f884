"""ESPnet 202412's ``espnet2.bin.speechlm_inference``, adapted to decode with our codec.

Same arguments as ESPnet's CLI, plus ``--postprocessor_conf`` naming the codec that
turns generated tokens into audio (``train_config``, ``model_file`` and optionally
the ``codec_info`` of the training tokens): see ``espnet_almtok.speechlm.espnet202412``.
``python -m espnet2.bin.speechlm_inference`` runs ESPnet's file as ``__main__``,
which no import hook reaches, so the recipe starts ESPnet's ``main`` from here.
"""

from espnet_almtok import registration

registration.install()

from espnet2.bin.speechlm_inference import main  # noqa: E402 - after the hooks

if __name__ == "__main__":
    main()
