import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from selcopy.cli import main
from selcopy.models import MODELS
from selcopy.tasks import TASKS, make_task


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


@pytest.mark.parametrize("what", ["tasks", "models"])
def test_ls_lists_every_entry_and_setting_with_default_and_description(capsys, what):
    table = TASKS if what == "tasks" else MODELS
    flag = "--" if what == "tasks" else ""
    assert main(["ls", what]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, cls in table.items():
        at = lines.index(f"{name}: {cls.description}")
        for offset, (key, default, text) in enumerate(cls.settings(), 1):
            label = flag + key.replace("_", "-") if flag else key
            assert lines[at + offset].split()[:1] == [label]
            assert lines[at + offset].endswith(f" {text}") and f" {default!s} " in lines[at + offset]


@pytest.mark.parametrize("name", list(TASKS))
def test_sample_help_lists_the_tasks_settings_with_defaults(capsys, name):
    assert main(["sample", name, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert TASKS[name].description in out
    for key, _, text in TASKS[name].settings():
        assert f"--{key.replace('_', '-')} V {text} (default: " in out


def test_sample_help_shows_defaults_as_flags_take_them(capsys):
    assert main(["sample", "program", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 2,5)" in out and "(default: >:1,-:0.333333,+:0.333333)" in out


def test_sample_without_a_task(capsys):
    assert main(["sample", "--help"]) == 0
    assert "--count" in capsys.readouterr().out
    assert main(["sample"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and all(name in err for name in TASKS)


def test_raw_prints_the_bytes_the_task_shows_otherwise(capsys):
    argv = ["sample", "selective-copy", "--count", "5", "--area", "13", "--num-items", "4"]
    assert main(argv) == 0
    shown = capsys.readouterr().out.splitlines()
    assert main([*argv, "--raw"]) == 0
    raw = capsys.readouterr().out.splitlines()
    task = make_task("selective-copy", {"area": 13, "num_items": 4})
    assert shown == [task.show(line) for line in raw] and shown != raw


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "selcopy", "sample", "program", "--count", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert len(out.splitlines()) == 2


NO_TORCH = """
import sys
from selcopy.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["ls", "tasks"], ["ls", "models"],
                                  ["show", "{bad}"], ["show", "{missing}"],
                                  ["frobnicate"], ["show", "{bad}", "--where", "${{l}} >"]])
def test_ls_help_and_errors_in_a_file_s_shape_do_not_import_torch(tmp_path, argv):
    """Importing torch takes seconds: ls, help, usage errors and a malformed file are answered without it."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nmatrix: {l: [1, 2]}\nmodle: {layers: ${l}}\n")
    argv = [a.format(bad=bad, missing=tmp_path / "missing.yml") for a in argv]
    out = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False", out.stderr
