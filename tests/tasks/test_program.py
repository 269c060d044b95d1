import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from selcopy.tasks import make_task
from selcopy.tasks.program import interpret, parse

# Lines printed in the article (its first list separates ops with ", " and pads with spaces).
ARTICLE_LINES = [
    "NA: 2>1: AN   ", "DQ: -1: Q    ", "EJWHB: 3>5: EJBHW", "ULHP: 3>4, 2>1: LUPH ",
    "YNP: 3>1, -3, 2>1: NP   ", "EJACQ: 1>2, -1, +3: EAJCQ", "YESBR: 3>5, 5>1, 1>5, 3>4: YEBRS",
    "UXMP: -2, -3, 1>2, +2: MPU  ", "EJACQ:1>2 -1 +3:EAJCQ",
    "NPFKT:5>4 3>1 1>4 4>2 1>3:NFTPK", "UKLRM:5>1 4>2 1>4 2>4 3>2:KLMRU",
    "LCEWI:3>5 3>2 4>2 3>1 3>5:CWEIL", "LRUPX:1>4 3>2 5>4 1>3 2>1:URPXL",
    "UQJOR:5>4 2>5 5>4 4>3 2>5:URQJO", "BYGMJ:5>4 4>3 2>3 5>2 5>3:BMJGY",
    "PBNFM:3>5 5>1 1>3 2>3 5>3:MNPFB", "TNEOL:1>3 4>1 4>1 4>3 5>3:ENLTO",
    "ALEVT:1>2 2>1 2>1 4>2 4>3:LVAET", "UIZNQ:3>4 2>3 5>3 4>1 1>5:INQUZ",
    "HGOKX:3>1 5>4:OGHXK", "CXZMN:5>4 2>5:CMZNX", "RMYTC:2>1 4>5 4>2:MCYRT",
    "DNAHL:1>3 3>4 1>2 4>1 3>2:DHANL", "HSBQA:4>5 4>5:HSBQA", "DTFKS:4>5 3>2 4>5 5>1:SFTKD",
    "UXGJN:4>2 1>2 1>4 3>1 3>2:GXUJN", "PHMTW:5>3 2>3 5>4 5>3 1>3:TWPMH",
]


@pytest.mark.parametrize("line", ARTICLE_LINES)
def test_article_lines_parse_and_check(line):
    cells, ops, answer = parse(line)
    assert interpret(cells, ops) == answer.strip()


def test_article_format_round_trip():
    task = make_task("program", {"input_length": [2, 5], "num_operations": 3})
    task.check("EJACQ:1>2 -1 +3:EAJCQ")
    with pytest.raises(ValueError):
        task.check("EJACQ:1>2 -1 +3:EAJQC")


def test_fifo_stack():
    assert interpret("ABC", [("-", 1, 0), ("-", 1, 0), ("+", 1, 0)], "lifo") == "BC"
    assert interpret("ABC", [("-", 1, 0), ("-", 1, 0), ("+", 1, 0)], "fifo") == "AC"


def _gen(settings, count=200, seed=0):
    task = make_task("program", settings)
    return task, task.sample_batch(count, torch.Generator().manual_seed(seed))


weights = st.dictionaries(st.sampled_from([">", "-", "+"]), st.sampled_from([0.0, 0.2, 1.0, 3.0]), min_size=1)


@st.composite
def program_settings(draw):
    items = draw(st.integers(1, 26))
    lo = draw(st.integers(1, min(items, 12)))
    hi = draw(st.integers(lo, min(items, 12)))
    olo = draw(st.integers(1, 6))
    ohi = draw(st.integers(olo, 8))
    ops = draw(weights)
    ok = ops.get("-", 0) > 0 or (ops.get(">", 0) > 0 and lo >= 2)
    if not ok:
        ops["-"] = 1.0
    return {
        "num_items": items, "input_length": [lo, hi], "num_operations": [olo, ohi],
        "operators": ops, "stack": draw(st.sampled_from(["lifo", "fifo"])),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program_settings(), st.integers(0, 2**31))
