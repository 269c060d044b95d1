import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from selcopy.cli import main
from selcopy.tasks import make_task


def test_sample_program_lines_check(capsys):
    assert main(["sample", "program", "--count", "300", "--seed", "7", "--input-length", "2,5",
                 "--num-operations", "1,5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(set(lines)) == 300
    task = make_task("program", {"input_length": [2, 5], "num_operations": [1, 5]})
    for line in lines:
        task.check(line)


def test_the_readme_shows_what_its_sample_command_prints(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    command, shown = re.search(r"```\n\$ selcopy (sample [^\n]*)\n(.*?)```", readme, re.S).groups()
    assert main(shlex.split(command)) == 0
    assert capsys.readouterr().out == shown


def test_sample_selective_copy_in_article_format(capsys):
    assert main(["sample", "selective-copy", "--count", "50", "--area", "13", "--num-items", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    task = make_task("selective-copy", {"area": 13, "num_items": 4})
    for line in lines:
        assert " " not in line and len(line) == 13 + 1 + 4
        task.check(line)


def test_sample_operators_flag(capsys):
    assert main(["sample", "program", "--count", "200", "--operators", ">:1,+:1,-:1", "--stack", "fifo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    task = make_task("program", {"operators": {">": 1, "+": 1, "-": 1}, "stack": "fifo"})
    for line in lines:
        task.check(line)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "program", "--input-length", "30"], "input_length"),
        (["sample", "program", "--input-length", "5,2"], "lo > hi"),
        (["sample", "program", "--operators", ">:1,*:1"], "unknown operator"),
        (["sample", "program", "--count", "0"], "positive"),
        (["sample", "program", "--count", "-3"], "positive"),
        (["sample", "progrm"], "did you mean 'program'"),
        (["sample", "program", "--num-operatons", "3"], "did you mean --num-operations"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_ls_tasks(capsys):
    assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "program" in out and "selective-copy" in out and "--num-operations" in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "selcopy", "sample", "program", "--count", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert len(out.splitlines()) == 2
