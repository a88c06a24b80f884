"""Train ALMTokenizer with ESPnet's GAN codec trainer.

Same arguments as ``python -m espnet2.bin.gan_codec_train``; this entry only makes
sure the codec is registered even where the ``.pth`` hook is not processed.
"""

from espnet_almtok import registration


def main(cmd=None):
    registration.install()
    from espnet2.bin.gan_codec_train import main as espnet_main

    espnet_main(cmd)


if __name__ == "__main__":
    main()
