"""Dump a data set as ESPnet SpeechLM data with ALMTokenizer codec tokens.

Encodes every utterance of ``--wav_scp`` with the codec (batched, each item coded
as it would be alone), stores the tokens in SpeechLM's layout (time-major, each
layer shifted by ``layer * code_size``; see ``espnet_almtok.speechlm.tokens``),
and writes the index files, token lists and one ``data.json`` per ``--tasks``
entry (layout: ``espnet_almtok.speechlm.data``). The set is built in a temporary
directory and renamed to ``--out_dir`` when complete, so a failed run leaves no
set that looks finished.

Audio must already be at the codec's sample rate (the recipe's stage 2 formats
it): a file at another rate is refused, naming the file.
"""

import logging
import shutil
import time
from pathlib import Path

import kaldiio
import soundfile as sf
import torch

from espnet_almtok import registration
from espnet_almtok.speechlm import data as speechlm_data
from espnet_almtok.speechlm import tokens as speechlm_tokens


def load_codec(train_config: str, model_file: str, device: str):
    """The codec, loaded the way ESPnet's ``CodecTokenizer`` loads it."""
    registration.install()
    from espnet2.tasks.gan_codec import GANCodecTask

    model, _ = GANCodecTask.build_model_from_file(train_config, model_file, device)
    return model.codec.eval()


def audio_frames(path: str, fs: int) -> int:
    """Samples in ``path``; unreadable files and other rates are refused by name."""
    try:
        info = sf.info(path)
    except RuntimeError as e:  # soundfile's errors are RuntimeErrors
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    if info.samplerate != fs:
        raise ValueError(
            f"{path} is at {info.samplerate} Hz but the codec expects {fs} Hz; format "
            "the audio first (the recipe's stage 2) or use a codec trained at that rate"
        )
    return info.frames


@torch.no_grad()
def encode_all(codec, wavs, window: int, batch_size: int, device: str, log_every: int):
    """Yield (utt, codes (T, n_q)) for ``wavs`` {utt: path}, longest first."""
    from espnet_almtok.utils.audio import load_audio

    fs = codec.meta_info()["fs"]
    frames = {u: audio_frames(path, fs) for u, path in wavs.items()}  # all, up front
    utts = sorted(wavs, key=lambda u: -frames[u])
    done, start = 0, time.perf_counter()
    for i in range(0, len(utts), batch_size):
        batch = utts[i : i + batch_size]
        audio = [load_audio(wavs[u], fs).numpy() for u in batch]
        lengths = torch.tensor([len(a) for a in audio])
        x = torch.zeros(len(batch), int(lengths.max()))
        for b, a in enumerate(audio):
            x[b, : len(a)] = torch.from_numpy(a)
        codes, counts = codec.encode_with_lengths(
            x.to(device), lengths.to(device), window
        )
        for b, utt in enumerate(batch):
            yield utt, codes[:, b, : counts[b]].T.cpu().numpy()
        done += len(batch)
        if log_every and (done // log_every > (done - len(batch)) // log_every):
            logging.info(
                f"encoded {done}/{len(utts)} utterances "
                f"({time.perf_counter() - start:.1f} s)"
            )


def text_vocabulary(modality: str, texts, g2p: str, bpemodel: str):
    """Tokens of ``texts`` for ``g2p``, or the SentencePiece model's pieces."""
    if modality == "text_bpe":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=bpemodel)
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    from espnet2.text.build_tokenizer import build_tokenizer

    tokenizer = build_tokenizer("phn", g2p_type=g2p)
    return sorted({t for text in texts for t in tokenizer.text2tokens(text)})


def write_set(tmp: Path, out: Path, args, index: dict, utts: list, codec, info):
    """Write the set into ``tmp``; its paths name ``out``, where it will be moved."""
    wavs = {u: index["wav.scp"][u] for u in utts}
    ark, scp = tmp / "codes.ark", tmp / "codes.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt, codes in encode_all(
            codec,
            wavs,
            info["window_size"],
            args.batch_size,
            args.device,
            args.log_every,
        ):
            writer(utt, speechlm_tokens.flatten(codes, info["code_size"]))
    # Point the scp at the ark's final place (valid once the directory is renamed).
    rows = speechlm_data.read_index(scp)
    scp.unlink()
    final_ark = str(out / "codes.ark")
    speechlm_data.write_lines(
        tmp / "index_files/wav.scp",
        (f"{u} {rows[u].replace(str(ark), final_ark, 1)}" for u in utts),
    )
    for name in ("text", "utt2spk"):
        if name in index:
            speechlm_data.write_lines(
                tmp / "index_files" / name, (f"{u} {index[name][u]}" for u in utts)
            )
    vocabularies = {
        "codec": speechlm_tokens.token_list(info["num_streams"], info["code_size"])
    }
    for modality in speechlm_data.modalities(args.tasks):
        if modality != "codec":
            texts = (index["text"][u] for u in utts)
            vocabularies[modality] = text_vocabulary(
                modality, texts, args.g2p, args.bpemodel
            )
    for modality, tokens in vocabularies.items():
        speechlm_data.write_lines(
            tmp / "token_lists" / f"{modality}_token_list", tokens
        )
    for task in args.tasks:
        (tmp / task).mkdir()
        speechlm_data.write_json(
            tmp / task / "data.json", speechlm_data.data_json(out, task, utts)
        )
        # ESPnet's multi-task ids: the key files of stats collection and training.
        speechlm_data.write_lines(
            tmp / task / "example_list", (f"{task}_{u}" for u in utts)
        )


def dump(args) -> None:
    need = {
        name for task in args.tasks for name, _, _ in speechlm_data.TASK_ENTRIES[task]
    }
    if "text_bpe" in speechlm_data.modalities(args.tasks) and not args.bpemodel:
        raise ValueError("the asr task needs --bpemodel (see speechlm_vocab bpe)")
    index = {"wav.scp": speechlm_data.read_index(args.wav_scp)}
    for name, path in (("text", args.text), ("utt2spk", args.utt2spk)):
        if name in need:
            if not path:
                raise ValueError(f"tasks {args.tasks} need --{name}")
            index[name] = speechlm_data.read_index(path)
    utts = [u for u in index["wav.scp"] if all(u in rows for rows in index.values())]
    if not utts:
        raise ValueError(f"no utterance of {args.wav_scp} has all of {sorted(need)}")
    if len(utts) < len(index["wav.scp"]):
        logging.warning(
            f"{len(index['wav.scp']) - len(utts)} of {len(index['wav.scp'])} "
            f"utterances lack one of {sorted(index)} and are left out"
        )

    codec = load_codec(args.train_config, args.model_file, args.device)
    window = codec.window(args.window_size)
    info = speechlm_tokens.codec_info(codec.meta_info(window), window, args.model_file)
    out = args.out_dir.resolve()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "index_files").mkdir(parents=True)
    (tmp / "token_lists").mkdir()
    try:
        write_set(tmp, out, args, index, utts, codec, info)
        speechlm_tokens.write_info(tmp / "codec_info.json", info)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-written set left behind
        raise
    logging.info(
        f"{out}: {len(utts)} utterances, tasks {args.tasks}, "
        f"{info['num_streams']} x {info['code_size']} codes at window {window}"
    )
