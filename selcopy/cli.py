"""The `selcopy` command: sample | ls | show | run | results | eval | plot.

Exit status: 0 success, 2 bad input (one line on stderr), 1 a run failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from selcopy.errors import CONTROL, SelcopyError, did_you_mean, explain

EXAMPLES = """examples:
  selcopy sample program --count 5 --input-length 2,5 --num-operations 1,5
  selcopy sample selective-copy --count 3 --area 20 --num-items 4
  selcopy ls models
  selcopy show experiments/quickstart.yml
  selcopy run experiments/quickstart.yml
  selcopy results experiments/quickstart.yml --sort validation_sample_error%
  selcopy plot experiments/quickstart.yml --group-by attn --out quickstart.png
  selcopy run experiments/article/03-easy-examples.yml --where '${l} == 6'
"""


def counted(n: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{n:,} {noun}{'s' * (n != 1)}"


def cmd_sample(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.tasks import TASKS, make_task
    from selcopy.tasks.selective_copy import show
    from selcopy.tasks.split import unique_samples

    settings = task_flags(TASKS[args.task].Config, extra)
    task = make_task(args.task, settings)
    batch = unique_samples(task, args.count, torch.Generator().manual_seed(args.seed))
    texts = batch.texts()
    if args.task == "selective-copy" and not args.raw:
        texts = [show(t) for t in texts]
    sys.stdout.write("".join(t + "\n" for t in texts))
    return 0


def task_flags(config_cls: Any, extra: list[str]) -> dict[str, str]:
    """`--input-length 2,5 --stack=fifo` -> {"input_length": "2,5", "stack": "fifo"}."""
    known = {name.replace("_", "-"): name for name in config_cls.model_fields}
    settings: dict[str, str] = {}
    i = 0
    while i < len(extra):
        flag, _, value = extra[i].partition("=")
        if not flag.startswith("--") or flag[2:] not in known:
            dashed = "--{}".format
            hint = did_you_mean(flag.lstrip("-"), known, show=dashed, listed=dashed, known="options", list_always=True)
            raise SelcopyError(f"unknown option {flag!r}{hint}")
        if not value:
            if i + 1 >= len(extra):
                raise SelcopyError(f"option {flag} needs a value")
            i += 1
            value = extra[i]
        settings[known[flag[2:]]] = value
        i += 1
    return settings


def cmd_ls(args: argparse.Namespace, extra: list[str]) -> int:
    if args.what == "tasks":
        from selcopy.tasks import TASKS

        for name, cls in TASKS.items():
            doc = (cls.__module__ and sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
            print(f"{name}: {doc}")
            for field, info in cls.Config.model_fields.items():
                print(f"    --{field.replace('_', '-'):<18} {info.default!s:<24} {info.description or ''}")
        from selcopy.experiments.spec import SplitSettings

        print("in an experiment file's task section, also (and validation_<setting>, test_<setting>):")
        for field, info in SplitSettings.model_fields.items():
            print(f"    {field:<20} {info.default!s:<24} {info.description or ''}")
    else:
        from selcopy.models import describe_models

        for name, description, defaults in describe_models():
            print(f"{name}: {description}")
            for key, value in defaults.items():
                print(f"    {key:<22} {value!s}")
    return 0


def load(args: argparse.Namespace):
    """The experiment of `args.file`, narrowed to the runs `--where` selects."""
    from selcopy.experiments import load_experiment
    from selcopy.experiments.grid import select_runs

    return select_runs(load_experiment(args.file), getattr(args, "where", None))


def check_data(exp) -> None:
    """Draw the data of every distinct task setting once, so that `show` reports settings whose
    validation set or training epoch cannot be filled (exit 2) as `run` would."""
    import json

    from selcopy.errors import SelcopyError

    checked: set[str] = set()
    for run in exp.runs:
        key = json.dumps(run.task, sort_keys=True, default=str)
        if key in checked:
            continue
        checked.add(key)
        try:
            run.check_data()
        except SelcopyError as error:
            raise SelcopyError(f"{exp.path}: run {run.name}: {error}") from None


def cmd_show(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    exp = load(args)
    check_data(exp)
    listing = [{"name": r.name, "variables": r.variables, "params": r.params(),
                "settings": {"task": r.task, "model": r.model, "train": r.train}} for r in exp.runs]
    if args.json:
        print(json.dumps(listing, indent=1))
        return 0
    print(f"{exp.path}: {counted(len(listing), 'run')} of experiment '{exp.name}' (nothing is trained by show)")
    width = max(len(r["name"]) for r in listing)
    for r in listing:
        model = r["settings"]["model"]["name"]
        print(f"  {r['name']:<{width}}  {model:<11} {r['params']:>10,} params  "
              f"{r['settings']['train']['max_inputs']:>11,} inputs")
    return 0


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.experiments.runner import run_grid
    from selcopy.train.device import pick_device

    exp = load(args)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_data(exp)  # settings that cannot be drawn are bad input: refused before any run trains
    writable_folder(Path(args.runs), "--runs")
    jobs = min(args.jobs, len(exp.runs))
    each = f"with {counted(args.threads, 'thread')} each" if args.threads else "the cores divided"
    at_once = f", {jobs} at a time {each}" if jobs > 1 else ""
    runs = counted(len(exp.runs), "run")
    print(f"{exp.path}: {runs} on {device}{at_once}, stored under {args.runs}/", file=sys.stderr)
    try:
        status = run_grid(exp.runs, Path(args.runs), device, skip_existing=args.skip_existing, jobs=jobs,
                          threads=args.threads)
    except KeyboardInterrupt:
        import shlex

        again = shlex.join(["selcopy", *args.argv, *["--skip-existing"] * (not args.skip_existing)])
        print(f"selcopy: interrupted; `{again}` resumes where it stopped "
              "(without --skip-existing, finished runs train again)", file=sys.stderr)
        return 130
    if args.table:
        try:
            cmd_results(argparse.Namespace(file=args.file, where=args.where, runs=args.runs, average=None, std=[],
                                           sort=[], include=[], exclude=[], json=False, unfinished=False), [])
        except SelcopyError as error:  # no finished run to show: the runs' status is what counts
            print(f"selcopy: {error}", file=sys.stderr)
    return status


def writable_folder(folder: Path, option: str) -> None:
    """SelcopyError unless `folder` exists or can be made, and files can be written in it."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise SelcopyError(f"{option} {folder}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SelcopyError(f"{option} {folder}: cannot write there: {error.strerror or error}") from None


