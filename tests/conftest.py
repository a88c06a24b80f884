import copy
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {s: ROOT / f"conf/tuning/train_almtok_tiny_stage{s}.yaml" for s in (1, 2)}


def codec_conf(path: Path, **quantizer_overrides) -> dict:
    """The ``codec_conf`` of a config file, with quantizer keys replaced."""
    conf = copy.deepcopy(yaml.safe_load(path.read_text())["codec_conf"])
    q = conf["generator_params"].get("quantizer_params")
    if q is not None and quantizer_overrides:
        q.pop("codebook_file", None)
        q.update(quantizer_overrides)
    return conf


def build_tiny(stage: int = 2, **gen_overrides):
    from espnet_almtok.model.codec import ALMTokenizer

    torch.manual_seed(0)
    conf = codec_conf(TINY[stage], random_codebooks_for_debugging=True)
    conf["generator_params"].update(gen_overrides)
    return ALMTokenizer(**conf)


@pytest.fixture
def tiny():
    return build_tiny()


@pytest.fixture
def speechlike():
    """A deterministic, speech-like test signal generator (harmonics + noise)."""

    def make(n: int, seed: int = 0) -> torch.Tensor:
        g = np.random.default_rng(seed)
        t = np.arange(n) / 16000
        f0 = 120 + 40 * np.sin(2 * np.pi * 1.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        x = sum(np.sin(k * phase) / k for k in range(1, 8))
        x = 0.2 * x * (
            0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
        ) + 0.01 * g.standard_normal(n)
        return torch.tensor(x, dtype=torch.float32)

    return make


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An ESPnet config.yaml and model file of the tiny stage-2 model."""
    from espnet2.tasks.gan_codec import GANCodecTask

    from espnet_almtok import registration

    registration.install()
    path = tmp_path_factory.mktemp("model")
    args = GANCodecTask.get_parser().parse_args([])
    vars(args).update(yaml.safe_load(TINY[2].read_text()))
    args.codec_conf = codec_conf(TINY[2], random_codebooks_for_debugging=True)
    torch.manual_seed(0)
    torch.save(GANCodecTask.build_model(args).state_dict(), path / "model.pth")
    (path / "config.yaml").write_text(yaml.safe_dump(vars(args)))
    return path


def flite(tmp_path: Path, voice: str, text: str, dtype: str = "float64") -> np.ndarray:
    """16 kHz speech of ``text`` in a flite ``voice``."""
    path = tmp_path / f"{voice}_{abs(hash(text))}.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    wav, fs = sf.read(path, dtype=dtype)
    assert fs == 16000
    return wav


def random_chunks(clips: Sequence[np.ndarray], n: int, size: int, rng) -> torch.Tensor:
    """(n, size) random chunks of the clips, as ESPnet's chunk iterator."""
    out = []
    for _ in range(n):
        x = clips[rng.integers(len(clips))]
        start = rng.integers(len(x) - size + 1)
        out.append(x[start : start + size])
    return torch.from_numpy(np.stack(out)).float()


def train_generator(
    codec, clips, config: Path, steps: int, size: int, seed: int = 0
) -> List[Dict[str, float]]:
    """The generator turn of ESPnet's GAN trainer, with the config's optimizer,
    on batches of 4 random chunks; returns each step's stats."""
    conf = yaml.safe_load(config.read_text())
    assert conf["optim"] == "adam"
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in codec.generator.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, **conf["optim_conf"])
    codec.train()
    history = []
    for _ in range(steps):
        out = codec(random_chunks(clips, 4, size, rng), forward_generator=True)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(v) for k, v in out["stats"].items() if v is not None})
    codec.eval()
    return history


def tiny_hf_lm(out: Path, text: Path) -> Path:
    """A local Hugging Face LM directory (a word-level tokenizer of ``text``, a
    Kaldi text file, and a one-layer Qwen3 config): what ESPnet 202611's SpeechLM
    takes as its LM and text tokenizer, offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config

    lines = [ln.split(maxsplit=1)[-1] for ln in text.read_text().splitlines()]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"])
    tok.train_from_iterator(lines, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>"
    )
    fast.save_pretrained(out)
    Qwen3Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        architectures=["Qwen3ForCausalLM"],
    ).save_pretrained(out)
    return out
