"""The `gan-optim` dispatcher."""

import subprocess
import sys

from gan_optim import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("compare", "reproduce", "bench", "biggan", "autogan"):
        assert command in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_no_command_means_compare(monkeypatch):
    seen = {}

    class FakeModule:
        @staticmethod
        def main(command, argv):
            seen["call"] = (command, argv)
            return 0

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: FakeModule)
    assert cli.main([]) == 0 and seen["call"] == ("compare", [])
    assert cli.main(["--seeds", "1"]) == 0 and seen["call"] == ("compare", ["--seeds", "1"])


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "gan_optim", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: gan-optim" in done.stdout
