"""``gan-optim biggan|autogan``: run an upstream ``train.py`` unmodified, patched with a technique.

::

    gan-optim biggan  --repo ~/BigGAN-PyTorch --technique aw -- --dataset I128_hdf5 --batch_size 256 ...
    gan-optim autogan --repo ~/AutoGAN --technique wegan --eta 0.01 -- -gen_bs 128 -dis_bs 64 ...

Everything after ``--`` goes to the script as its own command line. The
repository goes first on ``sys.path`` (as ``python train.py`` would put it),
the patch is applied, and the script runs through ``runpy`` as ``__main__``.
The working directory is left as it is: run from where you would run the
script (AutoGAN reads ``fid_stat/`` relative to it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
from typing import Any, Sequence

from . import _patching
from ._techniques import OPTIONS, TECHNIQUES

__all__ = ["main", "parse"]

_ALL_OPTIONS = sorted({name for opts in OPTIONS.values() for name in opts})

#: What each technique option sets (the techniques it applies to and its default are added to the help).
OPTION_HELP = {
    "loss": "the loss the component computes: D's for aw and freeadv (hinge, bce, wgan; freeadv also hinge_ac), "
            "G's for wegan (ns, saturating, hinge, wgan). On BigGAN, aw and wegan use the repository's own "
            "losses.py functions instead",
    "alpha1": "aw: favour the real part when the mean real score is below alpha1 (Algorithm 1)",
    "alpha2": "aw: favour the fake part when the mean real score is above alpha2 (and not below the fake "
              "score minus delta)",
    "eps": "aw: added to both weights (keeps each part's gradient in the step)",
    "delta": "aw: favour the real part when the mean real score is below the mean fake score minus delta",
    "eta": "wegan: the weights are softmax((1 - sigmoid(D(G(z)))) ln eta): a smaller eta favours the samples D "
           "scores high",
    "lam": "adaptive: update D when its loss ratio exceeds lam times G's, else G",
    "max_consecutive": "adaptive: update the other network after this many consecutive updates of one "
                       "(none: no limit)",
    "lr_g": "ttur: G's learning rate (none: the script's)",
    "lr_d": "ttur: D's learning rate (none: the script's)",
    "g_schedule": "ttur: G's rate decays as n^-VALUE (none: constant)",
    "d_schedule": "ttur: D's rate decays as n^-VALUE (none: constant)",
    "epsilon": "freeadv: the radius of the perturbation of D's real input",
    "step_size": "freeadv: the perturbation's step per replay (none: epsilon)",
    "replays": "freeadv: the D steps taken on each batch, each also stepping the perturbation",
    "norm": "freeadv: the perturbation's norm (linf or l2)",
    "data_range": "freeadv: the clamp of perturbed inputs, LOW,HIGH (none: no clamp)",
}


def _option_help(name: str) -> str:
    uses = [(t, o[name]) for t, o in OPTIONS.items() if name in o]
    defaults = "; ".join(f"{t}: {'none' if d is None else ','.join(map(str, d)) if isinstance(d, tuple) else d}"
                         for t, d in uses)
    return f"{OPTION_HELP.get(name, name)} (default {defaults})".replace("%", "%%")


def _value(text: str) -> Any:
    """Option values: ``none`` -> None, numbers as numbers, ``a,b`` -> a tuple, else the string."""
    if text.lower() == "none":
        return None
    if "," in text:
        return tuple(_value(part) for part in text.split(","))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"gan-optim {command}",
        description=f"Run the {command} repository's training script, unmodified, with a gan_optim technique.",
        epilog="Arguments after `--` are passed to the script. Technique options apply only to their technique: "
               + "; ".join(f"{t}: {', '.join('--' + n.replace('_', '-') for n in o) or '-'}"
                           for t, o in OPTIONS.items()))
    p.add_argument("--repo", required=True, help="path of the repository checkout")
    p.add_argument("--technique", required=True, choices=TECHNIQUES,
                   help="aw: adaptive weighted D loss; wegan: weighted G loss; adaptive: D/G update scheduler; "
                        "ttur: two time-scale learning rates; freeadv: free adversarial D steps; none: the "
                        "script as it is (a baseline run through the same launcher)")
    p.add_argument("--trust-fingerprint", action="append", default=[], metavar="FINGERPRINT",
                   help="proceed, at your own risk, with an edited upstream function that the technique would set "
                        "aside: the fingerprint is the one a refusal prints (repeatable)")
    p.add_argument("--script", default="train.py", help="script inside the repository (default: train.py)")
    if command == "biggan":
        p.add_argument("--no-compat", action="store_true",
                       help="leave out the fixes for BigGAN-PyTorch on today's PyTorch (save_image on "
                            "Distribution tensors, --resume with torch.load's weights_only default)")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="score IS/FID with torchmetrics and the Inception weights in this local file (the "
                        "torch-fidelity pt_inception-2015-12-05 state dict; nothing is downloaded), logged where "
                        "the repository logs its own metrics")
    p.add_argument("--fid-reference", default=None, metavar="PATH",
                   help="FID reference: an .npz with mu and sigma of the 2048-d pool features, or a folder of "
                        "real images (needs --inception-weights)")
    p.add_argument("--cpu", action="store_true",
                   help="run the script on the CPU: its CUDA devices, .cuda() and torch.cuda.FloatTensor go to the "
                        "CPU (for small runs on a machine without a GPU)")
    p.add_argument("--image-folder", default=None, metavar="DIR",
                   help="train on the images in DIR (one subfolder per class) instead of the dataset files the "
                        "script reads or downloads; the image size and class count follow the script's own "
                        "--dataset / --img_size")
    p.add_argument("--seed", type=int, default=None,
                   help="seed Python's, NumPy's and torch's generators before the script starts (AutoGAN's "
                        "train.py seeds only CUDA's); use the same value for the baseline and the patched run")
    group = p.add_argument_group("technique options")
    for name in _ALL_OPTIONS:
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=_value, default=argparse.SUPPRESS,
                           metavar="VALUE", help=_option_help(name))
    return p


def parse(command: str, argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any], list[str]]:
    """Split ``argv`` into our arguments, the technique options and the script's arguments."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        ours, theirs = argv[:cut], argv[cut + 1:]
    else:
        ours, theirs = argv, []
    parser = _parser(command)
    ns = parser.parse_args(ours)
    given = {k: v for k, v in vars(ns).items() if k in _ALL_OPTIONS}
    wrong = sorted(set(given) - set(OPTIONS[ns.technique]))
    if wrong:
        parser.error(f"option(s) {', '.join('--' + w.replace('_', '-') for w in wrong)} do not apply to "
                     f"technique {ns.technique!r}")
    return ns, given, theirs


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA's generators too


