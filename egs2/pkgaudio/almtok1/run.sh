#!/usr/bin/env bash
# Real audio from Debian packages (local/data.sh: speech in a dozen languages,
# music and sounds, fetched with apt-get download, no root needed), the small
# 16 kHz configs at 412.5 bit/s, and the Whisper tiny.en encoder as the semantic
# prior of both codebook halves. Scored at 412.5 bit/s (window 4) on held-out
# English prompts (test_en, with WER/dWER, DNSMOS and speaker similarity on 100
# of its 563 clips), held-out speakers of other languages (test_other) and
# held-out music and sounds (test_sound), beside Codec2 450 and 700C coding the
# same clips. Decoding codes 0.8 s chunks, the length the configs train on: the
# query transformers' absolute positions do not reach past it (whole clips came
# out at 3.8 times the training scale in the quantizer). Stages 1-8 take about
# 70-85 minutes on 2 CPU cores (85.4 with tests niced beside it, 2026-12-04).
set -euo pipefail

./almtok.sh \
    --fs 16000 \
    --ngpu 0 \
    --nj 2 \
    --inference_nj 2 \
    --train_threads 2 \
    --train_set train \
    --valid_set dev \
    --test_sets "test_en test_other test_sound" \
    --speech_train_set train_speech \
    --sound_train_set train_sound \
    --train_subsets train_speech_en \
    --speech_prior whisper \
    --sound_prior whisper \
    --feats_max_utts 2000 \
    --kmeans_max_frames 100000 \
    --stage1_config conf/tuning/train_almtok_small16k_stage1.yaml \
    --stage2_config conf/tuning/train_almtok_small16k_stage2.yaml \
    --stage1_model latest.pth \
    --inference_model latest.pth \
    --inference_windows 4 \
    --chunk_seconds 0.8 \
    --anchors "codec2_450 codec2_700c" \
    --speech_utts 100 \
    "$@"
