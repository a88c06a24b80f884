"""Content and speaker probes on frozen codec tokens.

Usage::

    python -m espnet_almtok.bin.probe \\
        --train_dir decode/train_w4 --train_data data/train_speech \\
        --test_dir decode/test_w4 --test_data data/test_speech \\
        --layer 1 --steps 2000 --out decode/test_w4/probe.json

``--train_dir`` and ``--test_dir`` are token dumps of one codec, as written by
``python -m espnet_almtok.bin.codec_inference ... --encode_only true``:
``codec/codec.scp`` (time-major int32 vectors, ``vector.reshape(-1, n_q).T``
gives the (n_q, T) codes) and ``decode_stats.json`` (``num_streams``,
``code_size_per_stream``, ``fs``, ``frame_shift``). Any codec that writes this
format can be probed, so codecs can be compared at equal bitrate. A continuous
codec (LoSATok) writes ``latent/latent.scp`` instead (float (T, D) matrices;
``decode_stats.json`` has ``continuous: true`` and ``latent_dim``): its probes
read the whole latent through a linear layer where tokens go through an
embedding, and ``--layer`` must be 1. The frames of a semantic encoder, as
``python -m espnet_almtok.bin.extract_features`` writes them (``feats.scp`` and
``info.json``), are read as a continuous dump too: the reference that a
tokenizer's probe results compare with. The data dirs are Kaldi dirs with
``text`` and ``utt2spk``.

Two small probes are trained from scratch on the tokens of RVQ layer
``--layer`` (or on the latent), each for exactly ``--steps`` optimizer steps:

* a CTC character recogniser (embedding, residual 1-D convolutions, a
  transposed convolution upsampling time by ``--upsample``, since a codec makes
  fewer tokens per second than speech has characters, then a linear layer over
  the characters of the normalised training text + blank), trained on the
  train set and scored on the test set (greedy decoding; character error rate
  = total edit distance / total reference characters; test characters outside
  the vocabulary are errors, since they can never be output);
* a closed-set speaker classifier (the same encoder, mean-pooled over time,
  then a linear layer): the utterances of both sets are pooled and every
  ``--spk_test_every``-th utterance of each speaker (in sorted id order) is
  held out to score it.

Utterances in a dump but missing from ``text`` / ``utt2spk`` are skipped (their
number is logged as a warning). With the same seed and device, the JSON written
to ``--out`` is identical from run to run (on CUDA, the CTC backward is not
bit-exact).
"""

import argparse
import json
import logging
import math
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import editdistance
import kaldiio
import numpy as np
import torch
import torch.nn.functional as F
from espnet2.fileio.read_text import read_2columns_text
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from typeguard import typechecked

from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.rates import bitrate

# Codec properties that the train and test dumps must share.
CODEC_KEYS = ("num_streams", "code_size_per_stream", "fs", "frame_shift")
LATENT_KEYS = ("latent_dim", "fs", "frame_shift")
# Training losses averaged for ``loss_first`` / ``loss_last``.
LOSS_WINDOW = 10


