"""Offline speech for tests: flite voices speaking known sentences, as Kaldi dirs."""

import subprocess
from pathlib import Path
from typing import Dict, List

import soundfile as sf

VOICES = ["kal16", "slt", "rms", "awb"]
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "every cloud has a silver lining",
    "the early bird catches the worm",
    "actions speak louder than words",
]


def synthesize(out_dir: Path, fs: int = 16000) -> Dict[str, List[str]]:
    """Write one wav per (voice, sentence) at ``fs`` and Kaldi dirs per split.

    Returns:
        Utterance ids per split: train (first four sentences of three voices),
        dev and test (the rest).
    """
    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    splits: Dict[str, List[str]] = {"train": [], "dev": [], "test": []}
    for v, voice in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            utt = f"{voice}_{s:02d}"
            raw, wav = wav_dir / f"{utt}.raw.wav", wav_dir / f"{utt}.wav"
            subprocess.run(
                ["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True
            )
            subprocess.run(
                ["sox", str(raw), "-r", str(fs), "-c", "1", "-b", "16", str(wav)],
                check=True,
            )
            raw.unlink()
            split = "train" if v < 3 and s < 4 else ("dev" if s == 4 else "test")
            splits[split].append(utt)
    for split, utts in splits.items():
        d = out_dir / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "wav.scp", "w") as scp, open(d / "utt2spk", "w") as u2s, open(
            d / "text", "w"
        ) as txt, open(d / "audio_shape", "w") as shape:
            for utt in sorted(utts):
                path = wav_dir / f"{utt}.wav"
                scp.write(f"{utt} {path}\n")
                u2s.write(f"{utt} {utt.split('_')[0]}\n")
                txt.write(f"{utt} {SENTENCES[int(utt.split('_')[1])]}\n")
                shape.write(f"{utt} {sf.info(str(path)).frames}\n")
    return splits
