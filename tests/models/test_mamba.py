from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from selcopy.models import TaskShape, build_model, count_parameters
from selcopy.models.mamba import MambaConfig
from selcopy.models.scan import chunked_scan, default_chunk, sequential_scan

SHAPE = TaskShape(max_length=64, vocab=256)  # these models take any length

SMALL = {"name": "mamba", "layers": 2, "d_model": 8, "d_state": 4}


def _inputs(batch, length, inner, n, dtype, big=False):
    g = torch.Generator().manual_seed(length)
    delta = torch.rand(batch, length, inner, generator=g, dtype=dtype) * (30.0 if big else 0.5)
    A = -torch.rand(inner, n, generator=g, dtype=dtype) * (16.0 if big else 3.0) - 0.01
    rest = [torch.randn(batch, length, k, generator=g, dtype=dtype) for k in (n, n, inner)]
    return [delta, A, *rest]


def _run(scan, args, grad_out, **kw):
    args = [a.clone().requires_grad_() for a in args]
    y = scan(*args, **kw)
    y.backward(grad_out)
    return y, [a.grad for a in args]


@pytest.mark.parametrize("length", [1, 2, 5, 7, 16, 33])
@pytest.mark.parametrize("chunk", [0, 1, 3, 4, 8])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_chunked_scan_equals_sequential(length, chunk, dtype, tol):
    args = _inputs(2, length, 6, 4, dtype)
    grad_out = torch.randn(2, length, 6, dtype=dtype)
    y1, g1 = _run(sequential_scan, args, grad_out)
    y2, g2 = _run(chunked_scan, args, grad_out, chunk=chunk)
    torch.testing.assert_close(y2, y1, atol=tol, rtol=tol)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_chunked_scan_is_stable_with_strong_decay():
    """Large Delta * |A| would overflow exp(-cumsum) tricks; every exponent here stays <= 0."""
    args = _inputs(2, 40, 6, 4, torch.float32, big=True)
    grad_out = torch.randn(2, 40, 6)
    y1, g1 = _run(sequential_scan, args, grad_out)
    y2, g2 = _run(chunked_scan, args, grad_out, chunk=7)
    assert torch.isfinite(y2).all() and all(torch.isfinite(g).all() for g in g2)
    torch.testing.assert_close(y2, y1, atol=1e-4, rtol=1e-4)


def test_scan_matches_the_recurrence_by_hand():
    """h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t, y_t = C_t . h_t, for one channel and one state."""
    delta, A = torch.tensor([[[0.5], [1.0]]]), torch.tensor([[-2.0]])
    B, C, x = torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[3.0], [0.5]]]), torch.tensor([[[4.0], [1.0]]])
    h0 = 0.5 * 1.0 * 4.0
    h1 = torch.exp(torch.tensor(-2.0)) * h0 + 1.0 * 2.0 * 1.0
    expected = torch.tensor([[[3.0 * h0], [0.5 * h1]]])
    for scan in (sequential_scan, chunked_scan):
        torch.testing.assert_close(scan(delta, A, B, C, x), expected)


def test_default_chunk():
    assert default_chunk(64, torch.device("cpu")) == 64
    assert default_chunk(64, torch.device("meta")) == 8
    assert default_chunk(65, torch.device("meta")) == 9
    assert default_chunk(1, torch.device("meta")) == 1


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (3, 5), (2, 17)])
@pytest.mark.parametrize("scan", ["parallel", "sequential"])
def test_shapes_and_gradients(check_model, batch, length, scan):
    check_model(build_model({**SMALL, "scan": scan}, SHAPE), batch, length)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_models_with_either_scan_agree(dtype):
    torch.manual_seed(0)
    seq = build_model({**SMALL, "scan": "sequential"}, SHAPE).to(dtype)
    par = build_model({**SMALL, "scan": "parallel"}, SHAPE).to(dtype)
    par.load_state_dict(seq.state_dict())
    for block in par.layers:  # force real chunking on the CPU
        block.mixer.scan = lambda *args: chunked_scan(*args, chunk=3)
    ids = torch.randint(0, 256, (2, 11))
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(par(ids), seq(ids), atol=tol, rtol=tol)
    seq(ids).sum().backward()
    par(ids).sum().backward()
    for (name, p), q in zip(seq.named_parameters(), par.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=tol * 10, rtol=tol * 10, msg=name)


def test_is_causal():
    torch.manual_seed(0)
    model = build_model(SMALL, SHAPE)
    ids = torch.randint(0, 256, (1, 9))
    other = ids.clone()
    other[0, 5] = (ids[0, 5] + 1) % 256
    torch.testing.assert_close(model(ids)[:, :5], model(other)[:, :5])


def test_derived_sizes_and_init():
    cfg = MambaConfig(d_model=40, expand=3, d_state=5)
    assert (cfg.d_inner, cfg.dt_rank) == (120, 3)
    block = cfg.build(SHAPE).layers[0].mixer
    torch.testing.assert_close(block.A_log[7], torch.log(torch.arange(1.0, 6.0)))
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert ((dt >= 1e-3 * 0.999) & (dt <= 0.1 * 1.001)).all()


@pytest.mark.parametrize("dt_init", ["paper", "linear"])
def test_dt_init(dt_init):
    """paper: softplus(bias) log-uniform in [0.001, 0.1]; linear: nn.Linear's bias, within 1/sqrt(fan-in)."""
    cfg = MambaConfig(dt_init=dt_init)
    proj = cfg.build(SHAPE).layers[0].mixer.dt_proj
    dt = torch.nn.functional.softplus(proj.bias)
    paper = ((dt >= 1e-3 * 0.999) & (dt <= 0.1 * 1.001)).all()
    linear = (proj.bias.abs() <= proj.in_features**-0.5).all()  # softplus then starts at 0.40 or more
    assert bool(paper) == (dt_init == "paper") and bool(linear) == (dt_init == "linear")
    assert count_parameters(cfg.build(SHAPE)) == 67_936


def test_bfloat16_autocast_runs():
    model = build_model(SMALL, SHAPE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randint(0, 256, (2, 6)))
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"d_state": 0}, "d_state"),
        ({"expand": 0}, "expand"),
        ({"d_conv": -1}, "d_conv"),
        ({"scan": "fast"}, "scan"),
        ({"d_inner": 3}, "d_inner"),
    ],
)
def test_bad_settings(settings, name):
    with pytest.raises(ValidationError, match=name):
        MambaConfig(**settings)
