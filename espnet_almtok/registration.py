"""Register ``codec: almtokenizer`` and ``codec: losatok`` with ESPnet, unasked,
and ``codec: soundstream_he`` and ``dac_he``: ESPnet's SoundStream and DAC with
the init our codecs use (``with_variance_preserving_init``) and our optional
reconstruction-only warm-up (``with_adversarial_start``).

ESPnet 202511 has no plugin entry point for codecs: the stock CLIs only accept
names in ``espnet2.tasks.gan_codec.codec_choices``. The ``espnet_almtok.pth``
file installed beside the package calls ``install()`` at interpreter start.
That only puts a small finder on ``sys.meta_path`` (nothing heavy is imported);
when a module named in ``HOOKS`` is first imported, the finder runs the module
and then its hook: ``register`` adds our codecs to the codec choices, and the
``espnet_almtok.speechlm.espnet202412`` hooks adapt ESPnet 202412's SpeechLM
(see there).

Each hook names the attribute it adapts, and runs only on a module that has
it, before the hook's own module (and torch) is imported: ESPnet 202611's new
``espnet2.bin.speechlm_inference`` has no ``SpeechLM`` and is left alone. A hook
that raises is reported as a warning: ESPnet must keep working without us.
"""

import importlib
import importlib.abc
import sys
import warnings

NAMES = ("almtokenizer", "losatok")
# ESPnet codecs registered again as f"{name}_he" with the variance-preserving init
# and the warm-up.
BASELINES = ("soundstream", "dac")
SPEECHLM_202412 = "espnet_almtok.speechlm.espnet202412"
# Module: (the attribute the hook adapts, the hook).
HOOKS = {
    "espnet2.tasks.gan_codec": ("codec_choices", "espnet_almtok.registration:register"),
    "espnet2.speechlm.definitions": ("tasks", f"{SPEECHLM_202412}:add_tasks"),
    "espnet2.train.dataset": (
        "ESPnetMultiTaskDataset",
        f"{SPEECHLM_202412}:fix_multi_task_dataset",
    ),
    "espnet2.train.preprocessor": (
        "SpeechLMPreprocessor",
        f"{SPEECHLM_202412}:fix_preprocessor",
    ),
    "espnet2.tasks.speechlm": (
        "SpeechLMTask",
        f"{SPEECHLM_202412}:load_token_files_early",
    ),
    "espnet2.bin.speechlm_inference": (
        "SpeechLM",
        f"{SPEECHLM_202412}:add_codec_output",
    ),
}


def check_chunk_length(args, codec) -> None:
    """Refuse training chunks that are not whole multiples of the hop."""
    if getattr(args, "iterator_type", None) != "chunk":
        return
    hop = codec.generator.hop
    for value in str(args.chunk_length).split(","):
        if "-" in value or int(value) % hop != 0:
            raise ValueError(
                f"chunk_length {args.chunk_length} is not a multiple of the "
                f"codec's hop {hop}; use fixed chunk lengths that "
                f"are multiples of {hop} samples"
            )


def register(module) -> None:
    """Add our codecs to ``module.codec_choices`` and check chunk lengths.

    A failure here must not break ESPnet for its other codecs: it becomes a
    warning, and ``codec: almtokenizer`` stays unknown.
    """
    try:
        from espnet_almtok.model.adversarial_start import with_adversarial_start
        from espnet_almtok.model.codec import ALMTokenizer
        from espnet_almtok.model.initialization import with_variance_preserving_init
        from espnet_almtok.model.losatok import LoSATok
    except Exception as e:  # noqa: BLE001 - any import failure, reported
        warnings.warn(f"espnet_almtok: cannot register codecs {NAMES}: {e!r}")
        return

    classes = module.codec_choices.classes
    for name, cls in zip(NAMES, (ALMTokenizer, LoSATok)):
        classes.setdefault(name, cls)
    for name in BASELINES:
        if name in classes:
            classes.setdefault(
                f"{name}_he",
                with_adversarial_start(with_variance_preserving_init(classes[name])),
            )
    task = module.GANCodecTask
    build_model = task.build_model.__func__
    if getattr(build_model, "_almtok", False):
        return

    def checked_build_model(cls, args):
        model = build_model(cls, args)
        if args.codec in NAMES:
            check_chunk_length(args, model.codec)
        return model

    checked_build_model._almtok = True
    task.build_model = classmethod(checked_build_model)


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        run_hook(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def run_hook(module) -> None:
    """Run the hook of ``module`` if it has what the hook adapts; a failing hook
    warns and leaves ESPnet as it is."""
    feature, hook = HOOKS[module.__name__]
    if not hasattr(module, feature):
        return
    target, _, func = hook.partition(":")
    try:
        getattr(importlib.import_module(target), func)(module)
    except Exception as e:  # noqa: BLE001 - any failure, reported
        warnings.warn(f"espnet_almtok: cannot adapt {module.__name__}: {e!r}")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Run the hooks of loaded modules now, the others on their first import."""
    for name in HOOKS:
        if name in sys.modules:
            run_hook(sys.modules[name])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
