"""Small adaptations that let ESPnet 202412's SpeechLM run on ALMTokenizer tokens.

``espnet==202412`` is the last release that ships SpeechLM, and parts of it do not
run as released. ``registration`` calls these hooks when ESPnet imports the module
concerned, so ESPnet's own CLIs (``espnet2.bin.speechlm_train`` and
``speechlm_inference``) work unchanged. Each hook checks for the defect it fixes and
does nothing on an ESPnet that lacks it.

* ``add_tasks``: 202412 defines only ``tts`` and ``plain_tts``. We add the tasks of
  later ESPnet releases, in their order (``plain_bpe_tts``, ``audiolm``, ``textlm``,
  ``asr``), with their task tokens in the next free task-identifier slots.
* ``fix_multi_task_dataset``: ``ESPnetMultiTaskDataset`` builds an undefined
  ``EspnetSpeechLMDataset``, and strips the task prefix from example ids with
  ``str.lstrip`` (a character set), which eats the start of ids such as ``slt_001``.
* ``fix_preprocessor``: ``SpeechLMPreprocessor`` calls typeguard 2's
  ``check_argument_types`` (gone in typeguard 4, which ESPnet now needs), and
  without ``bpe_encode_kwargs`` it calls ``typing.Dict()``, which raises.
* ``load_token_files_early``: ``SpeechLMTask`` reads ``--token_list`` and
  ``--token_bias`` files in ``build_model`` only, but stats collection builds no
  model, so its collate and preprocess functions got file names instead of lists.
* ``add_codec_output``: ``speechlm_inference`` calls a ``post_processor`` it never
  builds and has no ``--postprocessor`` options. We add the options and build a
  post-processor that decodes generated codec tokens with the codec given in
  ``--postprocessor_conf`` (loaded by ESPnet's ``CodecTokenizer``). Its
  ``torchaudio.save`` needs torchcodec in torchaudio >= 2.9; without torchcodec the
  wavs are written with soundfile. Its ``inference`` function is ``@typechecked``
  and assigns a ``Path`` to a ``str`` argument, which typeguard 4 refuses, so we
  compile it again from ESPnet's source without its decorator.
"""

import ast
import importlib.util
import inspect
import json
import logging
from typing import Optional

import numpy as np
import soundfile as sf
import torch
from typeguard import typechecked

from espnet_almtok.speechlm import tokens as speechlm_tokens

LATER_TASKS = {
    "plain_bpe_tts": (
        [("text", "text_bpe", "text")],
        [("wav.scp", "codec", "kaldi_ark")],
    ),
    "audiolm": ([], [("wav.scp", "codec", "kaldi_ark")]),
    "textlm": ([], [("text", "text_bpe", "text")]),
    "asr": ([("wav.scp", "codec", "kaldi_ark")], [("text", "text_bpe", "text")]),
}
TASK_SLOTS = range(64, 128)  # ESPnet's task-identifier slots in special_tokens


def add_tasks(definitions) -> None:
    """Add later ESPnet's SpeechLM tasks that ``definitions`` lacks."""
    for name, (encoder, decoder) in LATER_TASKS.items():
        if name not in definitions.tasks:
            definitions.tasks[name] = definitions.SpeechLMTask(
                encoder_entries=encoder,
                decoder_entries=decoder,
                target_entries=decoder,
            )
    tokens = definitions.special_tokens
    for slot, name in zip(TASK_SLOTS, definitions.tasks):
        token = f"<{name}_task>"
        if tokens[slot] != token:
            if token in tokens or not tokens[slot].startswith("<unused_token_"):
                raise RuntimeError(
                    f"cannot place {token}: slot {slot} is {tokens[slot]}"
                )
            tokens[slot] = token


def fix_multi_task_dataset(dataset) -> None:
    """Make ``ESPnetMultiTaskDataset`` build its sub-datasets and keep example ids."""
    multi = dataset.ESPnetMultiTaskDataset  # registration checked it is there
    if getattr(multi, "_almtok", False):
        return
    if not hasattr(dataset, "EspnetSpeechLMDataset"):
        dataset.EspnetSpeechLMDataset = dataset.ESPnetSpeechLMDataset

    def __getitem__(self, uid):
        sub = self.iterator_map[uid]
        prefix = sub.task + "_"
        _, data = sub[uid[len(prefix) :] if uid.startswith(prefix) else uid]
        return uid, data

    multi.__getitem__ = __getitem__
    multi._almtok = True


def fix_preprocessor(preprocessor) -> None:
    """Let ``SpeechLMPreprocessor`` run under typeguard 4 and without BPE kwargs."""
    cls = preprocessor.SpeechLMPreprocessor  # registration checked it is there
    if getattr(cls, "_almtok", False):
        return
    if not hasattr(preprocessor, "check_argument_types"):
        # Its only use is ``assert check_argument_types()`` in __call__.
        preprocessor.check_argument_types = lambda: True
    init = cls.__init__

    def __init__(self, *args, bpe_encode_kwargs=None, **kwargs):
        init(self, *args, bpe_encode_kwargs=bpe_encode_kwargs or {}, **kwargs)

    cls.__init__ = __init__
    cls._almtok = True


