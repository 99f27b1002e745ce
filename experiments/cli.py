"""``gan-optim compare`` and ``gan-optim reproduce`` (dispatched from :mod:`gan_optim.cli`)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any
from pathlib import Path

import torch

from gan_optim.cli import positive_float as _positive_float, positive_int as _positive_int

__all__ = ["DEFAULT_TECHNIQUES", "compare_main", "main", "reproduce_main"]

DEFAULT_TECHNIQUES = "baseline,aw,wegan,adaptive,ttur,freeadv"
TOY_TASKS = ("dirac", "saddle", "angles")
PROTOCOL_CHOICES = ("quick", "paper", "short")
DEFAULT_PROTOCOL = "quick"


def _target(text: str) -> tuple[str, float]:
    metric, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not metric or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r} (expected METRIC=VALUE, e.g. mmd=0.01)")
    return metric, number


def _device(parser: argparse.ArgumentParser, device: str | None) -> str:
    """``--device`` checked (one line and exit 2 when it is not there); ``cpu`` when not given."""
    from .pools import resolve_device

    try:
        return str(resolve_device("cpu" if device is None else device))
    except ValueError as err:
        parser.error(f"argument --device: {err}")


def _device_note(device: str) -> str:
    return "" if device == "cpu" else f" G and D trained on `{device}`; every metric computed on the CPU."


def _output_folder(parser: argparse.ArgumentParser, out: str | None, default: str, overwrite: bool,
                   created: list[Path] | None = None) -> Path:
    """The folder to write: an explicit --out must be new or empty (or --overwrite); the default gets a fresh
    timestamped subfolder, so running the same command twice keeps both results. The folders this makes are
    appended to ``created`` (outermost first), so that a refused run can take them away again."""
    if out is None:
        path = Path(default) / time.strftime("%Y%m%d-%H%M%S")
        suffix = 1
        while path.exists():
            path = Path(default) / f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
            suffix += 1
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            parser.error(f"--out {out}: exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            parser.error(f"--out {out}: exists and is not empty (pass --overwrite to write into it)")
    new = [d for d in (path, *path.parents) if not d.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
        if created is not None:
            created.extend(new)
        probe = path / ".gan_optim_write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        parser.error(f"--out {path}: cannot write there ({err.strerror or err})")
    return path


def _compare_parser() -> argparse.ArgumentParser:
    from .baselines import REPO_SEEDS, add_arguments

    p = argparse.ArgumentParser(prog="gan-optim compare",
                                description="Run techniques side by side on a small task, on the CPU or a GPU "
                                            "(same seeds, initial weights and data per technique).")
    p.add_argument("--task", default="gaussians8", choices=("gaussians8", "digits", *TOY_TASKS),
                   help="task (default gaussians8); dirac, saddle and angles run their claim's setting")
    p.add_argument("--protocol", choices=PROTOCOL_CHOICES, default=None,
                   help="gaussians8 only: 'quick' (default; the plain-GAN protocol of Zadorozhnyy et al. §5.3, "
                        "4000 of its 25 000 iterations, about 16 min on 2 cores at 10 seeds), 'paper' (the whole "
                        "protocol: 25 000 iterations, batch 512) or 'short' (the 1000-iteration ReLU setting of "
                        "earlier releases)")
    p.add_argument("--techniques", default=DEFAULT_TECHNIQUES,
                   help="comma-separated; '+' composes components, ':' gives a value "
                        "(e.g. baseline,aw+adaptive,wegan:0.1,nd:5). Default: %(default)s")
    p.add_argument("--seeds", type=_positive_int, default=None,
                   help=f"number of seeds 0..N-1 (default {COMPARE_SEEDS}: enough for the verdict rule to show a "
                        f"difference; with --repo {REPO_SEEDS})")
    p.add_argument("--steps", type=_positive_int, default=None, help="training iterations per run (task default)")
    p.add_argument("--eval-every", type=_positive_int, default=None, help="iterations between evaluations")
    p.add_argument("--out", default=None,
                   help="output folder; must be new or empty unless --overwrite (default: a new timestamped "
                        "folder under gan_optim_runs/compare/)")
    p.add_argument("--overwrite", action="store_true", help="write into an --out that already holds files")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (task default; not with --protocol quick or paper: those use D 1e-4 / G 1e-3)")
    p.add_argument("--batch", type=_positive_int, default=None, help="batch size (task default)")
    p.add_argument("--losses", choices=("plain", "paper"), default=None,
                   help="digits and --protocol short: 'plain' (default) the task's D loss and the non-saturating G "
                        "loss for every technique; 'paper' each technique with its paper's loss and optimiser "
                        "(--protocol quick/paper fix each technique's loss under that protocol)")
    p.add_argument("--target", type=_target, default=None, help="METRIC=VALUE for time-to-target (task default)")
    p.add_argument("--radius", type=_positive_float, default=1.0,
                   help="gaussians8 with --protocol short: ring radius (1: aw paper, 3: WeGAN)")
    p.add_argument("--classifier-path", default=None,
                   help="digits: where the FID-digits classifier is cached (default ~/.cache/gan_optim/"
                        "digits_classifier.pt, or $GAN_OPTIM_CACHE)")
    p.add_argument("--device", default=None,
                   help="where G and D train: cpu (default), cuda or cuda:N; data, noise and initial weights "
                        "are drawn on the CPU and every metric is computed there, whatever the device. With "
                        "--repo: default cuda when there is one")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="runs in parallel, one process and one thread each (default: one per CPU core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(p)
    return p


STEPS_DEFAULT = {"gaussians8": 1000, "digits": 2000}
#: default seeds on the toy tasks: enough for the verdict rule (at 3 a side no exact rank test reaches
#: α = 0.05; through a repository's own train.py, where runs are hours each, :data:`.baselines.REPO_SEEDS`)
COMPARE_SEEDS = 10


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Take away the folders a refused run made (innermost first), never one that holds anything."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def compare_main(argv: Sequence[str]) -> int:
    """``gan-optim compare``: writes results.csv, summary.md, curves.png and samples.png under ``--out``.

    A refused run (exit status 2) leaves no output folder behind."""
    created: list[Path] = []
    try:
        code = _compare(argv, created)
    except SystemExit as exit_:
        if exit_.code == 2:
            _remove_if_empty(created)
        raise
    if code == 2:
        _remove_if_empty(created)
    return code


def _compare(argv: Sequence[str], created: list[Path]) -> int:
    parser = _compare_parser()
    argv = list(argv)
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if script_args and args.repo is None:
        parser.error("arguments after `--` go to a baseline's train.py: they need --repo KIND PATH")
    torch.set_num_threads(args.threads)
    if args.repo is not None:
        from . import baselines

        settings = baselines.check(args, parser)
        out = _output_folder(parser, args.out, "gan_optim_runs/compare", args.overwrite, created)
        return baselines.run(settings, args, script_args, out)
    device = _device(parser, args.device)
    out = _output_folder(parser, args.out, "gan_optim_runs/compare", args.overwrite, created)
    if args.task in TOY_TASKS:
        from .claims import run_claim

        res = run_claim(args.task, out, device=device)
        print(res.line)
        print(f"wrote {', '.join(str(f) for f in res.files)}")
        return 0
    if args.protocol is not None and args.task != "gaussians8":
        parser.error(f"argument --protocol: applies to --task gaussians8 only, not {args.task}")
    protocol = args.protocol or (DEFAULT_PROTOCOL if args.task == "gaussians8" else None)
    if protocol in ("quick", "paper"):
        if args.losses is not None:
            parser.error(f"argument --losses: --protocol {protocol} fixes each technique's loss (see its summary.md); "
                         "--losses applies to --task digits and --protocol short")
        return _compare_paper(parser, args, protocol, out, device)
    from .runner import default_workers, run_compare, summarize, summary_markdown
    from .tasks import make_task

    options = {"radius": args.radius} if args.task == "gaussians8" else {"classifier_path": args.classifier_path}
    task = make_task(args.task, **options)
    target = args.target
    if target is not None and target[0] not in task.lower_better:
        parser.error(f"argument --target: unknown metric {target[0]!r} (metrics: {', '.join(task.lower_better)})")
    techniques = [t.strip() for t in args.techniques.split(",") if t.strip()]
    steps = args.steps or STEPS_DEFAULT[args.task]
    every = args.eval_every or max(steps // 20, 1)
    seeds = list(range(args.seeds or COMPARE_SEEDS))
    t0 = time.perf_counter()
    try:
        results = run_compare(task, techniques, seeds, steps, eval_every=every, progress=not args.no_progress,
                              workers=args.workers or default_workers(), lr=args.lr, batch=args.batch,
                              losses=args.losses or "plain", device=device)
    except ValueError as err:
        print(f"gan-optim compare: {err}", file=sys.stderr)
        return 2
    settings = {r.technique: r.setting for r in results if r.setting is not None}
    note = (f"Losses (`--losses {args.losses or 'plain'}`): "
            + "; ".join(f"`{name}`: {setting.source}" for name, setting in settings.items()) + "."
            + _device_note(device))
    md = summary_markdown(summarize(results, task, target), task, steps=steps, seeds=seeds, target=target,
                          note=note, results=results)
    return _write_outputs(results, task, md, out, t0)


def _write_outputs(results: Sequence[Any], task: Any, md: str, out: Path, t0: float) -> int:
    """results.csv, summary.md (``md``), curves.png and samples.png of a compare; prints the summary."""
    from . import plots
    from .runner import write_csv

    write_csv(results, out / "results.csv")
    (out / "summary.md").write_text(md)
    plots.plot_curves(results, task, out / "curves.png")
    plots.plot_samples(results, task, out / "samples.png")
    print(md)
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}, {out / 'curves.png'}, {out / 'samples.png'} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def _compare_paper(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, out: Path,
                   device: str) -> int:
    """compare on gaussians8 under the aw paper's §5.3 protocol (``paper``) or its shorter form (``quick``)."""
    from . import paper_gaussians8 as paper
    from .runner import default_workers, summarize, summary_markdown

    if args.lr is not None:
        parser.error(f"argument --lr: --protocol {name} uses the paper's two rates (D 1e-4, G 1e-3); "
                     "--protocol short takes one --lr")
    if args.radius != 1.0:
        parser.error(f"argument --radius: --protocol {name} is on the unit circle; --protocol short takes --radius")
    protocol = dict(paper.PROTOCOLS[name])
    if args.steps is not None:
        protocol["iterations"] = args.steps
    if args.batch is not None:
        protocol["batch"] = args.batch
    steps = int(protocol.get("iterations", paper.PROTOCOL["iterations"]))
    protocol["every"] = min(args.eval_every or max(steps // 20, 1), steps)
    task = paper.compare_task(protocol)
    target = args.target
    if target is not None and target[0] not in task.lower_better:
        parser.error(f"argument --target: unknown metric {target[0]!r} (metrics: {', '.join(task.lower_better)})")
    techniques = [t.strip() for t in args.techniques.split(",") if t.strip()]
    seeds = list(range(args.seeds or COMPARE_SEEDS))
    t0 = time.perf_counter()
    try:
        runs = paper.run_all(techniques, seeds, protocol, workers=args.workers or default_workers(),
                             progress=not args.no_progress, evaluate=True, device=device)
    except ValueError as err:
        print(f"gan-optim compare: {err}", file=sys.stderr)
        return 2
    results = paper.to_results(runs, task)
    note = paper.describe(name, protocol) + _device_note(device)
    if name == "quick":
        note += (" Whether `quick` gives `paper`'s verdicts is claim `gaussians8-protocols` in docs/RESULTS.md "
                 "(`gan-optim reproduce gaussians8-protocols`).")
    md = summary_markdown(summarize(results, task, target), task, steps=steps, seeds=seeds, target=target,
                          title=f"gan-optim compare: gaussians8, protocol {name}", note=note, results=results)
    return _write_outputs(results, task, md, out, t0)


def reproduce_main(argv: Sequence[str]) -> int:
    """``gan-optim reproduce CLAIM|all``: run paper claims' settings, write plots and summary CSVs, print verdicts."""
    from .claims import CLAIMS, DEFAULT_SEEDS, run_claim, write_rows

    p = argparse.ArgumentParser(prog="gan-optim reproduce",
                                description="Run one paper claim's setting (or all of them), write its plot, its "
                                            "raw CSV and a summary CSV (means with bootstrap 95% intervals), "
                                            "and print a verdict.")
    p.add_argument("claim", choices=[*CLAIMS, "all"], help="a claim, or all of them")
    p.add_argument("--out", default="gan_optim_runs/reproduce", help="output folder (default %(default)s)")
    p.add_argument("--seeds", type=_positive_int, default=None,
                   help="number of seeds (claim default: " + ", ".join(f"{c} {n}" for c, n in DEFAULT_SEEDS.items())
                   + ")")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few steps only (smoke test; verdict meaningless)")
    mode.add_argument("--reduced", action="store_true",
                      help="fewer iterations for the neural claims (minutes on a CPU; not the full protocol)")
    p.add_argument("--write-docs", metavar="FILE", default=None,
                   help="with 'all': write the results page (Markdown) from the summary CSVs")
    p.add_argument("--from-csv", metavar="DIR", default=None,
                   help="with 'all' and --write-docs: decide every claim again from the raw data in DIR/raw "
                        "(the stored summary where a claim has none) and render the page, without running")
    p.add_argument("--write-summaries", action="store_true",
                   help="with --from-csv: rewrite DIR/<claim>.csv from the raw data first")
    p.add_argument("--classifier-path", default=None, help="digits: FID-digits classifier cache path")
    p.add_argument("--device", default=None,
                   help="where the neural claims' G and D train: cpu (default), cuda or cuda:N (metrics on the CPU)")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(list(argv))
    if args.claim != "all" and (args.write_docs or args.from_csv):
        p.error("--write-docs and --from-csv need the claim 'all'")
    if args.from_csv and not args.write_docs:
        p.error("--from-csv needs --write-docs FILE")
    if args.write_summaries and not args.from_csv:
        p.error("--write-summaries needs --from-csv DIR")
    if args.from_csv:
        if args.write_summaries:
            _summaries_from_raw(p, args.from_csv)
        return _write_docs(p, args.from_csv, args.write_docs)
    device = _device(p, args.device)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {out}: exists and is not a folder")
    kwargs = {"quick": args.quick, "reduced": args.reduced, "classifier_path": args.classifier_path,
              "device": device}
    if args.seeds is not None:
        kwargs["seeds"] = args.seeds
    log = logging.getLogger(__name__)
    names = list(CLAIMS) if args.claim == "all" else [args.claim]
    for name in names:
        t0 = time.perf_counter()
        res = run_claim(name, out / name if args.claim == "all" else out, **kwargs)
        summary = write_rows(out / (f"{name}.csv" if args.claim == "all" else f"{name}_summary.csv"), res.rows)
        if args.claim == "all":
            _collect_raw(out, name)
        print(res.line)
        log.info("claim %s took %.1f s; files: %s", name, time.perf_counter() - t0,
                 [str(f) for f in [*res.files, summary]])
    if args.write_docs:
        return _write_docs(p, out, args.write_docs)
    return 0


def _collect_raw(out: Path, name: str) -> None:
    """Copy a claim's raw file to ``out/raw/``, where ``--from-csv`` reads it."""
    import shutil

    from .claims import RAW_SUFFIX

    src = out / name / f"{name}{RAW_SUFFIX}"
    if src.is_file():
        (out / "raw").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / "raw" / src.name)


def _summaries_from_raw(parser: argparse.ArgumentParser, folder: str | Path) -> None:
    """Rewrite each claim's summary CSV in ``folder`` from its raw file, where it has one."""
    from .claims import RAW_CLAIMS, claim_from_raw, write_rows
    from .results_doc import raw_path

    for name in RAW_CLAIMS:
        raw = raw_path(folder, name)
        if raw.is_file():
            try:
                res = claim_from_raw(name, raw)
            except (OSError, ValueError, KeyError) as err:
                parser.error(f"--write-summaries: {raw}: {err}")
            write_rows(Path(folder) / f"{name}.csv", res.rows)
            print(res.line)


def _write_docs(parser: argparse.ArgumentParser, folder: str | Path, target: str) -> int:
    from .results_doc import render

    try:
        text = render(folder)
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"--write-docs: {err}")
    try:
        Path(target).write_text(text)
    except OSError as err:
        parser.error(f"--write-docs {target}: cannot write there ({err.strerror or err})")
    print(f"wrote {target}")
    return 0


def main(command: str, argv: Sequence[str]) -> int:
    """Entry point used by :mod:`gan_optim.cli`: ``command`` is ``"compare"`` or ``"reproduce"``."""
    if command == "compare":
        return compare_main(argv)
    if command == "reproduce":
        return reproduce_main(argv)
    print(f"gan-optim: unknown experiments command {command!r}", file=sys.stderr)
    return 2
