"""Offline speech synthesis and tool calls shared by the data-preparation scripts."""

import subprocess
from pathlib import Path
from typing import List


def run(cmd: List[str]):
    """Run a tool; on failure, raise with its command line and stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def speak(engine: str, voice: str, text: str, wav: Path):
    """Write ``text`` spoken by Debian's ``flite`` or ``espeak-ng`` to ``wav``."""
    if engine == "flite":
        run(["flite", "-voice", voice, "-t", text, "-o", str(wav)])
    else:
        run(["espeak-ng", "-v", voice, "-w", str(wav), text])
