#!/usr/bin/env python3
"""Make the offline default corpus: synthetic speech with transcripts, and sounds.

Speech comes from Debian's ``flite`` and ``espeak-ng`` voices speaking known
sentences, so every clip has an exact transcript and speaker. Non-speech clips
(tones, sweeps, chords, plucked strings, noise bursts, click trains, sirens) are
made with ``sox synth`` so the sound half of the codebook is exercised. Nothing
is downloaded.

Kaldi-style output under ``--out_dir`` (wav.scp, utt2spk, spk2utt; text for
the speech clips), one directory per set:

* ``train`` = ``train_speech`` + ``train_sound``; ``dev`` (one held-out sentence
  per seen voice, and one sound per kind);
* ``test_speech``: the other held-out sentences, from voices never seen in training;
* ``test_sound``: held-out sounds.
"""

import argparse
import logging
import random
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

from kaldi_dir import Utterance, write_kaldi_dir
from tts import run, speak

SENTENCES = [
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "these days a chicken leg is a rare dish",
    "rice is often served in round bowls",
    "the juice of lemons makes fine punch",
    "the box was thrown beside the parked truck",
    "the hogs were fed chopped corn and garbage",
    "four hours of steady work faced us",
    "a large size in stockings is hard to sell",
    "the boy was there when the sun rose",
    "a rod is used to catch pink salmon",
    "the source of the huge river is the clear spring",
    "kick the ball straight and follow through",
    "help the woman get back to her feet",
    "a pot of tea helps to pass the evening",
    "smoky fires lack flame and heat",
    "the soft cushion broke the man's fall",
    "the salt breeze came across from the sea",
    "the girl at the booth sold fifty bonds",
    "the small pup gnawed a hole in the sock",
    "the fish twisted and turned on the bent hook",
    "press the pants and sew a button on the vest",
    "the swan dive was far short of perfect",
]
# (engine, voice): the last three never appear in training.
TRAIN_VOICES = [
    ("flite", "kal16"),
    ("flite", "slt"),
    ("flite", "rms"),
    ("espeak-ng", "en-us+m3"),
    ("espeak-ng", "en-gb+f2"),
]
UNSEEN_VOICES = [("flite", "awb"), ("flite", "kal"), ("espeak-ng", "en-gb-scotland+f4")]
SOUND_KINDS = ["tone", "sweep", "chord", "pluck", "noise", "clicks", "siren"]


def sound_effect(kind: str, rng: random.Random) -> List[str]:
    """sox arguments (after ``-n -r 16000 -c 1 OUT``) for one random sound."""
    dur = f"{rng.uniform(1.0, 2.5):.2f}"
    f = rng.uniform(110, 880)
    if kind == "tone":
        return [
            "synth",
            dur,
            rng.choice(["sine", "square", "sawtooth"]),
            f"{f:.1f}",
            "vol",
            "0.3",
        ]
    if kind == "sweep":
        return [
            "synth",
            dur,
            "sine",
            f"{f:.0f}-{f * rng.uniform(2, 6):.0f}",
            "vol",
            "0.4",
        ]
    if kind == "chord":
        notes = [f"{f * r:.1f}" for r in (1.0, 1.26, 1.5)]
        return [
            "synth",
            dur,
            *sum((["sine", n] for n in notes), []),
            "remix",
            "-",
            "vol",
            "0.3",
        ]
    if kind == "pluck":
        return [
            "synth",
            dur,
            "pluck",
            f"{f:.1f}",
            "fade",
            "0",
            dur,
            f"{float(dur) * 0.8:.2f}",
        ]
    if kind == "noise":
        colour = rng.choice(["whitenoise", "pinknoise", "brownnoise"])
        return ["synth", dur, colour, "fade", "q", "0.05", dur, "0.5", "vol", "0.3"]
    if kind == "clicks":
        return [
            "synth",
            dur,
            "square",
            f"{rng.uniform(3, 12):.1f}",
            "highpass",
            "2000",
            "vol",
            "0.5",
        ]
    return [
        "synth",
        dur,
        "sine",
        f"{f:.0f}-{f * 1.5:.0f}",
        "tremolo",
        f"{rng.uniform(2, 6):.1f}",
        "60",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", type=Path, required=True, help="data/ directory")
    parser.add_argument("--wav_dir", type=Path, required=True, help="where clips go")
    parser.add_argument("--num_train_sentences", type=int, default=16)
    parser.add_argument("--num_sounds_per_kind", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s"
    )
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (tools/setup.sh installs it)")
    n_train = args.num_train_sentences
    if not 1 <= n_train <= len(SENTENCES) - 2:
        raise SystemExit(f"--num_train_sentences must be in [1, {len(SENTENCES) - 2}]")

    rng = random.Random(args.seed)
    args.wav_dir.mkdir(parents=True, exist_ok=True)
    sets: Dict[str, list] = defaultdict(list)
    for engine, voice in TRAIN_VOICES + UNSEEN_VOICES:
        spk = f"{engine.split('-')[0]}_{voice.replace('+', '_')}"
        seen = (engine, voice) in TRAIN_VOICES
        if seen:
            plan = [("train_speech", i) for i in range(n_train)] + [("dev", n_train)]
        else:
            plan = [("test_speech", i) for i in range(n_train + 1, len(SENTENCES))]
        for split, i in plan:
            utt = f"{spk}-{i:03d}"
            wav = args.wav_dir / f"{utt}.wav"
            speak(engine, voice, SENTENCES[i], wav)
            sets[split].append(Utterance(utt, wav, spk, SENTENCES[i]))
        logging.info(
            f"voice {spk}: {len(plan)} utterances ({'seen' if seen else 'unseen'})"
        )

    for kind in SOUND_KINDS:
        for i in range(args.num_sounds_per_kind):
            utt = f"sound_{kind}-{i:03d}"
            wav = args.wav_dir / f"{utt}.wav"
            run(
                ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(wav)]
                + sound_effect(kind, rng)
            )
            split = "test_sound" if i == 0 else ("dev" if i == 1 else "train_sound")
            sets[split].append(Utterance(utt, wav, f"sound_{kind}"))
    logging.info(f"{len(SOUND_KINDS) * args.num_sounds_per_kind} sound clips")

    sets["train"] = sets["train_speech"] + sets["train_sound"]
    for split, entries in sets.items():
        write_kaldi_dir(args.out_dir / split, entries)
        logging.info(f"data/{split}: {len(entries)} clips")


if __name__ == "__main__":
    main()
