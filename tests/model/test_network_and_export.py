"""Loss masking, pooling, and ONNX export parity on a tiny random model (needs the train extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from finsentry.model.export import export_fp32, int8_disagreement, quantize_int8_dynamic
from finsentry.model.network import MultiTaskModel, masked_mean_pool, multitask_loss
from finsentry.model.scorer import Scorer

pytestmark = pytest.mark.train


def test_masked_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]
    assert masked_mean_pool(hidden, torch.zeros((1, 3), dtype=torch.long)).tolist() == [[0.0, 0.0]]


def test_loss_counts_each_task_only_on_examples_that_carry_its_label():
    topic_logits = torch.tensor([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    sent_logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    topic_t = torch.tensor([0, -1, -1])  # only example 0 has a topic label
    sent_t = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # examples 1, 2
    loss = multitask_loss(topic_logits, sent_logits, topic_t, sent_t, (1.0, 2.0))
    ce = torch.nn.functional.cross_entropy
    expected = ce(topic_logits[:1], topic_t[:1]) + 2.0 * ce(sent_logits[1:], torch.tensor([1, 2]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # a batch without any sentiment label: only the topic term
    none = multitask_loss(topic_logits, sent_logits, topic_t, torch.zeros((3, 3)))
    assert none.item() == pytest.approx(ce(topic_logits[:1], topic_t[:1]).item(), rel=1e-6)


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory):
    """A random 2-layer BERT with our heads, exported FP32 + INT8, with the real tokenizer; no card yet, so its
    loads here are the export's own (``verify=False``)."""
    from finsentry.model.labels import SENTIMENT_LABELS, TOPIC_LABELS
    from finsentry.model.train import load_tokenizer

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128
    )
    model = MultiTaskModel(BertModel(cfg, add_pooling_layer=False), dropout=0.0).eval()
    folder = tmp_path_factory.mktemp("tiny")
    load_tokenizer().backend_tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "labels.json").write_text(
        json.dumps(
            {
                "topic": list(TOPIC_LABELS),
                "sentiment": list(SENTIMENT_LABELS),
                "model_version": "tiny",
                "max_length": 32,
            }
        )
    )
    export_fp32(model, folder / "model.fp32.onnx")
    quantize_int8_dynamic(folder / "model.fp32.onnx", folder / "model.onnx")
    return model, folder


TEXTS = [
    "Shares fell sharply after the profit warning.",
    "ok",
    "The company reported record quarterly revenue and raised its full-year guidance for 2016.",
]


def test_onnx_fp32_matches_pytorch(tiny_artifact):
    from finsentry.model.train import encode, load_tokenizer

    model, folder = tiny_artifact
    with torch.no_grad():
        t_ref, s_ref = model(**encode(load_tokenizer(), TEXTS, 32))
    topic, sent, _ = Scorer.load(folder, variant="model.fp32.onnx", verify=False).logits(TEXTS)
    assert np.allclose(topic, t_ref.numpy(), atol=1e-4)
    assert np.allclose(sent, s_ref.numpy(), atol=1e-4)


def test_int8_is_close_to_fp32_and_disagreement_is_measured(tiny_artifact):
    _, folder = tiny_artifact
    t32, s32, _ = Scorer.load(folder, variant="model.fp32.onnx", verify=False).logits(TEXTS)
    t8, s8, _ = Scorer.load(folder, verify=False).logits(TEXTS)
    assert np.abs(t8 - t32).max() < 0.1 * max(1.0, np.abs(t32).max())
    assert 0.0 <= int8_disagreement(folder, TEXTS, 32) <= 1.0
    assert (folder / "model.onnx").stat().st_size < 0.5 * (folder / "model.fp32.onnx").stat().st_size
