"""The `selcopy` command: sample | ls | show | run | results | plot.

Exit status: 0 success, 2 bad input (one line on stderr), 1 a run failed.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

import torch
from pydantic import ValidationError

from selcopy.errors import SelcopyError, explain

EXAMPLES = """examples:
  selcopy sample program --count 5 --input-length 2,5 --num-operations 1,5
  selcopy sample selective-copy --count 3 --area 20 --num-items 4
  selcopy ls tasks
"""


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
            close = difflib.get_close_matches(flag.lstrip("-"), known, n=1)
            hint = f"; did you mean --{close[0]}?" if close else ""
            raise SelcopyError(f"unknown option {flag!r}{hint} options: {' '.join('--' + k for k in known)}")
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
    else:
        from selcopy.models import describe_models

        for name, description, defaults in describe_models():
            print(f"{name}: {description}")
            for key, value in defaults.items():
                print(f"    {key:<22} {value!s}")
    return 0


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="print the exact bytes (selective-copy: spaces, not dots)")
    p.set_defaults(func=cmd_sample, takes_extra=True)

    p = sub.add_parser("ls", help="list what exists")
    p.add_argument("what", choices=["tasks", "models"])
    p.set_defaults(func=cmd_ls)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except ValidationError as e:
        print(f"selcopy: error: {explain(e)}", file=sys.stderr)
    except SelcopyError as e:
        print(f"selcopy: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
