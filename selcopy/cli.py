"""The `selcopy` command: sample | ls | show | run | results | eval | plot.

Exit status: 0 success, 2 bad input (one line on stderr), 1 a run failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from selcopy.errors import CONTROL, SelcopyError, explain

STACK_MAX = 16  # = executors.stacked.STACK_MAX, not imported here: the CLI starts without torch

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
    import torch

    from selcopy.experiments.memory import estimate_draw
    from selcopy.tasks import TASKS
    from selcopy.tasks.split import check_count, unique_samples

    if args.task is None:
        if args.help:
            args.parser.print_help()
            return 0
        raise SelcopyError(f"sample: name a task: {', '.join(TASKS)}")
    config_cls = TASKS[args.task]
    if args.help:  # the task's settings as flags, each with its default
        group = args.parser.add_argument_group(f"settings of task {args.task} ({config_cls.description})")
        for key, default, text in config_cls.settings():
            group.add_argument(f"--{key.replace('_', '-')}", metavar="V",
                               help=f"{text} (default: {config_cls.flag_text(default)})".replace("%", "%%"))
        args.parser.print_help()
        return 0
    check_count(args.count, "--count")
    task = config_cls(**config_cls.from_flags(extra)).build()
    estimate_draw(task, args.count).check(f"sample --count {args.count:,}")
    batch = unique_samples(task, args.count, torch.Generator().manual_seed(args.seed))
    texts = batch.texts() if args.raw else [task.show(t) for t in batch.texts()]
    sys.stdout.write("".join(t + "\n" for t in texts))
    return 0


def cmd_ls(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.catalog import MODEL_FILES, TASK_FILES, describe

    files = TASK_FILES if args.what == "tasks" else MODEL_FILES
    flag = "--" if args.what == "tasks" else ""  # task settings are also flags
    for module in files:
        name, description, settings = describe(args.what, module)
        print(f"{name}: {description}")
        for key, default, text in settings:
            label = flag + key.replace("_", "-") if flag else key
            print(f"    {label:<20} {default!s:<24} {text}")
    if args.what == "tasks":
        print("in an experiment file's task section, also (and validation_<setting>, test_<setting>):")
        for key, default, text in describe("experiments", "spec", "SplitSettings")[2]:
            print(f"    {key:<20} {default!s:<24} {text}")
    return 0


def load(args: argparse.Namespace):
    """The experiment of `args.file`, narrowed to the runs `--where` selects."""
    from selcopy.experiments import load_experiment
    from selcopy.experiments.grid import select_runs

    return select_runs(load_experiment(args.file), getattr(args, "where", None))


def cmd_show(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from selcopy.experiments.memory import size_text
    from selcopy.experiments.store import RunStore

    exp = load(args)
    exp.check_data()
    listing = [{"name": r.name, "variables": r.variables, "params": exp.estimates[r.name].params,
                "memory_estimate": exp.estimates[r.name].total,
                "settings": {"task": r.task, "model": r.model, "train": r.train}} for r in exp.runs]
    if args.runs is not None:
        for r in listing:
            r["status"], r["inputs"] = RunStore(Path(args.runs), r["name"]).status()
    if args.json:
        print(json.dumps(listing, indent=1))
        return 0
    print(f"{exp.path}: {counted(len(listing), 'run')} of experiment '{exp.name}' (nothing is trained by show)")
    width = max(len(r["name"]) for r in listing)
    for r in listing:
        model = r["settings"]["model"]["name"]
        status = f"  {status_text(r)}" if args.runs is not None else ""
        print(f"  {r['name']:<{width}}  {model:<11} {r['params']:>10,} params  "
              f"{r['settings']['train']['max_inputs']:>11,} inputs  ~{size_text(r['memory_estimate'])}{status}")
    if args.runs is not None:
        done = sum(r["status"] == "finished" for r in listing)
        print(f"{done} of {counted(len(listing), 'run')} finished under {Path(args.runs).as_posix()}/")
    return 0


def status_text(run: dict) -> str:
    if run["status"] == "started":
        return f"started ({run['inputs']:,} inputs logged)" if run["inputs"] is not None else "started"
    return str(run["status"])


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from selcopy.experiments.executors import EXECUTORS, run_grid
    from selcopy.experiments.runner import GridSettings, available_cores
    from selcopy.files import writable_folder
    from selcopy.train.device import pick_device

    exp = load(args)
    executor = args.executor or ("processes" if args.jobs > 1 else "serial")
    options = EXECUTORS[executor].options(args)  # its own flags (Ray's: one line if Ray is not installed)
    local = EXECUTORS[executor].local  # elsewhere, each worker picks its device and has its own cores
    device = pick_device(args.device if local else "cpu")
    cores = available_cores()
    if args.threads > cores and local:
        raise SelcopyError(f"--threads {args.threads}: more than the {counted(cores, 'core')} this process may use "
                           f"(more threads than cores slow training many-fold); use at most {cores}")
    if args.threads:
        torch.set_num_threads(args.threads)
    exp.check_data()  # settings that cannot be drawn are bad input: refused before any run trains
    writable_folder(Path(args.runs), "--runs")
    jobs = min(args.jobs, len(exp.runs))
    each = f"with {counted(args.threads, 'thread')} each" if args.threads else "the cores divided"
    at_once = f", {jobs} at a time {each}" if jobs > 1 else ""
    stacked = f", runs that differ only in their trial stacked ({args.stack_max} at most)" if args.stack else ""
    runs = counted(len(exp.runs), "run")
    where = device if local else executor
    print(f"{exp.path}: {runs} on {where}{at_once}{stacked}, stored under {args.runs}/", file=sys.stderr)
    grid = GridSettings(Path(args.runs), device, args.skip_existing, args.threads,
                        every_example=args.every_example)
    if args.stack and local:  # on a cluster, the executor stacks itself (its options have `stack_max`)
        executor, options = "stacked", {"stack_max": args.stack_max}
    try:
        status = run_grid(exp.runs, grid, executor, jobs, **options)
    except KeyboardInterrupt:
        import shlex

        again = shlex.join(["selcopy", *args.argv, *["--skip-existing"] * (not args.skip_existing)])
        print(f"selcopy: interrupted; `{again}` resumes where it stopped "
              "(without --skip-existing, finished runs train again)", file=sys.stderr)
        return 130
    if args.table:
        try:
            from selcopy.experiments.results import print_results

            print_results(exp, Path(args.runs), args.file)
        except SelcopyError as error:  # no finished run to show: the runs' status is what counts
            print(f"selcopy: {error}", file=sys.stderr)
    return status


def cmd_results(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.experiments.results import print_results

    print_results(load(args), Path(args.runs), args.file, average=args.average, std=args.std, sort=args.sort,
                  include=args.include, exclude=args.exclude, as_json=args.json, unfinished=args.unfinished)
    return 0


def cmd_plot(args: argparse.Namespace, extra: list[str]) -> int:
    from selcopy.experiments import load_experiment
    from selcopy.experiments.grid import select_runs
    from selcopy.experiments.store import load_runs
    from selcopy.report.plots import combine, plot_experiment

    if extra:  # argparse takes the files only before the first flag
        if any(arg.startswith("-") for arg in extra):
            raise SelcopyError(f"unrecognized arguments: {' '.join(extra)}")
        raise SelcopyError(f"{' '.join(extra)}: a file after a flag; give every file first, then the flags "
                           "(e.g. plot A.yml B.yml --where X --where Y)")
    wheres = args.where or [None]
    if len(wheres) not in (1, len(args.file)):
        raise SelcopyError(f"--where given {len(wheres)} times for {counted(len(args.file), 'file')}: give it once "
                           "(for every file) or once per file, in the files' order ('' selects every run of a file)")
    experiments = []
    for file, where in zip(args.file, wheres * len(args.file) if len(wheres) == 1 else wheres):
        exp = select_runs(load_experiment(file), where)
        runs = load_runs(exp.runs, Path(args.runs), file)
        if not runs:
            raise SelcopyError(f"{file}: no run has logged metrics under {args.runs}/ yet")
        twice = [f for f, (name, _, _) in zip(args.file, experiments) if name == exp.name]
        if twice:
            raise SelcopyError(f"{file}: experiment {exp.name!r} again (as {twice[0]}); to compare parts of one "
                               "grid, plot it once with --group-by")
        experiments.append((exp.name, exp.variables, runs))
    if len(experiments) == 1:
        (title, variables, runs), = experiments
    else:
        (runs, variables), title = combine(experiments), ""
    names = [name.replace("/", "-") for name, _, _ in experiments]
    if args.out is None and len(names) > 1 and len("-vs-".join(names)) > 200:
        raise SelcopyError(f"the names of {len(names)} experiments make too long a file name; give one with --out")
    out = Path(args.out or f"{'-vs-'.join(names)}.png")
    if CONTROL.search(str(out)):
        raise SelcopyError(f"the plot's file name {str(out)!r} holds a control character (a line break, tab, NUL); "
                           "give another with --out")
    if out.is_dir():
        raise SelcopyError(f"--out {out}: is a folder; give the PNG file to write, e.g. {out / 'curves.png'}")
    path = plot_experiment(runs, variables, args.metric, args.group_by, out, title)
    print(path)
    return 0


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    import torch

    from selcopy.experiments.evaluation import evaluate_run, load_run
    from selcopy.tasks import TASKS
    from selcopy.tasks.split import check_count
    from selcopy.train.device import pick_device

    if args.count:
        check_count(args.count, "--count")
    folder = Path(args.run)
    spec = load_run(folder)
    changes = TASKS[spec.task["name"]].from_flags(extra)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate_run(spec, folder, args.checkpoint, args.data, changes, args.count, args.seed, device)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{spec.name}: {args.checkpoint} checkpoint at {report['inputs']:,} inputs on {report['samples']:,} "
          f"samples ({report['data']})")
    for key, value in report["metrics"].items():
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

    p = sub.add_parser("sample", help="print samples of a task, one per line", add_help=False,
                       epilog="task settings as flags, e.g. --input-length 2,5 (`selcopy sample TASK --help` "
                              "lists them)")
    p.add_argument("task", nargs="?", help="the task's name (`selcopy ls tasks` lists them)")
    p.add_argument("-h", "--help", action="store_true", help="show this help; after a task, with its settings")
    p.add_argument("--count", type=int, default=10, help="samples to print (default: 10)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the draw (default: 0)")
    p.add_argument("--raw", action="store_true",
                   help="print the exact bytes, not as the task shows them (selective-copy: spaces, not dots)")
    p.set_defaults(func=cmd_sample, takes_extra=True, parser=p)

    grid = argparse.ArgumentParser(add_help=False)  # the flags of every command that reads a grid
    grid.add_argument("file", help="an experiment file (YAML)")
    grid.add_argument("--where", default=None, metavar="EXPR",
                      help="only the runs whose matrix values satisfy EXPR, e.g. '${l} == 6' (the $filter language)")
    stored = argparse.ArgumentParser(add_help=False)
    stored.add_argument("--runs", default="runs", help="folder that holds the run folders (default: runs)")
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU) | cpu | cuda[:N] | mps")

    p = sub.add_parser("show", parents=[grid], help="expand and validate a grid, list its runs (trains nothing)")
    p.add_argument("--json", action="store_true",
                   help="a list of {name, variables, settings, params, memory_estimate (bytes)}; with --runs, "
                        "also status and inputs")
    p.add_argument("--runs", default=None,
                   help="also say what this run folder holds of each run: finished, failed, started (how far) "
                        "or not started")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("run", parents=[grid, stored, device], help="train every run of a grid, resumably")
    p.add_argument("--skip-existing", action="store_true", help="leave finished runs as they are")
    p.add_argument("--table", action="store_true", help="print the result table at the end")
    p.add_argument("--threads", type=positive_int, default=0,
                   help="torch CPU threads (of each job; default: the cores, divided between the jobs); "
                        "a run that resumes keeps the count it trained with")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="train this many runs at once, each in a process of its own (default: 1)")
    p.add_argument("--executor", choices=["serial", "processes", "ray"], help="where runs train (default: processes "
                   "with --jobs N > 1, else serial); ray: each a Ray task on a cluster's nodes, the store here")
    p.add_argument("--address", metavar="ADDR", help="with --executor ray: a running cluster's, auto or HEAD:6379")
    p.add_argument("--gpus-per-run", type=float, default=0, metavar="G",
                   help="with --executor ray: the GPUs each run (each stack, with --stack) asks for, e.g. 0.25 "
                        "(default: 0)")
    p.add_argument("--every-example", action="store_true",
                   help="keep every validation's example image (default: the latest and the best)")
    p.add_argument("--stack", action="store_true",
                   help="train the runs that differ only in their trial as one stacked model (torch.func.vmap), "
                        "each writing its own folder as alone; with --executor ray, a stack per Ray actor; for GPUs "
                        "(on a CPU, --jobs is faster)")
    p.add_argument("--stack-max", type=positive_int, default=STACK_MAX, metavar="N",
                   help=f"at most N runs per stack, for memory (default: {STACK_MAX})")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("results", parents=[grid, stored], help="the article-style table of a grid's stored runs")
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

    p = sub.add_parser("eval", parents=[device],
                       help="evaluate a run's checkpoint on its validation set or on other task settings",
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
    p.add_argument("--threads", type=positive_int, default=0, help="torch CPU threads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval, takes_extra=True)

    p = sub.add_parser("plot", parents=[stored],
                       help="error curves of a grid's runs (mean and min-max band over trials); of several "
                            "grids' runs in one figure")
    p.add_argument("file", nargs="+", help="experiment files (YAML), before any flag; with several, their runs "
                                           "share the figure, told apart by the variable 'experiment'")
    p.add_argument("--where", action="append", default=None, metavar="EXPR",
                   help="only the runs whose matrix values satisfy EXPR, e.g. '${l} == 6' (the $filter language); "
                        "with several files, once for all or once per file in their order ('' for all its runs)")
    p.add_argument("--metric", nargs="*", default=None, metavar="COL",
                   help="panels to draw (default: validation loss, mask error, sample error)")
    p.add_argument("--group-by", default=None, metavar="VAR",
                   help="colour by this matrix variable (with several files, also 'experiment')")
    p.add_argument("--out", default=None,
                   help="PNG path (default: <experiment name>.png; with several, the names joined by -vs-)")
    p.set_defaults(func=cmd_plot, takes_extra=True)  # a file after a flag gets its own message

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
