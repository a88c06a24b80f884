"""Batched, chunked coding with any ESPnet GAN codec, with ESPnet's arguments.

Takes the arguments of ``python -m espnet2.bin.gan_codec_inference`` (the model is
loaded by ESPnet's own ``AudioCoding``: ALMTokenizer, SoundStream, DAC, ...),
plus ``--window_size`` (ALMTokenizer frames per token, i.e. the bitrate;
default: the config's ``inference_window``; an error for the fixed-rate codecs)
and ``--chunk_seconds``. Unlike the stock CLI it decodes batches
(``--batch_size``): each item is coded exactly as it would be alone
(``espnet_almtok.coding.ChunkedCoder``: ALMTokenizer batched, other codecs item
by item).

Input: one ``wav.scp`` as ``--data_path_and_name_and_type wav.scp,audio,sound``
(optionally restricted to, and ordered by, the keys of ``--key_file``).
Multi-channel files are averaged to mono and other sample rates are resampled to
the model's; both are logged as warnings naming the file. Long files are coded
in chunks of ``--chunk_seconds`` (rounded down to whole tokens; 0: the whole
file at once): each chunk is encoded and decoded on its own, which bounds memory
and makes a chunk's tokens independent of the audio after it. Files that are
missing from the scp, unreadable, empty or hold NaN/infinite samples are logged
as errors and skipped; the others are coded, and the job then exits with
status 1 and ``N of M inputs failed``.

Writes under ``--output_dir``:

* ``codec/codec.ark`` + ``codec/codec.scp``: the codes of each utterance as a
  Kaldi int32 vector (kaldiio) in time-major order, ``[t0 l1, t0 l2, t0 l3, t1 l1,
  ...]`` as ESPnet's SpeechLM lays codec tokens out (without its per-layer
  offsets); ``vector.reshape(-1, n_q).T`` gives the (n_q, T) codes;
* for a continuous codec (LoSATok) instead: ``latent/latent.ark`` +
  ``latent/latent.scp``, the latent of each utterance as a Kaldi float32
  matrix (N, D) (kaldiio; ``espnet2.fileio`` reads it as ``kaldi_ark``);
* ``wav/<utt>.wav`` + ``wav/wav.scp``: the resynthesis at the model's rate and
  the input's level (``ALMTokenizer.input_level_dbfs``), trimmed to the
  (resampled) input length;
* ``failed.txt``: the keys that were skipped, one a line (empty if none);
* ``decode_stats.json``: window (null for a fixed-rate codec), chunk seconds,
  bitrate (null for a continuous codec) and token rate from ``meta_info()``,
  audio seconds, token steps, encode/decode seconds (for real-time factors) and
  ``num_failed``.

The scp files, ``failed.txt`` and ``decode_stats.json`` are written under
temporary names and renamed once every input is done, ``decode_stats.json``
last; those of an earlier run are deleted first. So a job that fails or is
killed leaves none of them: a directory without them is an unfinished run.
"""

import json
import logging
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import kaldiio
import numpy as np
import soundfile as sf
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset
from typeguard import typechecked

from espnet_almtok.pretrained import load_codec
from espnet_almtok.utils.atomic import atomic_path
from espnet_almtok.utils.audio import load_audio


def read_inputs(
    data_path_and_name_and_type: List[Tuple[str, str, str]], key_file: Optional[str]
) -> Tuple[str, List[Tuple[str, Optional[str]]]]:
    """The wav.scp and its (key, path) pairs to code.

    Args:
        data_path_and_name_and_type: ESPnet's triples; one ``(wav.scp, audio,
            sound)`` is expected.
        key_file: Codes only the keys in its first column, in its order
            (default: every key of the scp, in scp order).

    Returns:
        The scp path, and the pairs; a key of ``key_file`` missing from the
        scp has path None.
    """
    from espnet2.fileio.read_text import read_2columns_text

    if len(data_path_and_name_and_type) != 1 or tuple(
        data_path_and_name_and_type[0][1:]
    ) != ("audio", "sound"):
        raise ValueError(
            "--data_path_and_name_and_type: expected one 'wav.scp,audio,sound', "
            f"got {data_path_and_name_and_type}"
        )
    scp = data_path_and_name_and_type[0][0]
    paths = read_2columns_text(scp)
    keys = list(paths)
    if key_file is not None:
        lines = Path(key_file).read_text(encoding="utf-8").splitlines()
        keys = [line.split(maxsplit=1)[0] for line in lines if line.strip()]
    return scp, [(key, paths.get(key)) for key in keys]


