import pytest
import torch
import torch.nn.functional as F

from selcopy.train.metrics import batch_stats, new_stats, sequence_loss, summarize, token_loss


def _logits_for(pred: torch.Tensor) -> torch.Tensor:
    return F.one_hot(pred, 256).float() * 10


def test_metrics_on_a_hand_made_batch():
    text = torch.tensor([[65, 66, 67, 68], [65, 66, 67, 68]])
    masked = torch.tensor([[65, 66, 0, 0], [65, 66, 0, 0]])
    pred = torch.tensor([[65, 66, 67, 68], [65, 0, 67, 0]])  # row 2: one wrong outside, one inside the mask
    stats = new_stats("cpu") + batch_stats(_logits_for(pred), text, masked, torch.tensor([1, 2]), torch.tensor(0.5))
    m = summarize(stats, "validation_", "ops")
    assert m["validation_error%"] == pytest.approx(25.0)
    assert m["validation_mask_error%"] == pytest.approx(25.0)
    assert m["validation_sample_error%"] == pytest.approx(50.0)
    assert m["validation_sample_error%_ops1"] == 0.0
    assert m["validation_sample_error%_ops2"] == 100.0
    assert m["validation_loss"] == pytest.approx(0.5)


def test_breakdown_is_named_by_the_caller_and_left_out_without_a_name():
    text, masked = torch.tensor([[65, 66]]), torch.tensor([[65, 0]])
    stats = batch_stats(_logits_for(text), text, masked, torch.tensor([4]), torch.tensor(1.0))
    assert [k for k in summarize(stats, "", "letters") if "%_" in k] == ["sample_error%_letters4"]
    assert not [k for k in summarize(stats, "") if "%_" in k]


def test_stats_accumulate_over_batches():
    text = torch.tensor([[65, 66]])
    masked = torch.tensor([[65, 0]])
    right = batch_stats(_logits_for(text), text, masked, torch.tensor([3]), torch.tensor(1.0))
    wrong = batch_stats(_logits_for(torch.tensor([[65, 67]])), text, masked, torch.tensor([3]), torch.tensor(3.0))
    m = summarize(right + right + right + wrong, "")
    assert m["sample_error%"] == pytest.approx(25.0)
    assert m["mask_error%"] == pytest.approx(25.0)
    assert m["error%"] == pytest.approx(12.5)
    assert m["loss"] == pytest.approx(1.5)


def test_sequence_loss_is_the_articles_flattened_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 256)
    text = torch.randint(0, 256, (3, 7))
    one_hot = F.one_hot(text, 256).float()
    expected = F.cross_entropy(logits.flatten(1), one_hot.flatten(1))
    assert sequence_loss(logits, text).item() == pytest.approx(expected.item(), rel=1e-5)


def test_token_loss_is_per_position_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 256)
    text = torch.randint(0, 256, (3, 7))
    expected = F.cross_entropy(logits.permute(0, 2, 1), text)
    assert token_loss(logits, text).item() == pytest.approx(expected.item(), rel=1e-5)
