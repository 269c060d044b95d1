"""The `selcopy` command: sample | ls | show | run | results | eval | plot.

Exit status: 0 success, 2 bad input (one line on stderr), 1 a run failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from selcopy.cli_parser import build_parser, descending_sort_keys
from selcopy.errors import CONTROL, SelcopyError, explain

if TYPE_CHECKING:  # torch is imported by the commands that need it, so `--help` and bad input stay quick
    import torch

    from selcopy.experiments.spec import RunSpec


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


def emulated_bf16_note(runs: list[RunSpec], device: torch.device) -> str | None:
    """A warning for the runs that train in bf16 on a CPU without bf16 kernels (`cpu_without_bf16_kernels`),
    or None. An LSTM in bf16 is refused there instead (`bf16_refusal`), so it is not counted."""
    from selcopy.train.device import cpu_without_bf16_kernels, processor

    count = sum(spec.train["precision"] == "bfloat16" and spec.model["name"] != "lstm" for spec in runs)
    if not count or not cpu_without_bf16_kernels(device):
        return None
    verb = "trains" if count == 1 else "train"
    return (f"{counted(count, 'run')} of this file {verb} in bfloat16, for which this CPU, {processor(device)}, "
            "has no fast kernels (oneDNN needs AVX-512): expect many times slower training than in float32 "
            "(about 12x for the quickstart on an AVX2-only CPU); precision: float32 trains at full speed")


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
    if local and (note := emulated_bf16_note(exp.runs, device)):
        print(f"selcopy: warning: {note}", file=sys.stderr)
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
    report = evaluate_run(spec, folder, args.checkpoint, args.data, changes, args.count, args.seed, device,
                          args.precision)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{spec.name}: {args.checkpoint} checkpoint at {report['inputs']:,} inputs on {report['samples']:,} "
          f"samples ({report['data']}), measured in {report['precision']}")
    for key, value in report["metrics"].items():
        print(f"  {key:<22} {value:.6g}")
    return 0


COMMANDS = {"sample": cmd_sample, "show": cmd_show, "run": cmd_run, "results": cmd_results, "eval": cmd_eval,
            "plot": cmd_plot, "ls": cmd_ls}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(descending_sort_keys(argv))
    args.argv = argv  # as typed, to repeat in a hint
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command](args, extra)
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
