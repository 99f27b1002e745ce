"""``gan-optim compare --repo biggan|autogan PATH``: the techniques side by side inside a published baseline.

Every (technique, seed) run is the repository's own, unmodified ``train.py``,
started through the ``gan-optim biggan|autogan`` launcher in a folder of its
own (``runs/<technique>-seed<k>/``), with the same flags and seed for every
technique; IS and FID come from torchmetrics with the Inception weights of
``--inception-weights`` (a local file) and are read back from each run's own
log (BigGAN-PyTorch: ``logs/<experiment>_log.jsonl``; AutoGAN: the
``Inception score: ..., FID score: ... || @ epoch N.`` lines of its log file).
The output folder gets the same ``results.csv``, ``summary.md`` and
``curves.png`` as the toy compare.

Two configurations (``--config``): ``tiny`` (the default without a GPU), a
small network trained for a few dozen iterations on the CPU on scikit-learn's
bundled digits drawn at 32 x 32 (``--image-folder`` for other images), whose
numbers show that the pipeline works, not which technique is better; and
``published`` (the default with a GPU), the repository's own CIFAR-10 script
flags (BigGAN-PyTorch ``scripts/launch_cifar_ema.sh`` without ``--parallel``;
AutoGAN ``exps/autogan_cifar10_a.sh``), the real experiment. Arguments after
``--`` are added to every run's command line and override the configuration's.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence, cast

from gan_optim.adapters.metrics import image_files

__all__ = ["CONFIGS", "DEFAULT_TECHNIQUES", "REPOS", "BaselineRun", "add_arguments", "read_autogan_log",
           "read_biggan_log", "run", "check", "write_digits_images"]

REPOS = ("biggan", "autogan")
#: default seeds of `compare --repo` (each run is the repository's whole train.py: hours on a GPU)
REPO_SEEDS = 3
DEFAULT_TECHNIQUES = "none,aw,wegan,adaptive,ttur,freeadv"
RESULT_FIELDS = ("repo", "technique", "seed", "iteration", "seconds", "is_mean", "is_std", "fid")

#: Each repository's flags per configuration ({seed} is filled per run).
CONFIGS: dict[str, dict[str, list[str]]] = {
    "biggan": {
        "tiny": ["--dataset", "C10", "--G_ch", "16", "--D_ch", "16", "--batch_size", "16", "--num_D_steps", "2",
                 "--num_epochs", "2", "--test_every", "15", "--save_every", "1000000",
                 "--num_inception_images", "20", "--num_workers", "0", "--shuffle", "--G_lr", "2e-4",
                 "--D_lr", "2e-4", "--G_attn", "0", "--D_attn", "0", "--G_init", "N02", "--D_init", "N02"],
        "published": ["--shuffle", "--batch_size", "50", "--num_G_accumulations", "1", "--num_D_accumulations", "1",
                      "--num_epochs", "500", "--num_D_steps", "4", "--G_lr", "2e-4", "--D_lr", "2e-4",
                      "--dataset", "C10", "--G_ortho", "0.0", "--G_attn", "0", "--D_attn", "0", "--G_init", "N02",
                      "--D_init", "N02", "--ema", "--use_ema", "--ema_start", "1000", "--test_every", "5000",
                      "--save_every", "2000", "--num_best_copies", "5", "--num_save_copies", "2"],
    },
    "autogan": {
        "tiny": ["--dataset", "cifar10", "--img_size", "32", "--bottom_width", "4", "--gen_model",
                 "autogan_cifar10_a", "--dis_model", "autogan_cifar10_a", "--latent_dim", "32", "--gf_dim", "32",
                 "--df_dim", "16", "--g_spectral_norm", "False", "--d_spectral_norm", "True", "--g_lr", "2e-4",
                 "--d_lr", "2e-4", "--beta1", "0.0", "--beta2", "0.9", "--init_type", "xavier_uniform",
                 "--n_critic", "2", "-gen_bs", "32", "-dis_bs", "16", "--max_iter", "40", "--val_freq", "1",
                 "--num_eval_imgs", "20", "--eval_batch_size", "20", "--num_workers", "0", "--print_freq", "1000"],
        "published": ["-gen_bs", "128", "-dis_bs", "64", "--dataset", "cifar10", "--bottom_width", "4",
                      "--img_size", "32", "--max_iter", "50000", "--gen_model", "autogan_cifar10_a", "--dis_model",
                      "autogan_cifar10_a", "--latent_dim", "128", "--gf_dim", "256", "--df_dim", "128",
                      "--g_spectral_norm", "False", "--d_spectral_norm", "True", "--g_lr", "0.0002", "--d_lr",
                      "0.0002", "--beta1", "0.0", "--beta2", "0.9", "--init_type", "xavier_uniform", "--n_critic",
                      "5", "--val_freq", "20"],
    },
}
#: each repository's G learning-rate flag and its default there
G_LR_FLAG = {"biggan": ("--G_lr", "5e-5"), "autogan": ("--g_lr", "0.0002")}
#: ttur's D rate as a multiple of G's (the launcher's ttur without rates would keep the script's own, and
#: equal script rates would make it the baseline); as in the toy compare
TTUR_D_RATIO = 3.0
#: the seed flag of each repository's train.py
SEED_FLAG = {"biggan": "--seed", "autogan": "--random_seed"}
#: the FID statistics file AutoGAN's train.py asserts, relative to its working folder, per --dataset
AUTOGAN_FID_STAT = {"cifar10": "fid_stat/fid_stats_cifar10_train.npz",
                    "stl10": "fid_stat/stl10_train_unlabeled_fid_stats_48.npz"}
#: images of the generated set, and how many of them the FID reference statistics use
TINY_IMAGES, TINY_REFERENCE = 500, 100


@dataclass
class BaselineRun:
    """One (technique, seed) run: its folder, exit status and the metric rows read from its log."""

    technique: str
    seed: int
    folder: Path
    returncode: int | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = math.nan


# ------------------------------------------------------------------------------------------------ data
def write_digits_images(folder: str | os.PathLike, n: int = TINY_IMAGES, size: int = 32) -> Path:
    """scikit-learn's bundled 8x8 digits as ``folder/<digit>/<index>.png``, RGB, ``size`` x ``size`` (bicubic)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = Path(folder)
    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images[:n], digits.target[:n])):
        pixels = Image.fromarray((image / 16.0 * 255).round().astype(np.uint8))
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pixels.resize((size, size), Image.Resampling.BICUBIC).convert("RGB").save(folder / str(label) / f"{index:04d}.png")
    return folder


