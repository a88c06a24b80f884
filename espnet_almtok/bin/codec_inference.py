"""Batched ALMTokenizer coding with ESPnet's codec-inference arguments.

Takes the arguments of ``python -m espnet2.bin.gan_codec_inference`` (the model is
loaded by ESPnet's own ``AudioCoding``), plus ``--window_size`` (frames per
token, i.e. the bitrate; default: the config's ``inference_window``). Unlike the
stock CLI it decodes batches (``--batch_size``): each item is coded exactly as
it would be alone.

Writes under ``--output_dir``:

* ``codec/codec.ark`` + ``codec/codec.scp``: the codes of each utterance as a
  Kaldi int32 vector (kaldiio) in time-major order, ``[t0 l1, t0 l2, t0 l3, t1 l1,
  ...]`` as ESPnet's SpeechLM lays codec tokens out (without its per-layer
  offsets); ``vector.reshape(-1, n_q).T`` gives the (n_q, T) codes;
* ``wav/<utt>.wav`` + ``wav/wav.scp``: the resynthesis, trimmed to the input length;
* ``decode_stats.json``: window, bitrate and token rate from ``meta_info()``,
  audio seconds, token steps, and encode/decode seconds (for real-time factors).

The scp files and ``decode_stats.json`` are written last, so a directory
without them is an unfinished run.
"""

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
import torch

from espnet_almtok import registration
from espnet_almtok.atomic import atomic_path


def get_parser():
    from espnet2.bin.gan_codec_inference import get_parser as espnet_parser
    from espnet2.utils.types import int_or_none

    parser = espnet_parser()
    parser.description = "ALMTokenizer batched codec inference"
    parser.add_argument(
        "--window_size",
        type=int_or_none,
        default=None,
        help="Frames per token (default: the training config's inference_window)",
    )
    return parser


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def inference(args) -> None:
    """Code every utterance of the data and write codes, wavs and stats."""
    from espnet2.bin.gan_codec_inference import AudioCoding
    from espnet2.tasks.gan_codec import GANCodecTask
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    from espnet_almtok.codec import ALMTokenizer
    from espnet_almtok.rates import bitrate

    if args.ngpu > 1:
        raise NotImplementedError(
            "only single-GPU decoding is supported; use --nj jobs"
        )
    device = "cuda" if args.ngpu >= 1 else "cpu"
    set_all_random_seed(args.seed)
    coder = AudioCoding.from_pretrained(
        model_tag=args.model_tag,
        train_config=args.train_config,
        model_file=args.model_file,
        dtype=args.dtype,
        device=device,
        seed=args.seed,
        always_fix_seed=args.always_fix_seed,
    )
    codec = coder.codec
    if not isinstance(codec, ALMTokenizer):
        raise ValueError(
            f"{args.train_config} is a '{type(codec).__name__}' model; this CLI codes "
            "ALMTokenizer models (use espnet2.bin.gan_codec_inference for others)"
        )
    window = codec.window(args.window_size)
    meta = codec.meta_info(window)

    loader = GANCodecTask.build_streaming_iterator(
        args.data_path_and_name_and_type,
        dtype=args.dtype,
        batch_size=args.batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=GANCodecTask.build_preprocess_fn(coder.train_args, False),
        collate_fn=GANCodecTask.build_collate_fn(coder.train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )
    out = Path(args.output_dir).resolve()  # scp files list absolute paths
    for done in ("codec/codec.scp", "wav/wav.scp", "decode_stats.json"):
        (out / done).unlink(missing_ok=True)
    (out / "codec").mkdir(parents=True, exist_ok=True)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    stats = dict(num_utts=0, audio_seconds=0.0, num_token_steps=0)
    seconds = dict(encode_seconds=0.0, decode_seconds=0.0)
    wav_rows = []
    with atomic_path(out / "codec/codec.scp") as scp_tmp, kaldiio.WriteHelper(
        f"ark,scp:{out}/codec/codec.ark,{scp_tmp}"
    ) as writer:
        for keys, batch in loader:
            audio = batch["audio"].to(device, getattr(torch, args.dtype))
            lengths = batch["audio_lengths"].to(device)
            with torch.no_grad():
                _sync(device)
                start = time.perf_counter()
                codes, n_tokens = codec.encode_with_lengths(audio, lengths, window)
                _sync(device)
                encoded = time.perf_counter()
                seconds["encode_seconds"] += encoded - start
                if not args.encode_only:
                    wav = codec.decode(codes, window, n_tokens)
                    _sync(device)
                    seconds["decode_seconds"] += time.perf_counter() - encoded
            for i, key in enumerate(keys):
                n, length = int(n_tokens[i]), int(lengths[i])
                writer[key] = (
                    codes[:, i, :n].t().reshape(-1).cpu().numpy().astype(np.int32)
                )
                if not args.encode_only:
                    path = (out / "wav" / f"{key}.wav").resolve()
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
    if args.encode_only:
        shutil.rmtree(out / "wav")
    else:
        (out / "wav/wav.scp").write_text("".join(wav_rows))
    summary = dict(
        window_size=window,
        **meta,
        bitrate=bitrate(meta),
        token_rate=meta["fs"] / meta["frame_shift"],
        **stats,
        **seconds,
        device=device,
    )
    (out / "decode_stats.json").write_text(json.dumps(summary, indent=2))


def main(cmd=None):
    registration.install()
    print(" ".join(sys.argv), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    inference(args)


if __name__ == "__main__":
    main()