def normalize_text(text: str) -> str:
    """Lowercase; keep letters, digits, apostrophes and single spaces."""
    text = "".join(
        c for c in re.sub(r"\s+", " ", text.lower()) if c.isalnum() or c in " '"
    )
    return re.sub(" +", " ", text).strip()


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (ESPnet's ``editdistance``)."""
    return editdistance.eval(a, b)


def read_dump(dump_dir: str) -> Tuple[Dict, Dict[str, np.ndarray], str]:
    """The stats and the (n_q, T) codes, or (T, D) latents, of a dump.

    Returns:
        ``decode_stats.json``, codes (or latents) by utterance id, and the scp
        path.
    """
    stats_path = Path(dump_dir) / "decode_stats.json"
    features = Path(dump_dir) / "info.json"
    if features.is_file() and not stats_path.is_file():
        # A teacher's frames (extract_features): a reference for the latents.
        info = json.loads(features.read_text(encoding="utf-8"))
        stats = dict(
            continuous=True,
            latent_dim=info["dim"],
            fs=info["sample_rate"],
            frame_shift=info["frame_shift"],
        )
        scp = Path(dump_dir) / "feats.scp"
    elif not stats_path.is_file():
        raise FileNotFoundError(
            f"{stats_path} not found: not a codec token dump (nor {features}: "
            "not a feature dump)"
        )
    else:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        name = "latent" if stats.get("continuous") else "codec"
        scp = Path(dump_dir) / name / f"{name}.scp"
    continuous = bool(stats.get("continuous"))
    if not scp.is_file():
        raise FileNotFoundError(f"{scp} not found: not a codec token dump")
    missing = [k for k in codec_keys(stats) if k not in stats]
    if missing:
        raise ValueError(f"{stats_path} lacks {missing}")
    codes = {}
    for utt, vec in kaldiio.load_scp(str(scp)).items():
        vec = np.asarray(vec)
        if continuous:
            if vec.ndim != 2 or vec.shape[1] != stats["latent_dim"]:
                raise ValueError(
                    f"{scp}: {utt} has shape {vec.shape}, not (T, "
                    f"latent_dim={stats['latent_dim']})"
                )
            codes[utt] = vec
            continue
        n_q = stats["num_streams"]
        if vec.ndim != 1 or len(vec) % n_q:
            raise ValueError(
                f"{scp}: {utt} has shape {vec.shape}, not a flat vector of "
                f"num_streams={n_q} codes per step"
            )
        codes[utt] = vec.reshape(-1, n_q).T
    return stats, codes, str(scp)


def codec_keys(stats: Dict) -> Tuple[str, ...]:
    """The keys that describe a dump's codec: its latent or its codes."""
    return LATENT_KEYS if stats.get("continuous") else CODEC_KEYS


def check_same_codec(train: Dict, train_path: str, test: Dict, test_path: str):
    """Raise unless two dumps' stats describe the same codec."""
    keys = codec_keys(train)
    differ = {k: (train.get(k), test.get(k)) for k in keys if train[k] != test.get(k)}
    if differ:
        raise ValueError(
            f"{train_path} and {test_path} come from different codecs: "
            + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differ.items())
        )


def layer_tokens(
    codes: Dict[str, np.ndarray], layer: int, code_size: Optional[int], scp: str
) -> Dict[str, torch.Tensor]:
    """The tokens of one (1-based) layer as long tensors; with ``code_size``
    None, the (T, D) latents of a continuous codec as float tensors. Empty
    ones are skipped."""
    tokens, empty = {}, 0
    for utt, c in codes.items():
        x = c.astype(np.float32) if code_size is None else c[layer - 1]
        if len(x) == 0:
            empty += 1
            continue
        if code_size is None:
            tokens[utt] = torch.from_numpy(x)
            continue
        if x.min() < 0 or x.max() >= code_size:
            raise ValueError(
                f"{scp}: {utt} has layer-{layer} codes outside [0, {code_size})"
            )
        tokens[utt] = torch.from_numpy(x.astype(np.int64))
    if empty:
        logging.warning(f"{scp}: {empty} utterances without tokens skipped")
    return tokens


def join(
    tokens: Dict[str, torch.Tensor], labels: Dict[str, str], what: str, scp: str
) -> List[Tuple[str, torch.Tensor, str]]:
    """(utt, tokens, label) of the utterances in both, in sorted id order."""
    utts = sorted(set(tokens) & set(labels))
    if not utts:
        raise ValueError(f"no utterance of {scp} is in {what}")
    if len(utts) < len(tokens):
        logging.warning(
            f"{len(tokens) - len(utts)} of {len(tokens)} utterances of {scp} "
            f"are not in {what}: skipped"
        )
    return [(u, tokens[u], labels[u]) for u in utts]


