"""`neutrowatch --help` shows its whole description (it stopped mid-sentence at the first line)."""
import subprocess
import sys


def test_help_shows_the_whole_description():
    out = subprocess.run([sys.executable, "-m", "neutrowatch.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert " ".join(out.split()).count("so every setting shows in --help with its variable.") == 1
