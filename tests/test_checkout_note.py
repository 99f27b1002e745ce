"""The launcher's note when a checkout is not the commit the adapters are tested on."""

import hashlib

import pytest

from gan_optim.adapters import _patching, launch


def _write(path, name, text):
    (path / name).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_an_exported_copy_is_judged_by_the_hooked_files(tmp_path):
    hashes = {"a.py": _write(tmp_path, "a.py", "x = 1\n"), "b.py": _write(tmp_path, "b.py", "y = 2\n")}
    assert _patching.checkout_differences(str(tmp_path), "1234abcd", hashes) is None
    (tmp_path / "b.py").write_text("y = 3\n")  # a user's edit, or another commit
    assert _patching.checkout_differences(str(tmp_path), "1234abcd", hashes) == "its b.py differ(s) from that commit's"
    (tmp_path / "a.py").unlink()
    assert "a.py, b.py" in _patching.checkout_differences(str(tmp_path), "1234abcd", hashes)


@pytest.mark.parametrize("packed", [False, True])
def test_a_git_checkout_is_judged_by_its_head_and_its_files(tmp_path, packed):
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/master\n")
    head = "98459431a5b6c7d8e9f00112233445566778899a"
    if packed:
        (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{head} refs/heads/master\n")
    else:
        (git / "refs" / "heads" / "master").write_text(head + "\n")
    hashes = {"a.py": _write(tmp_path, "a.py", "x = 1\n")}
    assert _patching.checkout_differences(str(tmp_path), "98459431", hashes) is None
    (tmp_path / "a.py").write_text("x = 2\n")  # an uncommitted edit at the tested commit
    assert _patching.checkout_differences(str(tmp_path), "98459431", hashes) == "its a.py differ(s) from that commit's"
    assert _patching.checkout_differences(str(tmp_path), "a5eeef05", {}) == "it is at commit 98459431"
    (git / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")  # detached
    assert _patching.checkout_differences(str(tmp_path), "98459431", {}) == "it is at commit 01234567"


def test_the_note_is_printed_once_per_checkout(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(launch, "_noted", set())
    for _ in range(2):
        launch._note_untested_checkout("biggan", str(tmp_path))
    err = capsys.readouterr().err
    assert err.count("note: the adapter is tested on commit 98459431") == 1
    assert "train_fns.py" in err
