#!/usr/bin/env bash
# LibriTTS speech + a folder of sound clips (ESC-50 or AudioSet-style) at 24 kHz,
# with the GPU configs. Set the local paths below; nothing is downloaded.
# See README.md for what to fetch, run times, Slurm and multi-GPU use.
set -euo pipefail

# Local paths (see README.md):
# LibriTTS root, holding train-clean-100/, train-clean-360/, dev-clean/, test-clean/.
libritts_root=""
# ESC-50 checkout (meta/esc50.csv + audio/) or a folder of wav/flac/ogg clips.
sound_root=""
# SSL checkpoints for the semantic prior (the configs' 768-dim codebooks).
w2v_checkpoint=""    # wav2vec 2.0 (HF dir, torchaudio or fairseq .pt)
beats_checkpoint=""  # BEATs .pt

# Only non-empty roots are passed: local_data_opts is split on spaces by almtok.sh,
# and local/data.sh names whichever root is missing.
# --feats_max_utts: k-means loads every feature frame into memory before keeping
# 200k; all ~245 h of LibriTTS train would be over 100 GB of wav2vec 2.0 frames,
# 3000 random clips (~5 h) are ~3 GB.
local_data_opts=""
[ -n "${libritts_root}" ] && local_data_opts+=" --libritts_root ${libritts_root}"
[ -n "${sound_root}" ] && local_data_opts+=" --sound_root ${sound_root}"

./almtok.sh \
    --fs 24000 \
    --ngpu 1 \
    --gpu_inference true \
    --train_set train \
    --valid_set dev \
    --test_sets "test_speech test_sound" \
    --speech_train_set train_speech \
    --sound_train_set train_sound \
    --stage1_config conf/train_almtok_stage1.yaml \
    --stage2_config conf/train_almtok_stage2.yaml \
    --local_data_opts "${local_data_opts}" \
    --speech_prior wav2vec2 \
    --sound_prior beats \
    --w2v_checkpoint "${w2v_checkpoint}" \
    --beats_checkpoint "${beats_checkpoint}" \
    --feats_max_utts 3000 \
    "$@"
