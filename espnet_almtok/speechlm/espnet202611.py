"""Our codec as the audio tokenizer of ESPnet 202611's SpeechLM.

ESPnet 202611 replaced the SpeechLM of 202412 with one that trains Hugging Face
LMs (``espnet2.speechlm.bin.train``, CUDA only) on ``text_to_audio`` and
``audio_to_text`` data. Its data are lhotse audio manifests and text files listed
in a dataset JSON; audio is tokenized on the fly, in the model's forward pass, by
``DiscreteAudioIO(codec_choice="ESPnet", codec_hf_model_tag=...)``. That tag goes
through ``AudioCoding.from_pretrained``, and a local archive written by ESPnet's
``espnet2.bin.pack codec`` loads offline. So nothing of ESPnet needs adapting:
recipe stage 13 runs ESPnet's own tools, and this module only fills in the
training config that names our codec and the LM.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Union

import yaml

from espnet_almtok.utils.atomic import atomic_path

PathLike = Union[str, Path]


def _section(config: Dict[str, Any], keys: str, source: PathLike) -> Dict[str, Any]:
    node = config
    for key in keys.split("."):
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            raise ValueError(
                f"{source}: no '{keys}' section (is it a 202611 SpeechLM config?)"
            )
        node = node[key]
    return node


def write_train_config(
    template: PathLike, codec_archive: PathLike, hf_model: str, out: PathLike
) -> Path:
    """Write ``template`` to ``out`` with our codec and the LM filled in.

    Args:
        template: A SpeechLM training config (conf/train_speechlm_espnet202611.yaml).
        codec_archive: Our codec packed by ``python -m espnet2.bin.pack codec``.
        hf_model: The LM and its tokenizer: a Hub tag, or a local directory offline.
        out: The config to write.

    Returns:
        ``out``. The order of ``multimodal_io`` is kept: it fixes the token ids.
    """
    codec_archive = Path(codec_archive)
    if not codec_archive.is_file():
        raise FileNotFoundError(
            f"{codec_archive}: no codec archive (espnet2.bin.pack codec)"
        )
    config = yaml.safe_load(Path(template).read_text(encoding="utf-8"))
    audio = _section(config, "multimodal_io.discrete_audio", template)
    if audio.get("codec_choice") != "ESPnet":
        raise ValueError(f"{template}: discrete_audio.codec_choice must be ESPnet")
    audio["codec_hf_model_tag"] = str(codec_archive.resolve())
    _section(config, "multimodal_io.text", template)["tokenizer_name"] = hf_model
    _section(config, "model", template)["model_hf_tag"] = hf_model
    # Training runs from another directory than the recipe's.
    trainer = _section(config, "trainer", template)
    if trainer.get("deepspeed_config"):
        trainer["deepspeed_config"] = str(Path(trainer["deepspeed_config"]).resolve())
    with atomic_path(Path(out)) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    logging.info(f"wrote {out}: codec {codec_archive}, LM {hf_model}")
    return Path(out)
