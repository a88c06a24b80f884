"""The installed .pth hook registers the codec in a fresh interpreter."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_interpreter_start_stays_light():
    # The hook is installed at start, but neither torch nor ESPnet is imported.
    code = "import sys; print(sorted(m for m in ('torch', 'espnet2', 'espnet_almtok.registration') if m in sys.modules))"
    assert run(code) == "['espnet_almtok.registration']"


def test_codec_choices_know_almtokenizer_without_user_imports():
    code = (
        "from espnet2.tasks.gan_codec import codec_choices, GANCodecTask;"
        "print(*(codec_choices.get_class(n).__name__ for n in "
        "('almtokenizer', 'soundstream_he', 'dac_he')));"
        "print(*(c.__name__ for c in codec_choices.get_class('dac_he').__mro__[1:3]))"
    )
    names, base = run(code).splitlines()[-2:]
    assert names == (
        "ALMTokenizer SoundStreamVariancePreservingAdversarialStart "
        "DACVariancePreservingAdversarialStart"
    )
    assert base == "DACVariancePreserving DAC"


def test_install_after_espnet_was_imported_registers_at_once():
    code = (
        "import sys; sys.meta_path = [f for f in sys.meta_path if type(f).__name__ != '_Finder'];"
        "from espnet2.tasks import gan_codec;"
        "gan_codec.codec_choices.classes.pop('almtokenizer', None);"
        "from espnet_almtok import registration; registration.install();"
        "print('almtokenizer' in gan_codec.codec_choices.classes)"
    )
    assert run(code).splitlines()[-1] == "True"


def test_a_broken_plugin_does_not_break_espnet():
    code = (
        "import sys, warnings; sys.modules['espnet_almtok.model.codec'] = None;"
        "warnings.simplefilter('always');"
        "from espnet2.tasks.gan_codec import codec_choices;"
        "print('almtokenizer' in codec_choices.classes, 'soundstream' in codec_choices.classes)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines()[-1] == "False True"
    assert "cannot register codecs ('almtokenizer', 'losatok')" in proc.stderr


def test_hooks_leave_modules_without_what_they_adapt_alone():
    """ESPnet 202611's ``speechlm_inference`` has no ``SpeechLM``: the 202412
    hook is not even imported. One that has it but breaks the hook gets a
    warning, and the import goes on."""
    code = (
        "import sys, types, warnings; warnings.simplefilter('always');"
        "from espnet_almtok.registration import run_hook, SPEECHLM_202412;"
        "new = types.ModuleType('espnet2.bin.speechlm_inference');"
        "new.UNDERSTAND_PROMPT = 'x'; run_hook(new);"
        "print(SPEECHLM_202412 in sys.modules, 'torch' in sys.modules);"
        "odd = types.ModuleType('espnet2.bin.speechlm_inference');"
        "odd.SpeechLM = object; run_hook(odd); print('went on')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "went", "on"]
    assert "cannot adapt espnet2.bin.speechlm_inference" in proc.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("espnet2.bin.cli") is None,
    reason="ESPnet's espnet command is new in 202611",
)
def test_espnet_command_works_with_our_package_installed():
    """202611's CLI imports its new speechlm_inference at top level, which our
    202412 SpeechLM hook once broke."""
    assert "almtokenizer" in run(
        "import espnet2.bin.cli; from espnet2.tasks.gan_codec import codec_choices;"
        "print(list(codec_choices.classes))"
    )
    espnet = Path(sys.executable).with_name("espnet")
    proc = subprocess.run([str(espnet), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