def cmd_results(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from selcopy.experiments.store import RunStore, check_stored
    from selcopy.report import tables

    exp = load(args)
    check_stored(exp.runs, Path(args.runs), args.file)
    stores = [RunStore(Path(args.runs), r.name) for r in exp.runs]
    stored = [(r.variables, store.result()) for r, store in zip(exp.runs, stores)]
    latest = None
    if args.unfinished:  # runs still training (no result yet) at their latest validation; failed ones stay out
        latest = [None if store.result() else (store.metrics() or [None])[-1] for store in stores]
    rows = tables.collect(stored, latest)
    missing = len(exp.runs) - len(rows)
    if not rows:
        what = "logged metrics" if args.unfinished else "finished runs"
        raise SelcopyError(f"{args.file}: no {what} under {args.runs}/ yet (run `selcopy run {args.file}`)")
    average = "trial" if args.average is None else args.average  # the default: trial, where the grid has it
    if args.average and args.average not in exp.variables:
        hint = did_you_mean(args.average, exp.variables, show=str, known="matrix variables", list_always=True)
        raise SelcopyError(f"--average {args.average}: not a matrix variable of {args.file}{hint}")
    group = exp.variables + ["inputs"] * bool(args.unfinished)  # trials average only at the same progress
    rows = tables.aggregate(rows, group, average, args.std)
    tables.mark_noise(rows)
    columns = tables.choose_columns(rows, exp.variables, args.include, args.exclude, average,
                                    partial=bool(args.unfinished))
    rows = tables.sort_rows(rows, args.sort)
    if args.json:
        print(json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=1))
    else:
        print(tables.markdown(rows, columns))
    if missing:
        what = "have logged nothing" if args.unfinished else "not finished"
        print(f"({missing} of {len(exp.runs)} runs {what}, left out)", file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.report.plots import load_runs, plot_experiment

    exp = load(args)
    runs = load_runs(exp, Path(args.runs))
    if not runs:
        raise SelcopyError(f"{args.file}: no run has logged metrics under {args.runs}/ yet")
    out = Path(args.out or f"{exp.name.replace('/', '-')}.png")
    if CONTROL.search(str(out)):
        raise SelcopyError(f"the plot's file name {str(out)!r} holds a control character (a line break, tab, NUL); "
                           "give another with --out")
    if out.is_dir():
        raise SelcopyError(f"--out {out}: is a folder; give the PNG file to write, e.g. {out / 'curves.png'}")
    path = plot_experiment(runs, exp.variables, args.metric, args.group_by, out, exp.name)
    print(path)
    return 0


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from selcopy.experiments import RunSpec
    from selcopy.experiments.yamlfile import BoundedLoader, Unreadable, load_file
    from selcopy.tasks import TASKS, make_task
    from selcopy.tasks.split import unique_samples
    from selcopy.train import checkpoint
    from selcopy.train.device import pick_device
    from selcopy.train.loop import evaluate
    from selcopy.train.metrics import summarize

    folder = Path(args.run)
    config_path = folder / "config.yaml"
    if not config_path.is_file():
        raise SelcopyError(f"{folder}: not a run folder (no config.yaml)")
    try:
        data = load_file(config_path, BoundedLoader)
    except Unreadable as error:
        raise SelcopyError(f"{config_path}: cannot be read: {error}") from None
    spec = RunSpec.from_config_dict(data, str(config_path))
    path = folder / "checkpoints" / f"{args.checkpoint}.pt"
    if not path.is_file():
        raise SelcopyError(f"{path}: no such checkpoint (the run has not validated yet?)")
    try:
        state = checkpoint.load_state(path)
    except (checkpoint.CorruptCheckpoint, OSError) as error:
        raise SelcopyError(str(error)) from None
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = spec.build_model()
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        raise SelcopyError(f"{path}: does not fit the model of {config_path}: "
                           f"{str(error).strip().splitlines()[-1].strip()}") from None
    model.to(device)
    if args.data == "test" and not spec.has_test:
        raise SelcopyError(f"--data test: {config_path} defines no test set (no test_<setting> in its task)")
    name, settings = spec.task_settings(args.data)
    changes = task_flags(TASKS[name].Config, extra)
    task = make_task(name, {**settings, **changes})
    if changes or args.count or args.seed is not None:  # a new draw (it may hold training questions)
        count = args.count or spec.task[f"{args.data}_count"]
        seed = spec.task[f"{args.data}_seed"] if args.seed is None else args.seed
        eval_data = unique_samples(task, count, torch.Generator().manual_seed(seed))
        flags = [f"--{k.replace('_', '-')} {v}" for k, v in changes.items()]
        described = f"drawn from seed {seed}" + "".join(f", {f}" for f in flags)
    else:  # the run's own fixed set, exactly
        split = spec.build_split()
        eval_data = split.validation if args.data == "validation" else split.test
        described = f"the run's {args.data} set"
    metrics = summarize(evaluate(model, eval_data, spec.train_config(), device), "")
    report = {"run": spec.name, "checkpoint": args.checkpoint, "inputs": int(state["inputs"]),
              "samples": len(eval_data), "data": described,
              "task": {"name": name, **task.config.model_dump(mode="json")}, "metrics": metrics}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{spec.name}: {args.checkpoint} checkpoint at {report['inputs']:,} inputs on {len(eval_data):,} samples "
          f"({described})")
    for key, value in metrics.items():
        print(f"  {key:<22} {value:.6g}")
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**63 - 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selcopy",
        description="Generate algorithmic sequence tasks, train small models on them, report results.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="print samples of a task, one per line",
                       epilog="task settings as flags, e.g. --input-length 2,5 (see `selcopy ls tasks`)")
    p.add_argument("task", help="program | selective-copy")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--raw", action="store_true", help="print the exact bytes (selective-copy: spaces, not dots)")
    p.set_defaults(func=cmd_sample, takes_extra=True)

    p = sub.add_parser("show", help="expand and validate a grid, list its runs (trains nothing)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="a list of {name, variables, settings, params}")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("run", help="train every run of a grid, resumably")
    p.add_argument("file")
    p.add_argument("--skip-existing", action="store_true", help="leave finished runs as they are")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU) | cpu | cuda[:N] | mps")
    p.add_argument("--runs", default="runs", help="folder that holds the run folders (default: runs)")
    p.add_argument("--table", action="store_true", help="print the result table at the end")
    p.add_argument("--threads", type=positive_int, default=0,
                   help="torch CPU threads (of each job; default: the cores, divided between the jobs)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="train this many runs at once, each in a process of its own (default: 1)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("results", help="the article-style table of a grid's stored runs")
    p.add_argument("file")
    p.add_argument("--runs", default="runs")
    p.add_argument("--average", default=None,
                   help="matrix variable to average over (default: trial, if the grid has it; '' for none)")
    p.add_argument("--std", nargs="*", default=[], metavar="COL", help="also show the std of these columns")
    p.add_argument("--sort", nargs="*", default=[], metavar="COL", help="sort by columns; -COL or COL:desc descending")
    p.add_argument("--include", nargs="*", default=[], metavar="COL", help="add columns, e.g. train_loss")
    p.add_argument("--exclude", nargs="*", default=[], metavar="COL", help="drop columns")
    p.add_argument("--json", action="store_true")
    p.add_argument("--unfinished", action="store_true",
                   help="also show runs that have not finished, at their latest validation (column inputs)")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("eval", help="evaluate a run's checkpoint on its validation set or on other task settings",
                       epilog="task settings as flags change the evaluation data, e.g. --num-operations 6,8 "
                              "(a set drawn with settings that training also draws from may hold training "
                              "questions; the run's own validation set never does)")
    p.add_argument("run", help="a run folder, e.g. runs/quickstart/trial-1_attn-0,0,T")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest", "previous"])
    p.add_argument("--data", default="validation", choices=["validation", "test"],
                   help="the run's fixed set to use, or whose settings task flags change (default: validation)")
    p.add_argument("--count", type=positive_int, default=0, help="samples (default: the run's validation_count)")
    p.add_argument("--seed", type=seed_int, default=None,
                   help="seed of the drawn set (default: the run's validation_seed)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU) | cpu | cuda[:N] | mps")
    p.add_argument("--threads", type=positive_int, default=0, help="torch CPU threads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval, takes_extra=True)

    p = sub.add_parser("plot", help="error curves of a grid's runs (mean and min-max band over trials)")
    p.add_argument("file")
    p.add_argument("--runs", default="runs")
    p.add_argument("--metric", nargs="*", default=None, metavar="COL",
                   help="panels to draw (default: validation loss, mask error, sample error)")
    p.add_argument("--group-by", default=None, metavar="VAR", help="colour by this matrix variable")
    p.add_argument("--out", default=None, help="PNG path (default: <experiment name>.png)")
    p.set_defaults(func=cmd_plot)

    for name in ("show", "run", "results", "plot"):
        sub.choices[name].add_argument(
            "--where", default=None, metavar="EXPR",
            help="only the runs whose matrix values satisfy EXPR, e.g. '${l} == 6' (the $filter language)")

    p = sub.add_parser("ls", help="list what exists")
    p.add_argument("what", choices=["tasks", "models"])
    p.set_defaults(func=cmd_ls)
    return parser


def descending_sort_keys(argv: list[str]) -> list[str]:
    """`--sort l -k` -> `--sort l k:desc`: argparse would read `-k` as an option."""
    out, sorting = [], False
    for arg in argv:
        if arg.startswith("--"):
            sorting = arg == "--sort"
        elif sorting and arg.startswith("-") and len(arg) > 1:
            arg = arg[1:] + ":desc"
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(descending_sort_keys(argv))
    args.argv = argv  # as typed, to repeat in a hint
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except ValidationError as e:
        print(f"selcopy: error: {explain(e)}", file=sys.stderr)
    except SelcopyError as e:
        print(f"selcopy: error: {e}", file=sys.stderr)
    except OSError as e:  # a path the system refuses (permissions, a file where a folder belongs, ...)
        paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        reason = e.strerror or str(e)
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            reason = "a file stands where a folder must be"
        print(f"selcopy: error: {paths or 'file system'}: {reason}", file=sys.stderr)
    except KeyboardInterrupt:
        print("selcopy: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
