#!/usr/bin/env bash
# Real audio from Debian packages (local/prep_pkgaudio.py in the repository root):
# apt-get download + dpkg -x into ${cache_dir} (no root needed, nothing installed),
# then PyAV decodes every clip. Writes under data/:
#   train_speech (cs/nl game dialogue, Tux Paint descriptions in ~12 languages,
#                 fr/it/ru telephone prompts, English TTS sentences of five
#                 voices; with text),
#                 train_sound (music
#                 segments, samples, effects), train (those + untranscribed voices)
#   dev          held-out speakers and sound files
#   test_en      Asterisk English prompts (16 kHz G.722, one speaker; with text),
#                never used in training
#   test_other   speech of other held-out speakers (not English: no text file)
#   test_sound   held-out music tracks and sound files
# With --english_voices_repeat N (N > 0; fetches 380 MB more): recorded English
# voices of two games, train_voice_en, train_en_voices (train + N copies of them)
# and test_wz_narrator (Warzone 2100's tutorial narrator, held out).
# With --english_dialogue true (61 MB more): train_dialogue_en, Flight of the
# Amazon Queen's spoken dialogue (4.6 h, 11 kHz), also once in train_en_voices,
# and test_drascula (another game's English lines, 150 clips, held out).
# and data/README.md, data/manifest.json: packages, versions, licenses, hours.
set -euo pipefail
. ./path.sh

cache_dir=downloads/pkgaudio  # Download cache; reused when it holds a package.
nj=2
dev_speakers=fillets_cs_lightgrey,fillets_cs_cyan,tuxpaint_nl
test_speakers=fillets_cs_statue,fillets_cs_yellow,fillets_cs_parrot,tuxpaint_el
test_sound_fraction=0.1       # Share of music/sound files in test_sound (as many in dev).
music_segment_seconds=10
music_segments_per_track=8
max_dev_speech=40
max_dev_sound=20
max_test_other=150
max_test_sound=150
tts_sentences=370             # English Fish Fillets lines per TTS voice (0: none).
# English voices, taking turns over the lines: piper's joe and Debian flite's
# four 16 kHz voices (flite -lv; kal is 8 kHz).
tts_voices=piper:joe,flite:awb,flite:rms,flite:slt,flite:kal16
english_voices_repeat=0       # Copies of the game voices in train_en_voices (0: none).
english_dialogue=false        # true: Flight of the Amazon Queen's dialogue too.
help_message="Usage: $0 [--cache_dir DIR] [--nj N] [--dev_speakers A,B] [--test_speakers A,B] ..."
. "${ALMTOK_LOCAL}/parse_options.sh"

python3 "${ALMTOK_LOCAL}/prep_pkgaudio.py" --out_dir data --cache_dir "${cache_dir}" --nj "${nj}" \
    --dev_speakers "${dev_speakers}" --test_speakers "${test_speakers}" \
    --test_sound_fraction "${test_sound_fraction}" \
    --music_segment_seconds "${music_segment_seconds}" \
    --music_segments_per_track "${music_segments_per_track}" \
    --max_dev_speech "${max_dev_speech}" --max_dev_sound "${max_dev_sound}" \
    --max_test_other "${max_test_other}" --max_test_sound "${max_test_sound}" \
    --tts_sentences "${tts_sentences}" --tts_voices "${tts_voices}" \
    --english_voices_repeat "${english_voices_repeat}" \
    --english_dialogue "${english_dialogue}"
