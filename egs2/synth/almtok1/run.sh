#!/usr/bin/env bash
# The default recipe: an offline corpus (flite/espeak-ng speech with transcripts,
# sox-made sounds) and the tiny CPU configs. Stages 1-8 finish on 2 CPU cores in
# minutes; the numbers say the pipeline works, not how good the codec is.
# Stages 9-12 (./run.sh --stage 9 --stop_stage 12) train and run a tiny ESPnet
# SpeechLM (tts + asr) on the tokens.
set -euo pipefail

./almtok.sh \
    --fs 16000 \
    --ngpu 0 \
    --nj 2 \
    --inference_nj 2 \
    --train_set train \
    --valid_set dev \
    --test_sets "test_speech test_sound" \
    --speech_train_set train_speech \
    --sound_train_set train_sound \
    --speech_prior logmel \
    --sound_prior logmel \
    --stage1_config conf/tuning/train_almtok_tiny_stage1.yaml \
    --stage2_config conf/tuning/train_almtok_tiny_stage2.yaml \
    --stage1_model latest.pth \
    --inference_model latest.pth \
    --speechlm_config conf/tuning/train_speechlm_tiny.yaml \
    --speechlm_model latest.pth \
    --speechlm_nbpe 60 \
    --speechlm_num_decode 3 \
    "$@"