class AudioInputs(Dataset):
    """Mono waveforms at the model's rate; an error message for bad inputs.

    Args:
        inputs: (key, path) pairs; path None for a key missing from the scp.
        fs: The model's sample rate.
        scp: The scp the paths come from (for messages).
    """

    @typechecked
    def __init__(self, inputs: List[Tuple[str, Optional[str]]], fs: int, scp: str):
        self.inputs, self.fs, self.scp = inputs, fs, scp

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> Tuple[str, Optional[torch.Tensor], str]:
        """Read input ``i``.

        Returns:
            (key, waveform, ""), or (key, None, why) for an input that cannot
            be coded.
        """
        key, path = self.inputs[i]
        if path is None:
            return key, None, f"not in {self.scp}"
        try:
            return key, load_audio(path, self.fs, warn=True), ""
        except ValueError as e:
            return key, None, str(e)


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def inference(args) -> Dict[str, Any]:
    """Code every input and write codes, wavs, failed keys and stats.

    Returns:
        The contents of ``decode_stats.json``.
    """
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    from espnet_almtok.coding import ChunkedCoder
    from espnet_almtok.utils.rates import bitrate

    if args.ngpu > 1:
        raise NotImplementedError(
            "only single-GPU decoding is supported; use --nj jobs"
        )
    device = "cuda" if args.ngpu >= 1 else "cpu"
    set_all_random_seed(args.seed)
    codec = load_codec(
        args.train_config,
        device,
        model_file=args.model_file,
        model_tag=args.model_tag,
        dtype=args.dtype,
        seed=args.seed,
        always_fix_seed=args.always_fix_seed,
    )
    coder = ChunkedCoder(codec, args.window_size, args.chunk_seconds)
    meta = coder.meta
    scp, inputs = read_inputs(args.data_path_and_name_and_type, args.key_file)
    loader = DataLoader(
        AudioInputs(inputs, meta["fs"], scp),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=list,
    )

    out = Path(args.output_dir).resolve()  # scp files list absolute paths
    codes_name = "latent" if coder.continuous else "codec"
    listings = ["decode_stats.json", "failed.txt", f"{codes_name}/{codes_name}.scp"]
    if not args.encode_only:
        listings.append("wav/wav.scp")
    for name in listings:  # an earlier run's must not pass for this one's
        (out / name).unlink(missing_ok=True)
    (out / codes_name).mkdir(parents=True, exist_ok=True)
    if args.encode_only:
        shutil.rmtree(out / "wav", ignore_errors=True)
    else:
        (out / "wav").mkdir(exist_ok=True)
    stats = dict(num_utts=0, audio_seconds=0.0, num_token_steps=0)
    seconds = dict(encode_seconds=0.0, decode_seconds=0.0)
    wav_rows, failed = [], []
    with ExitStack() as stack:
        # Listings are renamed into place in reverse order of entering when the
        # block ends without error (decode_stats.json last), and never otherwise.
        tmp = {name: stack.enter_context(atomic_path(out / name)) for name in listings}
        writer = stack.enter_context(
            kaldiio.WriteHelper(
                f"ark,scp:{out}/{codes_name}/{codes_name}.ark,"
                f"{tmp[f'{codes_name}/{codes_name}.scp']}"
            )
        )
        for items in loader:
            for key, _, why in items:
                if why:
                    logging.error(f"{key}: {why}; skipped")
                    failed.append(key)
            good = [(key, x) for key, x, why in items if not why]
            if not good:
                continue
            keys = [key for key, _ in good]
            lengths = torch.tensor([len(x) for _, x in good], device=device)
            audio = pad_sequence([x for _, x in good], batch_first=True)
            audio = audio.to(device, getattr(torch, args.dtype))
            with torch.no_grad():
                _sync(device)
                start = time.perf_counter()
                codes, n_tokens = coder.encode(audio, lengths)
                _sync(device)
                encoded = time.perf_counter()
                seconds["encode_seconds"] += encoded - start
                if not args.encode_only:
                    wav = coder.decode(codes, n_tokens)
                    _sync(device)
                    seconds["decode_seconds"] += time.perf_counter() - encoded
                    wav = wav / coder.input_gains(audio, lengths)[:, None, None]
            for i, key in enumerate(keys):
                n, length = int(n_tokens[i]), int(lengths[i])
                item = codes[:, i, :n].t()
                writer[key] = (
                    item.float().cpu().numpy()
                    if coder.continuous
                    else item.reshape(-1).cpu().numpy().astype(np.int32)
                )
                if not args.encode_only:
                    path = out / "wav" / f"{key}.wav"
                    sf.write(
                        path,
                        wav[i, 0, :length].float().cpu().numpy(),
                        meta["fs"],
                        "PCM_16",
                    )
                    wav_rows.append(f"{key} {path}\n")
                stats["num_utts"] += 1
                stats["num_token_steps"] += n
                stats["audio_seconds"] += length / meta["fs"]
            logging.info(f"{stats['num_utts']} utterances coded")
        if not args.encode_only:
            tmp["wav/wav.scp"].write_text("".join(wav_rows))
        tmp["failed.txt"].write_text("".join(f"{key}\n" for key in failed))
        summary = dict(
            window_size=coder.window,
            chunk_seconds=coder.chunk / meta["fs"],
            **{"code_size_per_stream": None, **meta},
            bitrate=None if coder.continuous else bitrate(meta),
            token_rate=meta["fs"] / meta["frame_shift"],
            **stats,
            num_failed=len(failed),
            **seconds,
            device=device,
        )
        tmp["decode_stats.json"].write_text(json.dumps(summary, indent=2))
    return summary
