"""Attaching target records: one row per record, independent of every other target record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from graphxfer.exceptions import GraphError, ModelFileSignatureError
from graphxfer.graphs import GraphAttachedClassifier, GraphEncoder, pretrain_graph

KINDS = ("graphsage", "gat", "gin")


def _classifier(encoder: GraphEncoder) -> GraphAttachedClassifier:
    """The attached classifier with a non-trivial head, as after some fine-tuning."""
    clf = encoder.classifier()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        clf.head.weight.copy_(torch.randn(clf.head.weight.shape, generator=gen))
        clf.head.bias.fill_(0.1)
    return clf.eval()


@pytest.mark.parametrize("kind", KINDS)
def test_removing_or_changing_one_target_record_leaves_the_others_unchanged(
    kind: str, encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    encoder = encoders[kind]
    clf = _classifier(encoder)
    rows = torch.from_numpy(encoder.attach(target_frame))
    with torch.no_grad():
        pred = clf(rows)
    assert rows.shape == (len(target_frame), encoder.layout().width)
    assert torch.isfinite(pred).all() and pred.std() > 0

    victim = 17
    others = np.delete(np.arange(len(target_frame)), victim)
    removed = torch.from_numpy(encoder.attach(target_frame.drop(target_frame.index[victim])))
    with torch.no_grad():
        pred_removed = clf(removed)
    assert torch.equal(removed, rows[others])
    assert torch.equal(pred_removed, pred[others])

    changed_frame = target_frame.copy()
    changed_frame.loc[changed_frame.index[victim], ["age", "labs"]] = [99.0, 3.0]
    changed_frame.loc[changed_frame.index[victim], "kind"] = "d"
    changed = torch.from_numpy(encoder.attach(changed_frame))
    with torch.no_grad():
        pred_changed = clf(changed)
    assert not torch.equal(changed[victim], rows[victim])
    assert torch.equal(changed[others], rows[others])
    assert torch.equal(pred_changed[others], pred[others])

    shuffled = np.random.default_rng(0).permutation(len(target_frame))
    rows_shuffled = torch.from_numpy(encoder.attach(target_frame.iloc[shuffled]))
    assert torch.equal(rows_shuffled, rows[shuffled])


@pytest.mark.parametrize("kind", ["graphsage", "gin"])
def test_classifier_replays_the_gnn_for_a_node_with_edges_from_source_only(
    kind: str, encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    encoder = encoders[kind]
    x_t = encoder.featurize(target_frame)
    idx = encoder.neighbors(target_frame)
    n, m, k = encoder.n_source, len(x_t), encoder.k
    # The naive reference: add the targets as nodes with edges from their k source neighbours.
    new_edges = torch.stack([idx.reshape(-1), torch.arange(n, n + m).repeat_interleave(k)])
    x_all = torch.cat([encoder.source_x, x_t])
    edges = torch.cat([encoder.edge_index, new_edges], dim=1)
    reference = encoder.network.embed(x_all, edges)
    torch.testing.assert_close(reference[:n], encoder.source_embeddings, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encoder.embed(target_frame), reference[n:], atol=1e-5, rtol=1e-5)


def test_gat_mean_field_is_a_close_start(
    encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    encoder = encoders["gat"]
    emb = encoder.embed(target_frame)
    assert emb.shape == (len(target_frame), encoder.network.hidden)
    assert torch.isfinite(emb).all()


def test_row_layout_and_label_mean(
    encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    encoder = encoders["graphsage"]
    layout = encoder.layout()
    rows = encoder.attach(target_frame)
    idx = encoder.neighbors(target_frame).numpy()
    assert layout.label_mean and rows.shape[1] == layout.width
    y = encoder.source_y.numpy()
    np.testing.assert_allclose(rows[:, layout.label_slice][:, 0], y[idx].mean(1), atol=1e-6)
    h0 = encoder.source_layers[0].numpy()
    np.testing.assert_allclose(rows[:, layout.neighbor_slice(0)], h0[idx].mean(1), atol=1e-5)
    np.testing.assert_array_equal(rows[:, layout.own_slice], encoder.featurize(target_frame))
    assert len(layout.column_names(encoder.dense.feature_names_)) == layout.width
    no_label = encoder.attach(target_frame, label_mean=False)
    assert no_label.shape[1] == layout.width - 1
    clf = encoder.classifier(label_mean=False)
    assert clf(torch.from_numpy(no_label)).shape == (len(target_frame),)
    with pytest.raises(GraphError, match="shape"):
        clf(torch.from_numpy(rows))


def test_target_columns_missing_or_unknown_are_handled(
    encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    encoder = encoders["graphsage"]
    partial = target_frame.drop(columns=["bmi"]).assign(kind="never-seen")
    rows = encoder.attach(partial)
    assert np.isfinite(rows).all() and rows.shape[0] == len(partial)


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_gives_identical_embeddings_and_rows(
    kind: str, encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame, tmp_path
) -> None:
    encoder = encoders[kind]
    tensors, meta = encoder.to_state()
    again = GraphEncoder.from_state(tensors, meta)
    assert torch.equal(again.source_embeddings, encoder.source_embeddings)
    assert np.array_equal(again.attach(target_frame), encoder.attach(target_frame))
    assert torch.equal(again.embed(target_frame), encoder.embed(target_frame))
    net_tensors, net_meta = encoder.network.to_state()
    net = type(encoder.network).from_state(net_tensors, net_meta)
    x = encoder.source_x[:50]
    edges = torch.tensor([[1, 2, 3, 0], [0, 1, 2, 3]])
    assert torch.equal(net.embed(x, edges), encoder.network.embed(x, edges))

    clf = _classifier(encoder)
    clf_again = GraphAttachedClassifier.from_state(*clf.to_state()).eval()
    rows = torch.from_numpy(encoder.attach(target_frame))
    with torch.no_grad():
        assert torch.equal(clf_again(rows), clf(rows))

    path = encoder.save(tmp_path / f"{kind}.zip")
    loaded = GraphEncoder.load(path)
    assert np.array_equal(loaded.attach(target_frame), encoder.attach(target_frame))
    assert loaded.history_ == encoder.history_

    signed = encoder.save(tmp_path / f"{kind}-signed.zip", key="a key of this site, 32 bytes")
    assert np.array_equal(
        GraphEncoder.load(signed, key="a key of this site, 32 bytes").attach(target_frame),
        encoder.attach(target_frame),
    )
    with pytest.raises(ModelFileSignatureError):
        GraphEncoder.load(signed, key="another key, also long enough")
    with pytest.raises(ModelFileSignatureError):
        GraphEncoder.load(path, key="a key of this site, 32 bytes")  # unsigned


def test_from_state_rejects_mismatched_weights(encoders: dict[str, GraphEncoder]) -> None:
    tensors, meta = encoders["gin"].to_state()
    del tensors["network.input.0.weight"]
    with pytest.raises(GraphError, match="do not match"):
        GraphEncoder.from_state(tensors, meta)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_attached_classifier_is_valid_for_opacus(
    kind: str, encoders: dict[str, GraphEncoder], target_frame: pd.DataFrame
) -> None:
    from opacus import GradSampleModule
    from opacus.validators import ModuleValidator

    encoder = encoders[kind]
    clf = encoder.classifier()
    assert isinstance(clf.head, nn.Linear) and len(clf.blocks) == encoder.network.num_layers + 1
    for model in (clf, encoder.network):
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert ModuleValidator.validate(clf.train(), strict=False) == []

    # Per-sample gradients equal the gradients of each record's loss alone.
    rows = torch.from_numpy(encoder.attach(target_frame.iloc[:4]))
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    gsm = GradSampleModule(_classifier(encoder).train(), batch_first=True, loss_reduction="sum")
    loss = nn.functional.binary_cross_entropy_with_logits(gsm(rows), y, reduction="sum")
    loss.backward()
    single = _classifier(encoder).train()
    for i in (0, 3):
        single.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(
            single(rows[i : i + 1]), y[i : i + 1], reduction="sum"
        ).backward()
        for (_, p_gsm), (_, p_one) in zip(
            gsm._module.named_parameters(), single.named_parameters()
        ):
            torch.testing.assert_close(p_gsm.grad_sample[i], p_one.grad, atol=1e-5, rtol=1e-4)


def test_attach_errors(encoders: dict[str, GraphEncoder], arrays) -> None:
    encoder = encoders["graphsage"]
    with pytest.raises(GraphError, match="dense features"):
        encoder.attach(np.zeros((3, 2), dtype=np.float32))
    bad = np.zeros((2, encoder.network.in_channels), dtype=np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(GraphError, match="NaN"):
        encoder.attach(bad)
    x, _ = arrays
    unlabeled = pretrain_graph(
        (x, None), objective="dgi", k=4, hidden=8, epochs=1, random_state=0, progress=False
    )
    assert not unlabeled.layout().label_mean
    with pytest.raises(GraphError, match="label_mean"):
        unlabeled.attach(x[:3], label_mean=True)
    with pytest.raises(GraphError, match="featurizer"):
        unlabeled.attach(pd.DataFrame({"a": [1.0]}))
