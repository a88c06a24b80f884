#!/usr/bin/env bash
# Offline default corpus: see local/synth_corpus.py in the repository root.
set -euo pipefail
. ./path.sh

num_train_sentences=16
num_sounds_per_kind=8
help_message="Usage: $0 [--num_train_sentences N] [--num_sounds_per_kind N]"
. "${ALMTOK_LOCAL}/parse_options.sh"

python3 "${ALMTOK_LOCAL}/synth_corpus.py" --out_dir data --wav_dir downloads/synth \
    --num_train_sentences "${num_train_sentences}" --num_sounds_per_kind "${num_sounds_per_kind}"