def test_generated_answers_equal_the_interpreter(cfg, seed):
    task, batch = _gen(cfg, count=64, seed=seed)
    texts = batch.texts()
    for line, n_ops in zip(texts, batch.difficulty.tolist()):
        task.check(line)  # parses, re-runs the interpreter, checks ranges and zero weights
        assert len(parse(line)[1]) == n_ops
    # the masked input hides exactly the answer, which spans the last `hi` characters
    hi = cfg["input_length"][1]
    for row, masked, n in zip(batch.text, batch.masked, batch.length.tolist()):
        assert (masked[n - hi : n] == 0).all()
        assert torch.equal(masked[: n - hi], row[: n - hi])
        assert (row[n:] == 32).all()
    assert batch.text.shape[1] == int(batch.length.max()) <= task.max_length()


def test_op_counts_in_range_and_end_early_only_when_empty():
    task, batch = _gen({"input_length": [1, 3], "num_operations": [2, 6]}, count=3000)
    early = 0
    for line, k in zip(batch.texts(), batch.difficulty.tolist()):
        emptied = parse(line)[2].strip() == ""
        assert k <= 6 and (k >= 2 or emptied), line
        early += emptied and k < 2
    assert early, "with '-' ops some programs must empty their memory and stop early"


def test_op_kinds_follow_weights():
    # the first op of a 5-letter input: '>' and '-' both apply, '+' never (empty stack)
    task, batch = _gen({"input_length": 5, "num_operations": 1, "operators": {">": 3, "-": 1, "+": 5}}, 20000)
    first = [parse(t)[1][0][0] for t in batch.texts()]
    share = first.count(">") / len(first)
    assert abs(share - 0.75) < 4 * (0.75 * 0.25 / len(first)) ** 0.5
    assert "+" not in first


def test_zero_weight_op_never_drawn():
    _, batch = _gen({"num_operations": [3, 5], "operators": {">": 1, "-": 0, "+": 1}}, 2000)
    kinds = {op for t in batch.texts() for op, *_ in parse(t)[1]}
    assert kinds == {">"}  # no '-', and so no '+' (it needs a removed letter)


def test_two_digit_positions():
    task, batch = _gen({"input_length": [10, 14], "num_operations": 4}, 500)
    assert any(any(x >= 10 for _, x, _ in parse(t)[1]) for t in batch.texts())
    for t in batch.texts():
        task.check(t)


def test_determinism_by_seed():
    _, a = _gen({}, seed=3)
    _, b = _gen({}, seed=3)
    _, c = _gen({}, seed=4)
    assert torch.equal(a.text, b.text) and a.texts() == b.texts()
    assert a.texts() != c.texts()


def test_equal_questions_equal_keys():
    _, batch = _gen({"num_items": 3, "input_length": 3, "num_operations": 1, "operators": {">": 1}}, 500)
    questions = [t.rsplit(":", 1)[0] for t in batch.texts()]
    by_key = {}
    for q, k in zip(questions, batch.key.tolist()):
        by_key.setdefault(k, set()).add(q)
    assert all(len(qs) == 1 for qs in by_key.values())
    assert len(by_key) == len(set(questions)) == 36  # 6 orders x 6 ordered pairs


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"input_length": 27}, "input_length"),
        ({"num_items": 4, "input_length": [2, 5]}, "at most num_items \\(4\\)"),
        ({"input_length": [5, 2]}, "lo > hi"),
        ({"num_operations": [3, 1]}, "lo > hi"),
        ({"num_operations": 0}, "at least 1"),
        ({"operators": {"*": 1}}, "unknown operator"),
        ({"operators": {">": -1, "-": 1}}, ">= 0"),
        ({"operators": {">": 1}, "input_length": [1, 3]}, "no operator can apply"),
        ({"operators": {"+": 1}}, "no operator can apply"),
        ({"num_items": 0}, "between 1 and 26"),
        ({"stack": "queue"}, "stack"),
        ({"input_lenght": 3}, "input_lenght"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        make_task("program", settings)
