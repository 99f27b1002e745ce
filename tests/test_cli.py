"""The `gan-optim` dispatcher."""

import subprocess
import sys

import pytest

from gan_optim import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("compare", "reproduce", "bench", "biggan", "autogan"):
        assert command in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_bare_command_prints_help_and_starts_nothing(monkeypatch, capsys):
    def no_import(name):
        raise AssertionError(f"a bare gan-optim must not load {name}")

    monkeypatch.setattr(cli.importlib, "import_module", no_import)
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gan-optim") and "compare" in out


def test_version_prints_the_package_version(capsys):
    from importlib.metadata import version
    for flag in ("--version", "-V"):
        assert cli.main([flag]) == 0
        assert capsys.readouterr().out.strip() == f"gan-optim {version('gan-optim')}"


def test_options_without_a_command_are_refused(capsys):
    assert cli.main(["--seeds", "1"]) == 2
    assert "unknown command '--seeds'" in capsys.readouterr().err


def test_reproduce_help_shows_a_plain_percent_sign(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["reproduce", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "%%" not in out


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "gan_optim", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: gan-optim" in done.stdout


# ------------------------------------------------------------------ user mistakes: one line, exit 2, no traceback
MISTAKES = [
    (["compare", "--steps", "0"], "--steps"),
    (["compare", "--steps", "-5"], "--steps"),
    (["compare", "--batch", "0"], "--batch"),
    (["compare", "--eval-every", "-1"], "--eval-every"),
    (["compare", "--seeds", "0"], "--seeds"),
    (["compare", "--seeds", "-2"], "--seeds"),
    (["compare", "--target", "mmd=abc"], "--target"),
    (["compare", "--radius", "nan"], "--radius"),
    (["compare", "--lr", "inf"], "--lr"),
    (["compare", "--threads", "0"], "--threads"),
    (["reproduce", "angles", "--seeds", "0"], "--seeds"),
    (["reproduce", "nosuchclaim"], "claim"),
    (["reproduce", "dirac", "--write-docs", "{tmp}/x.md"], "need the claim 'all'"),
    (["reproduce", "all", "--from-csv", "{tmp}"], "--from-csv needs --write-docs"),
    (["reproduce", "all", "--from-csv", "{tmp}/none", "--write-docs", "{tmp}/x.md"], "dirac.csv: missing"),
    (["reproduce", "all", "--quick", "--reduced"], "not allowed with"),
    (["bench", "--device", "tpu9"], "--device"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--min-sample-ms", "inf"], "--min-sample-ms"),
    (["bench", "--min-sample-ms", "-1"], "--min-sample-ms"),
    (["biggan", "--repo", "{tmp}", "--technique", "wegan", "--eta", "5"], "eta"),
    (["autogan", "--repo", "{tmp}", "--technique", "freeadv", "--replays", "0"], "replays"),
    (["biggan", "--repo", "{tmp}", "--technique", "aw"], "is not a BigGAN-PyTorch checkout (no losses"),
    (["autogan", "--repo", "{tmp}", "--technique", "aw"], "is not an AutoGAN checkout (no functions"),
    (["biggan", "--repo", "{tmp}/missing", "--technique", "aw"], "no train.py"),
]


@pytest.mark.parametrize("argv,fragment", MISTAKES, ids=[" ".join(a[:3]) + " " + f for a, f in MISTAKES])
def test_user_mistakes_get_one_clear_line_and_status_2(argv, fragment, tmp_path, capsys):
    (tmp_path / "train.py").write_text("raise SystemExit('the script must not start')\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's error()
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse's usage may come first; the error is one line
    assert last.startswith("gan-optim") and fragment in last


@pytest.mark.parametrize("kind", ["file", "existing"])
def test_compare_out_that_is_a_file_or_not_empty_is_refused(kind, tmp_path, capsys):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("")
    else:
        target.mkdir()
        (target / "results.csv").write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", "--steps", "1", "--out", str(target)])
    assert exit_.value.code == 2 and "--out" in capsys.readouterr().err
    if kind == "existing":
        assert (target / "results.csv").read_text() == "keep me"


@pytest.mark.parametrize("argv", [
    ["--techniques", "nosuchtechnique", "--protocol", "short"],    # refused by the runner (return 2)
    ["--task", "digits", "--protocol", "quick"],                   # refused by the parser (SystemExit 2)
    ["--target", "nosuchmetric=1", "--protocol", "short"],
])
@pytest.mark.parametrize("where", ["explicit", "default"])
def test_a_refused_compare_writes_no_folder(argv, where, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = ["--out", str(tmp_path / "new" / "out")] if where == "explicit" else []
    try:
        code = cli.main(["compare", "--steps", "1", "--seeds", "1", "--no-progress", *out, *argv])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2 and "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