def reference_statistics(weights: str, folder: Path, out: Path, limit: int) -> Path:
    """FID reference ``mu``/``sigma`` of (at most ``limit``, evenly spaced) images under ``folder``, saved as
    ``out`` (.npz)."""
    import numpy as np

    from gan_optim.adapters.metrics import InceptionMetrics, load_images

    mu, sigma = InceptionMetrics(weights).pool_statistics(load_images(folder, limit))
    np.savez(out, mu=mu, sigma=sigma)
    return out


# ------------------------------------------------------------------------------------------------ logs
def read_biggan_log(folder: Path, experiment: str, started: float) -> list[dict[str, float]]:
    """Rows ``iteration, seconds, is_mean, is_std, fid`` from ``logs/<experiment>_log.jsonl`` (BigGAN's own)."""
    path = folder / "logs" / f"{experiment}_log.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rows.append({"iteration": float(rec["itr"]), "seconds": float(rec["_stamp"]) - started,
                             "is_mean": float(rec["IS_mean"]), "is_std": float(rec["IS_std"]),
                             "fid": float(rec["FID"])})
    return rows


_AUTOGAN_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) Inception score: (\S+), FID score: (\S+) "
                           r"\|\| @ epoch (\d+)\.")


def read_autogan_log(folder: Path, started: float, batches_per_epoch: int) -> list[dict[str, float]]:
    """Rows from AutoGAN's log file (``logs/<exp>_<time>/Log/*.log``): the iteration is the D batch count at
    the end of the epoch, ``(epoch + 1) * batches_per_epoch`` (AutoGAN counts D batches); IS std is not logged."""
    rows = []
    for path in sorted(folder.glob("logs/*/Log/*.log")):
        for line in path.read_text().splitlines():
            match = _AUTOGAN_LINE.match(line)
            if match:
                stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                rows.append({"iteration": float((int(match.group(4)) + 1) * batches_per_epoch),
                             "seconds": stamp - started, "is_mean": float(match.group(2)), "is_std": math.nan,
                             "fid": float(match.group(3))})
    return rows