#: The commits the adapters are tested against, and the SHA-256 prefixes of the files they hook there.
TESTED_CHECKOUTS = {
    "biggan": ("98459431", {"train_fns.py": "4d8c35c95c8528b7", "losses.py": "648948aae22e9b0e",
                            "train.py": "8529d151aa66363a", "utils.py": "d92cd60f83c51b7e"}),
    "autogan": ("a5eeef05", {"functions.py": "72c8221936a8fcb4", "train.py": "19c3fa8c63f3fcfd",
                             "train_derived.py": "bd0d3e822f2ed003", "cfg.py": "07f8c67aa1fa7b53"}),
}
_noted: set[tuple[str, str]] = set()


def _note_untested_checkout(command: str, repo: str) -> None:
    """One line on stderr, once per checkout and process, when ``repo`` is not the tested commit."""
    commit, hashes = TESTED_CHECKOUTS[command]
    why = _patching.checkout_differences(repo, commit, hashes)
    if why is None or (command, repo) in _noted:
        return
    _noted.add((command, repo))
    print(f"gan-optim {command}: note: the adapter is tested on commit {commit}; {repo}: {why}. "
          "An edited function that the technique would set aside is refused; edits elsewhere run as you wrote "
          "them.", file=sys.stderr)


def main(command: str, argv: Sequence[str]) -> int:
    """Entry point used by :mod:`gan_optim.cli`; returns the script's exit status."""
    if command not in ("biggan", "autogan"):
        print(f"gan-optim: unknown adapter {command!r}", file=sys.stderr)
        return 2
    ns, options, script_args = parse(command, argv)
    repo = os.path.abspath(os.path.expanduser(ns.repo))
    script = os.path.join(repo, ns.script)
    if not os.path.isfile(script):
        print(f"gan-optim {command}: no {ns.script} in {repo}", file=sys.stderr)
        return 2
    adapter = importlib.import_module(f"gan_optim.adapters.{command}")
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    sys.path.insert(0, repo)
    extra: dict[str, Any] = {"namespaces": []} if command == "autogan" else {}
    compat: Any = None
    handle: Any = None
    undo_metrics: Any = None
    data: Any = None
    cpu: Any = None

    def undo_all() -> None:
        for undo in (None if cpu is None else cpu.undo, None if data is None else data.undo, undo_metrics,
                     None if compat is None else compat.undo, None if handle is None else handle.undo):
            if undo is not None:
                undo()
        sys.path[:] = saved_path

    try:
        from . import metrics

        # First: AutoGAN's functions.py (which the patch imports) imports the TF1 metric modules stood in for here.
        undo_metrics = metrics.install(command, ns.inception_weights, ns.fid_reference)
        trusted = {fp for fp in ns.trust_fingerprint if fp not in adapter.TRUSTED_FINGERPRINTS}
        adapter.TRUSTED_FINGERPRINTS.update(trusted)
        try:
            handle = adapter.patch(ns.technique, **extra, **options)
        finally:
            adapter.TRUSTED_FINGERPRINTS.difference_update(trusted)
        if command == "biggan" and not ns.no_compat:
            compat = adapter.todays_pytorch_fixes()
        if ns.image_folder is not None:
            from . import _runtime

            data = (_runtime.biggan_image_folder(ns.image_folder) if command == "biggan"
                    else _runtime.autogan_image_folder(ns.image_folder))
    except ImportError as err:
        # The module the adapter hooks is not in that folder: a checkout of another kind.
        undo_all()
        kind = {"biggan": "a BigGAN-PyTorch", "autogan": "an AutoGAN"}[command]
        missing = getattr(err.__cause__, "name", None) or getattr(err, "name", None) or "a module the adapter hooks"
        print(f"gan-optim {command}: {repo} is not {kind} checkout (no {missing} to hook there)", file=sys.stderr)
        return 2
    except (ValueError, TypeError, AttributeError) as err:
        # A user mistake (an option value, an edited training function): one line, no traceback.
        undo_all()
        print(f"gan-optim {command}: {err}", file=sys.stderr)
        return 2
    _note_untested_checkout(command, repo)
    print(f"gan-optim {command}: {ns.script} from {repo}, technique {ns.technique} "
          f"{handle.options if handle.options else ''}".rstrip(), file=sys.stderr)
    sys.argv = [script, *script_args]
    if ns.seed is not None:
        _seed_everything(ns.seed)
    if ns.cpu:
        from . import _runtime

        cpu = _runtime.on_cpu()
    try:
        runpy.run_path(script, run_name="__main__")
        handle.check_acted()  # a run the technique took no part in is not that technique's
        code = 0
    except SystemExit as exc:  # the script's own sys.exit()
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _patching.AdapterError as err:
        # Ours, raised once the script has built its networks (a configuration the technique cannot run,
        # a technique that does not act): one line, as for the errors above.
        print(f"gan-optim {command}: {err}", file=sys.stderr)
        code = 2
    finally:
        undo_all()
        sys.argv = saved_argv
    return code