def load_token_files_early(speechlm) -> None:
    """Read the token list and bias files before the data functions need them."""
    task = speechlm.SpeechLMTask
    if getattr(task, "_almtok", False):
        return

    def load(args):
        if isinstance(args.token_list, str):
            with open(args.token_list, encoding="utf-8") as f:
                args.token_list = [line.rstrip("\n") for line in f]
        if isinstance(args.token_bias, str):
            with open(args.token_bias, encoding="utf-8") as f:
                args.token_bias = json.load(f)

    for name in ("build_collate_fn", "build_preprocess_fn"):
        build = getattr(task, name).__func__

        def loading(cls, args, train, _build=build):
            load(args)
            return _build(cls, args, train)

        setattr(task, name, classmethod(loading))
    task._almtok = True


class CodecPostProcessor:
    """Turn generated SpeechLM codec tokens (T, n_q) into a waveform (1, samples).

    The codec is loaded by ESPnet's own ``CodecTokenizer(codec_choice="ESPnet")``;
    the tokens are checked against it (streams, layer ranges) and, when given,
    against the ``codec_info.json`` of the training tokens (sample rate, window...).
    """

    @typechecked
    def __init__(
        self,
        train_config: str,
        model_file: str,
        codec_info: Optional[str] = None,
        device: str = "cpu",
    ):
        from espnet2.speechlm.tokenizer.codec_tokenizer import CodecTokenizer

        self.tokenizer = CodecTokenizer(
            codec_choice="ESPnet",
            codec_fs=0,  # unused for ESPnet codecs: the rate comes from meta_info
            device=device,
            config_path=train_config,
            checkpoint_path=model_file,
        )
        # CodecTokenizer decodes at the codec's default (inference) window; codecs
        # without windows code one token step per frame shift.
        codec = getattr(self.tokenizer.codec, "codec", self.tokenizer.codec)
        window = codec.window() if hasattr(codec, "window") else 1
        self.info = speechlm_tokens.codec_info(codec.meta_info(), window, model_file)
        if codec_info is not None:
            speechlm_tokens.check_info(
                speechlm_tokens.read_info(codec_info), self.info, codec_info
            )
        self.sample_rate = self.info["fs"]
        self.device = device

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        codes = speechlm_tokens.unflatten(
            tokens.cpu().numpy(),
            self.info["num_streams"],
            self.info["code_size"],
            "generated tokens",
        )
        codes = torch.from_numpy(codes).to(self.device)  # (T, n_q)
        return self.tokenizer.decode(codes.unsqueeze(0)).reshape(1, -1).float()


def _without_decorators(module, name: str):
    """The function ``name`` of ``module``, compiled from its source undecorated."""
    tree = ast.parse(inspect.getsource(module))
    (node,) = [n for n in tree.body if getattr(n, "name", None) == name]
    node.decorator_list = []
    code = compile(ast.Module([node], []), inspect.getsourcefile(module), "exec")
    namespace = {}
    exec(code, vars(module), namespace)
    return namespace[name]


class _SoundfileSave:
    """``torchaudio.save`` for (channels, samples) tensors, through soundfile."""

    def __getattr__(self, name):
        import torchaudio

        return getattr(torchaudio, name)

    @staticmethod
    def save(path, waveform: torch.Tensor, sample_rate: int) -> None:
        sf.write(str(path), np.asarray(waveform.T, dtype=np.float32), sample_rate)


def add_codec_output(inference) -> None:
    """Give ``speechlm_inference`` its post-processor options and a codec decoder."""
    speechlm = inference.SpeechLM
    if hasattr(speechlm, "post_processor") or getattr(speechlm, "_almtok", False):
        return
    from espnet2.utils.nested_dict_action import NestedDictAction

    get_parser = inference.get_parser

    def get_parser_with_postprocessor():
        parser = get_parser()
        if "--postprocessor" not in parser._option_string_actions:
            group = parser.add_argument_group("Postprocessor options (espnet_almtok)")
            group.add_argument(
                "--postprocessor",
                default="codec",
                help="Modality of the generated tokens (codec: decode to audio)",
            )
            group.add_argument(
                "--postprocessor_conf",
                action=NestedDictAction,
                default={},
                help="CodecPostProcessor arguments: train_config, model_file, "
                "codec_info, device",
            )
        return parser

    init = speechlm.__init__

    def __init__(self, *args, post_processor_conf: dict = {}, **kwargs):
        init(self, *args, post_processor_conf=post_processor_conf, **kwargs)
        conf = dict(post_processor_conf)
        if not conf:
            raise ValueError(
                "speechlm_inference needs --postprocessor_conf with train_config and "
                "model_file of the codec that decodes the generated tokens"
            )
        conf.setdefault("device", self.device)
        self.post_processor = CodecPostProcessor(**conf)
        logging.info(f"Generated tokens are decoded by {conf['model_file']}")

    speechlm.__init__ = __init__
    speechlm._almtok = True
    inference.get_parser = get_parser_with_postprocessor
    inference.inference = _without_decorators(inference, "inference")
    if importlib.util.find_spec("torchcodec") is None:
        inference.torchaudio = _SoundfileSave()