class TokenEncoder(nn.Module):
    """Embedded tokens through residual 1-D convolutions; padding stays zero.

    Args:
        input_size: Number of token values, or the latent dimension.
        hidden: Width.
        continuous: Inputs are (T, D) float latents, which a linear layer
            embeds.
        num_layers: Convolution blocks.
        kernel_size: Odd kernel size.
    """

    @typechecked
    def __init__(
        self,
        input_size: int,
        hidden: int,
        continuous: bool = False,
        num_layers: int = 2,
        kernel_size: int = 5,
    ):
        super().__init__()
        embed = nn.Linear if continuous else nn.Embedding
        self.embed = embed(input_size, hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens (or (B, T, D) latents) and bool (B, T) valid mask to
        (B, T, hidden)."""
        mask = mask.unsqueeze(-1)
        x = self.embed(tokens) * mask
        for conv, norm in zip(self.convs, self.norms):
            y = F.gelu(conv((norm(x) * mask).transpose(1, 2)).transpose(1, 2))
            x = (x + y) * mask
        return x


class CTCProbe(nn.Module):
    """Token encoder, time upsampling, then character logits (blank = 0).

    Args:
        input_size: Number of token values, or the latent dimension.
        vocab_size: Characters + blank.
        hidden: Width.
        upsample: Output frames per token.
        continuous: Inputs are float latents (see ``TokenEncoder``).
    """

    @typechecked
    def __init__(
        self,
        input_size: int,
        vocab_size: int,
        hidden: int,
        upsample: int,
        continuous: bool = False,
    ):
        super().__init__()
        self.upsample = upsample
        self.encoder = TokenEncoder(input_size, hidden, continuous)
        self.up = nn.ConvTranspose1d(hidden, hidden, upsample, stride=upsample)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens to (B, T * upsample, vocab) log-probabilities."""
        x = self.encoder(tokens, mask).transpose(1, 2)
        x = F.gelu(self.up(x)).transpose(1, 2)
        return self.out(x).log_softmax(-1)


class SpeakerProbe(nn.Module):
    """Token encoder, mean over valid time, then speaker logits.

    Args:
        input_size: Number of token values, or the latent dimension.
        num_speakers: Classes.
        hidden: Width.
        continuous: Inputs are float latents (see ``TokenEncoder``).
    """

    @typechecked
    def __init__(
        self, input_size: int, num_speakers: int, hidden: int, continuous: bool = False
    ):
        super().__init__()
        self.encoder = TokenEncoder(input_size, hidden, continuous)
        self.out = nn.Linear(hidden, num_speakers)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens to (B, num_speakers) logits."""
        x = self.encoder(tokens, mask).sum(1) / mask.sum(1, keepdim=True)
        return self.out(x)


def batch(seqs: List[torch.Tensor], device: str) -> Tuple[torch.Tensor, ...]:
    """Padded (B, T) tokens, bool (B, T) mask and (B,) lengths on ``device``."""
    lengths = torch.tensor([len(s) for s in seqs])
    mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]
    return (
        pad_sequence(seqs, batch_first=True).to(device),
        mask.to(device),
        lengths.to(device),
    )


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, List[int]], torch.Tensor],
    num_items: int,
    args: argparse.Namespace,
    name: str,
) -> Tuple[float, float]:
    """Train for ``args.steps`` steps on seeded random batches of item indices.

    Returns:
        The mean training loss of the first and of the last ``LOSS_WINDOW`` steps.
    """
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    losses, order = [], []
    for step in range(1, args.steps + 1):
        if len(order) < min(args.batch_size, num_items):
            order += torch.randperm(num_items, generator=generator).tolist()
        items, order = order[: args.batch_size], order[args.batch_size :]
        loss = loss_fn(model, items)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} probe: loss {loss.item()} at step {step}")
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(loss.item())
        if step % args.log_every == 0 or step == args.steps:
            recent = losses[-args.log_every :]
            logging.info(
                f"{name} probe step {step}/{args.steps}: "
                f"loss {sum(recent) / len(recent):.4f}"
            )
    model.eval()
    first, last = losses[:LOSS_WINDOW], losses[-LOSS_WINDOW:]
    return sum(first) / len(first), sum(last) / len(last)


def chunks(n: int, size: int) -> Iterator[List[int]]:
    """Consecutive index lists of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield list(range(start, min(start + size, n)))


def ctc_probe(
    train_set: List[Tuple[str, torch.Tensor, str]],
    test_set: List[Tuple[str, torch.Tensor, str]],
    input_size: int,
    continuous: bool,
    args: argparse.Namespace,
) -> Dict:
    """Train the CTC character probe; its character error rates and losses."""
    vocab = sorted({c for _, _, text in train_set for c in text})
    index = {c: i + 1 for i, c in enumerate(vocab)}  # 0 is the blank
    torch.manual_seed(args.seed)
    model = CTCProbe(input_size, len(vocab) + 1, args.hidden, args.upsample, continuous)
    model.to(args.device)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    targets = [
        torch.tensor([index[c] for c in t], dtype=torch.long) for *_, t in train_set
    ]
    short = sum(
        len(x) * args.upsample < len(t) for (_, x, _), t in zip(train_set, targets)
    )
    if short:
        logging.warning(
            f"{short} of {len(train_set)} training utterances have more characters "
            f"than tokens x upsample ({args.upsample}): their CTC loss is zero"
        )

    def loss_fn(model: nn.Module, items: List[int]) -> torch.Tensor:
        tokens, mask, lengths = batch([train_set[i][1] for i in items], args.device)
        logp = model(tokens, mask).transpose(0, 1)  # (T', B, vocab)
        ys = [targets[i] for i in items]
        return ctc(
            logp,
            torch.cat(ys).to(args.device),
            lengths * args.upsample,
            torch.tensor([len(y) for y in ys], device=args.device),
        )

    loss_first, loss_last = train(model, loss_fn, len(train_set), args, "CTC")

    @torch.no_grad()
    def cer(data: List[Tuple[str, torch.Tensor, str]]) -> float:
        errors = total = 0
        for items in chunks(len(data), args.batch_size):
            tokens, mask, lengths = batch([data[i][1] for i in items], args.device)
            best = model(tokens, mask).argmax(-1).cpu()
            for row, n, i in zip(best, (lengths * args.upsample).tolist(), items):
                ids = torch.unique_consecutive(row[:n]).tolist()
                hyp = "".join(vocab[j - 1] for j in ids if j)
                errors += edit_distance(hyp, data[i][2])
                total += len(data[i][2])
        if not total:
            raise ValueError("the reference texts have no characters to score")
        return errors / total

    return dict(
        cer_test=cer(test_set),
        cer_train=cer(train_set),
        num_train_utts=len(train_set),
        num_test_utts=len(test_set),
        vocab="".join(vocab),
        loss_first=loss_first,
        loss_last=loss_last,
    )


def speaker_split(
    data: List[Tuple[str, torch.Tensor, str]], every: int
) -> Tuple[List, List]:
    """Each speaker's every ``every``-th utterance (sorted ids) to the test split."""
    by_speaker: Dict[str, List] = {}
    for item in sorted(data, key=lambda item: item[0]):
        by_speaker.setdefault(item[2], []).append(item)
    train_split, test_split = [], []
    for items in by_speaker.values():
        for i, item in enumerate(items):
            (test_split if i % every == every - 1 else train_split).append(item)
    return train_split, test_split


def speaker_probe(
    data: List[Tuple[str, torch.Tensor, str]],
    input_size: int,
    continuous: bool,
    args: argparse.Namespace,
) -> Dict:
    """Train the closed-set speaker probe; its accuracy and losses."""
    train_split, test_split = speaker_split(data, args.spk_test_every)
    if not train_split or not test_split:
        raise ValueError(
            f"the speaker split of {len(data)} utterances leaves "
            f"{len(train_split)} to train and {len(test_split)} to test; "
            "lower --spk_test_every"
        )
    speakers = sorted({spk for *_, spk in data})
    label = {spk: i for i, spk in enumerate(speakers)}
    torch.manual_seed(args.seed)
    model = SpeakerProbe(input_size, len(speakers), args.hidden, continuous)
    model.to(args.device)

    def loss_fn(model: nn.Module, items: List[int]) -> torch.Tensor:
        tokens, mask, _ = batch([train_split[i][1] for i in items], args.device)
        y = torch.tensor([label[train_split[i][2]] for i in items], device=args.device)
        return F.cross_entropy(model(tokens, mask), y)

    loss_first, loss_last = train(model, loss_fn, len(train_split), args, "speaker")
    correct = 0
    with torch.no_grad():
        for items in chunks(len(test_split), args.batch_size):
            tokens, mask, _ = batch([test_split[i][1] for i in items], args.device)
            best = model(tokens, mask).argmax(-1).cpu().tolist()
            correct += sum(b == label[test_split[i][2]] for b, i in zip(best, items))
    counts = [sum(spk == s for *_, spk in test_split) for s in speakers]
    return dict(
        accuracy=correct / len(test_split),
        chance=max(counts) / len(test_split),
        uniform_chance=1 / len(speakers),
        num_speakers=len(speakers),
        num_train_utts=len(train_split),
        num_test_utts=len(test_split),
        loss_first=loss_first,
        loss_last=loss_last,
    )


def probe(args: argparse.Namespace) -> Dict:
    """Run both probes and write ``args.out``; returns its contents."""
    train_stats, train_codes, train_scp = read_dump(args.train_dir)
    test_stats, test_codes, test_scp = read_dump(args.test_dir)
    check_same_codec(
        train_stats,
        str(Path(args.train_dir) / "decode_stats.json"),
        test_stats,
        str(Path(args.test_dir) / "decode_stats.json"),
    )
    continuous = bool(train_stats.get("continuous"))
    n_q = 1 if continuous else train_stats["num_streams"]
    if not 1 <= args.layer <= n_q:
        raise ValueError(
            f"--layer {args.layer}: the codec of {args.train_dir} has layers 1..{n_q}"
        )
    code_size = (
        None if continuous else int(train_stats["code_size_per_stream"][args.layer - 1])
    )
    input_size = train_stats["latent_dim"] if continuous else code_size
    token_rate = train_stats["fs"] / train_stats["frame_shift"]
    train_tokens = layer_tokens(train_codes, args.layer, code_size, train_scp)
    test_tokens = layer_tokens(test_codes, args.layer, code_size, test_scp)
    shared = sorted(set(train_tokens) & set(test_tokens))
    if shared:
        raise ValueError(
            f"{len(shared)} utterance ids (e.g. {shared[0]}) are in both "
            f"{train_scp} and {test_scp}"
        )

    ctc_sets, spk_data = [], []
    for tokens, scp, data_dir in (
        (train_tokens, train_scp, args.train_data),
        (test_tokens, test_scp, args.test_data),
    ):
        text = str(Path(data_dir) / "text")
        texts = {k: normalize_text(v) for k, v in read_2columns_text(text).items()}
        ctc_sets.append(join(tokens, texts, text, scp))
        utt2spk = str(Path(data_dir) / "utt2spk")
        spk_data += join(tokens, read_2columns_text(utt2spk), utt2spk, scp)

    result = dict(
        settings=dict(
            train_dir=args.train_dir,
            test_dir=args.test_dir,
            layer=args.layer,
            num_streams=n_q,
            code_size=code_size,
            latent_dim=train_stats.get("latent_dim"),
            token_rate=token_rate,
            layer_bitrate=None if continuous else token_rate * math.log2(code_size),
            codec_bitrate=None if continuous else bitrate(train_stats),
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            hidden=args.hidden,
            upsample=args.upsample,
            spk_test_every=args.spk_test_every,
        ),
        ctc=ctc_probe(*ctc_sets, input_size, continuous, args),
        speaker=speaker_probe(spk_data, input_size, continuous, args),
    )
    logging.info(
        f"layer {args.layer}: test CER {result['ctc']['cer_test']:.3f}, speaker "
        f"accuracy {result['speaker']['accuracy']:.3f} "
        f"(chance {result['speaker']['chance']:.3f})"
    )
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