def _last_value(args: Sequence[str], names: Sequence[str], default: str) -> str:
    """The value of the last of ``names`` in a command line (argparse: the last one wins)."""
    value = default
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            value = args[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


# ------------------------------------------------------------------------------------------------ runs
def technique_options(repo_kind: str, technique: str, flags: Sequence[str]) -> list[str]:
    """The launcher's technique options for a compare run: ttur's D rate at :data:`TTUR_D_RATIO` x G's."""
    if technique != "ttur":
        return []
    flag, default = G_LR_FLAG[repo_kind]
    lr_g = float(_last_value(flags, (flag,), default))
    return ["--lr-g", f"{lr_g:g}", "--lr-d", f"{TTUR_D_RATIO * lr_g:g}"]


def _command(repo_kind: str, repo: Path, technique: str, seed: int, script_args: Sequence[str], *, weights: str,
             reference: Path | None, cpu: bool, image_folder: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "gan_optim", repo_kind, "--repo", str(repo), "--technique", technique,
           *technique_options(repo_kind, technique, script_args), "--seed", str(seed), "--inception-weights",
           weights]
    if reference is not None:
        cmd += ["--fid-reference", str(reference)]
    if cpu:
        cmd.append("--cpu")
    if image_folder is not None:
        cmd += ["--image-folder", str(image_folder)]
    return [*cmd, "--", *script_args]


def _run_one(run: BaselineRun, cmd: list[str], threads: int, reader: Any, visible_devices: str | None = None
             ) -> BaselineRun:
    run.folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices
    started = time.time()
    with open(run.folder / "output.log", "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=run.folder, stdout=log, stderr=subprocess.STDOUT, env=env)
    run.returncode = proc.returncode
    run.seconds = time.time() - started
    run.rows = reader(run.folder, started)
    return run


# ------------------------------------------------------------------------------------------------ outputs
def write_results(runs: Sequence[BaselineRun], repo_kind: str, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        for run in runs:
            for row in run.rows:
                writer.writerow({"repo": repo_kind, "technique": run.technique, "seed": run.seed, **row})
    return path


def summary_markdown(runs: Sequence[BaselineRun], repo_kind: str, repo: Path, config: str, script_args: Sequence[str],
                     seeds: Sequence[int], has_fid: bool) -> str:
    from .stats import NO_DIFFERENCE, RULE_TEXT, bootstrap_ci, decide, metric_tolerance

    def fmt(ci: Any) -> str:
        return "–" if ci.n == 0 else f"{ci.mean:.4g} [{ci.low:.4g}, {ci.high:.4g}]"

    names = list(dict.fromkeys(r.technique for r in runs))
    finals: dict[str, dict[str, Any]] = {}
    for name in names:
        done = [r for r in runs if r.technique == name and r.returncode == 0 and r.rows]
        finals[name] = {key: bootstrap_ci([r.rows[-1][key] for r in done]) for key in ("is_mean", "fid")}
        finals[name]["iteration"] = max((r.rows[-1]["iteration"] for r in done), default=math.nan)
        finals[name]["seconds"] = bootstrap_ci([r.seconds for r in done])
    base = "none" if "none" in finals else names[0]
    lines = [f"# gan-optim compare --repo {repo_kind}", "",
             f"Repository `{repo}`, its own `train.py` through `gan-optim {repo_kind}`; configuration **{config}**"
             + (" (a small network for a few dozen iterations on the CPU: the numbers show that the pipeline "
                "works, not which technique is better)" if config == "tiny" else "") + ".",
             f"Seeds {', '.join(map(str, seeds))}; the same flags for every run: `{' '.join(script_args)}`."
             + ("" if "ttur" not in names else
                f" ttur: `{' '.join(technique_options(repo_kind, 'ttur', script_args))}` (D at "
                f"{TTUR_D_RATIO:g} x G's rate)."), "",
             f"Final IS and FID: mean over seeds [bootstrap 95% interval]. FID against the baseline (`{base}`): "
             "**the verdict rule.** " + RULE_TEXT + " Here the family is the FID column.", "",
             "| technique | runs ok | last iteration | IS | FID | FID vs none: difference [95% interval], p (Holm) "
             "| verdict | seconds per run |",
             "|---|---|---|---|---|---|---|---|"]
    fid = {name: [float(r.rows[-1]["fid"]) for r in runs if r.technique == name and r.returncode == 0 and r.rows]
           for name in names}
    others = [n for n in names if n != base]
    decided = dict(zip(others, decide([(fid[n], fid[base], metric_tolerance("fid", fid[base])) for n in others])))
    for name in names:
        f = finals[name]
        ok = sum(1 for r in runs if r.technique == name and r.returncode == 0 and r.rows)
        total = sum(1 for r in runs if r.technique == name)
        if name == base or not has_fid:
            test, verdict = "–", "–"
        else:
            c = decided[name]
            test = fmt(c.effect) + (f", p {c.p_holm:.3g}" if math.isfinite(c.p_holm) else ", p –")
            verdict = c.outcome if c.outcome == NO_DIFFERENCE else (
                "lower (better)" if c.outcome == "lower" else "higher (worse)")
        lines.append(f"| {name} | {ok}/{total} | {f['iteration']:.0f} | {fmt(f['is_mean'])} | "
                     f"{fmt(f['fid']) if has_fid else 'not computed'} | {test} | {verdict} | {fmt(f['seconds'])} |")
    failed = [r for r in runs if r.returncode != 0 or not r.rows]
    if failed:
        lines += ["", "Runs that failed or logged no metric (see their output.log):", ""]
        lines += [f"- {r.technique}, seed {r.seed}: exit {r.returncode}, `{r.folder / 'output.log'}`" for r in failed]
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[BaselineRun], path: Path, has_fid: bool) -> Path:
    from . import plots
    from .runner import RunResult

    results = [RunResult(technique=r.technique, seed=r.seed,
                         rows=[{"step": row["iteration"], "wall_s": row["seconds"], "IS": row["is_mean"],
                                "FID": row["fid"]} for row in r.rows])
               for r in runs if r.returncode == 0 and r.rows]
    if not results:
        return path
    lower_better = {"IS": False, **({"FID": True} if has_fid else {})}
    return plots.plot_curves(results, cast(Any, SimpleNamespace(lower_better=lower_better)), path,
                             wall_label="seconds since the run started (evaluation included)")


# ------------------------------------------------------------------------------------------------ CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("published baselines (--repo)")
    g.add_argument("--repo", nargs=2, metavar=("KIND", "PATH"), default=None,
                   help="compare inside a baseline: KIND biggan or autogan, PATH its checkout; runs its own "
                        "train.py per technique and seed (see --config)")
    g.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="with --repo: the Inception weights for IS/FID, a local file (torch-fidelity's "
                        "pt_inception-2015-12-05 state dict); nothing is downloaded")
    g.add_argument("--fid-reference", default=None, metavar="PATH",
                   help="with --repo: FID reference statistics (.npz with mu, sigma) or an image folder "
                        "(default for the tiny configuration: the statistics of its image set)")
    g.add_argument("--config", choices=("tiny", "published"), default=None,
                   help="with --repo: the repository's published CIFAR-10 flags, or a tiny CPU run "
                        "(default: published on a GPU, tiny on the CPU; see --device)")
    g.add_argument("--image-folder", default=None, metavar="DIR",
                   help="with --repo: train on these images (DIR/<class>/*.png) instead of the repository's "
                        "dataset (tiny default: scikit-learn's digits at 32 x 32, written to the output folder)")


@dataclass
class Settings:
    """What ``--repo`` asks for, checked before anything is written."""

    repo_kind: str
    repo: Path
    weights: str
    config: str
    cpu: bool
    techniques: list[str]
    image_folder: Path | None
    reference: Path | None
    #: CUDA_VISIBLE_DEVICES for the runs (``--device cuda:N``), or None to leave it as it is
    visible_devices: str | None = None


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """Validate the ``--repo`` arguments (``parser.error`` names the wrong one); nothing is written."""
    import torch

    from gan_optim.adapters._techniques import TECHNIQUES

    repo_kind, repo_text = args.repo
    if repo_kind not in REPOS:
        parser.error(f"argument --repo: invalid kind {repo_kind!r} (biggan or autogan)")
    repo = Path(repo_text).expanduser().resolve()
    if not (repo / "train.py").is_file():
        parser.error(f"argument --repo: no train.py in {repo}")
    marker = {"biggan": "train_fns.py", "autogan": "functions.py"}[repo_kind]
    if not (repo / marker).is_file():
        parser.error(f"argument --repo: {repo} is not a{'n' if repo_kind == 'autogan' else ''} {repo_kind} "
                     f"checkout (no {marker})")
    if args.inception_weights is None:
        parser.error("argument --repo needs --inception-weights PATH (a local file: IS/FID are read from each run)")
    if not Path(args.inception_weights).expanduser().is_file():
        parser.error(f"argument --inception-weights: {args.inception_weights!r} is not a file")
    if args.device is None:
        cuda, visible = torch.cuda.is_available(), None
    else:
        from .pools import resolve_device

        try:
            device = resolve_device(args.device)
        except ValueError as err:
            parser.error(f"argument --device: {err}")
        cuda, visible = device.type == "cuda", None
        if device.index is not None:  # cuda:N counts the devices this process sees, as torch does
            seen = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
            visible = seen[device.index] if seen else str(device.index)
    # The toy compare's name for the plain run is "baseline"; the launcher's is "none".
    techniques = ["none" if t.strip() == "baseline" else t.strip() for t in args.techniques.split(",") if t.strip()]
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown:
        parser.error(f"argument --techniques: with --repo, techniques are {', '.join(TECHNIQUES)} "
                     f"(not {', '.join(unknown)})")
    image_folder = None if args.image_folder is None else Path(args.image_folder).expanduser().resolve()
    if image_folder is not None and not image_folder.is_dir():
        parser.error(f"argument --image-folder: {args.image_folder!r} is not a folder")
    reference = None if args.fid_reference is None else Path(args.fid_reference).expanduser().resolve()
    if reference is not None and not reference.exists():
        parser.error(f"argument --fid-reference: {args.fid_reference!r} does not exist")
    return Settings(repo_kind, repo, str(Path(args.inception_weights).expanduser().resolve()),
                    args.config or ("published" if cuda else "tiny"), not cuda, techniques, image_folder, reference,
                    visible)


def run(settings: Settings, args: argparse.Namespace, script_args: Sequence[str], out: Path) -> int:
    """``compare --repo``: launch every run, read the logs, write results.csv, summary.md and curves.png."""
    out = out.resolve()  # each run works in a folder of its own
    repo_kind, repo, weights, config = settings.repo_kind, settings.repo, settings.weights, settings.config
    cpu, techniques, image_folder, reference = (settings.cpu, settings.techniques, settings.image_folder,
                                                settings.reference)
    if image_folder is None and config == "tiny":
        image_folder = write_digits_images(out / "images")
    if reference is None and image_folder is not None:
        print(f"FID reference: statistics of {TINY_REFERENCE} images of {image_folder}", file=sys.stderr)
        reference = reference_statistics(weights, image_folder, out / "fid_reference.npz", TINY_REFERENCE)
    elif reference is None and repo_kind == "autogan":
        dataset = _last_value([*CONFIGS[repo_kind][config], *script_args], ("--dataset",), "cifar10").lower()
        own = repo / AUTOGAN_FID_STAT.get(dataset, "fid_stat/none")
        reference = own if own.is_file() else None  # the checkout's own statistics, as its train.py uses
    elif reference is not None and reference.is_dir():
        reference = reference_statistics(weights, reference, out / "fid_reference.npz", 10_000)
    flags = [*CONFIGS[repo_kind][config], *script_args]
    seeds = list(range(args.seeds or REPO_SEEDS))
    n_images = len(image_files(image_folder)) if image_folder is not None else 50_000
    batches_per_epoch = math.ceil(n_images / int(_last_value(flags, ("-dis_bs", "--dis_batch_size"), "64")))
    dataset = _last_value(flags, ("--dataset",), "cifar10").lower()
    runs, jobs = [], []
    for technique in techniques:
        for seed in seeds:
            run_ = BaselineRun(technique, seed, out / "runs" / f"{technique}-seed{seed}")
            run_flags = [*flags, SEED_FLAG[repo_kind], str(seed)]
            if repo_kind == "biggan":
                run_flags += ["--experiment_name", "run"]
                reader: Any = lambda folder, started: read_biggan_log(folder, "run", started)  # noqa: E731
            else:
                run_flags += ["--exp_name", "run"]
                if reference is not None and dataset in AUTOGAN_FID_STAT:
                    # AutoGAN asserts its fid_stat file in the working folder: the same reference for every run.
                    stat = run_.folder / AUTOGAN_FID_STAT[dataset]
                    stat.parent.mkdir(parents=True, exist_ok=True)
                    stat.write_bytes(reference.read_bytes())
                reader = lambda folder, started: read_autogan_log(folder, started, batches_per_epoch)  # noqa: E731
            cmd = _command(repo_kind, repo, technique, seed, run_flags, weights=weights, reference=reference,
                           cpu=cpu, image_folder=image_folder)
            runs.append(run_)
            jobs.append((run_, cmd, reader))
    from .runner import default_workers

    workers = 1 if not cpu else (args.workers or default_workers())
    print(f"{len(jobs)} runs of {repo}/train.py ({config} configuration, {workers} at a time); each run's output "
          f"is in {out / 'runs'}/<technique>-seed<k>/output.log", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_one, run_, cmd, args.threads, reader, settings.visible_devices)
                   for run_, cmd, reader in jobs]
        for future in futures:
            done = future.result()
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
            print(f"  {done.technique} seed {done.seed}: {status}, {len(done.rows)} evaluations, "
                  f"{done.seconds:.0f} s", file=sys.stderr)
    has_fid = reference is not None
    write_results(runs, repo_kind, out / "results.csv")
    md = summary_markdown(runs, repo_kind, repo, config, flags, seeds, has_fid)
    (out / "summary.md").write_text(md)
    plot(runs, out / "curves.png", has_fid)
    print(md)
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'curves.png'}")
    return 0 if all(r.returncode == 0 and r.rows for r in runs) else 1

