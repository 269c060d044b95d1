"""The `selcopy` command line: its subcommands, flags and their help (`build_parser`); the
commands themselves are in `selcopy.cli`, by the name in `args.command`."""

from __future__ import annotations

import argparse

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
    p.set_defaults(takes_extra=True, parser=p)

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
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                   help="measure in float32 (default, as training validates) or in bfloat16 autocast")
    p.add_argument("--json", action="store_true")
    p.set_defaults(takes_extra=True)

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
    p.set_defaults(takes_extra=True)  # a file after a flag gets its own message

    p = sub.add_parser("ls", help="list what exists")
    p.add_argument("what", choices=["tasks", "models"])
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
