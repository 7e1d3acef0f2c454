"""The BatchNorm lab: twins, the probe, train vs eval mode, summaries, and the page."""
from dataclasses import replace

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch.nn import functional as F

from core import TrainConfig
from core.lessons.batchnorm import (BNProbe, ArmSummary, group_runs, noise_verdict, start_twins, summarize_arm, train_vs_eval)
from core.engine.data import iterate_batches, load_dataset
from core.engine.models import build_model
from ui import keys as K

TINY = TrainConfig(epochs=2, max_batches=30)


class BatchRecorder:
    """A StepProbe that remembers a fingerprint of every training batch and the initial Linear weights."""

    def __init__(self):
        self.batches, self.initial = [], None

    def attach(self, model):
        self.initial = [b[0].weight.detach().clone() for b in model.blocks] + [model.out.weight.detach().clone()]
        model.blocks[0].register_forward_pre_hook(lambda m, inp: self.batches.append(inp[0].sum().item()) if m.training else None)

    def before_step(self, step):
        pass

    def after_backward(self, step, model):
        pass

    def to_dict(self):
        return {"batches": self.batches}


def test_twins_share_initial_weights_and_batch_order(store):
    recorders = {}
    prev = None
    for bn in (True, False):
        recorders[bn] = BatchRecorder()
        prev = store.start(replace(TINY, batch_norm=bn), allow_duplicate=True, after=prev, probe=recorders[bn]).id
    store.trainer(prev).join(120)
    a, b = recorders[True], recorders[False]
    assert len(a.batches) == len(b.batches) == 60
    assert a.batches == b.batches  # the same minibatches in the same order
    assert all(torch.equal(x, y) for x, y in zip(a.initial, b.initial))  # the same initial Linear weights


def test_start_twins_pairs_and_queues(store):
    group = start_twins(store, TINY, [0, 1])
    runs = group_runs(store, group)
    assert [(r.config.batch_norm, r.config.seed) for r in runs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert all(r.config == replace(TINY, batch_norm=r.config.batch_norm, seed=r.config.seed) for r in runs)
    assert sum(r.snapshot.status == "running" for r in runs) <= 1  # one at a time
    store.trainer(runs[-1].id).join(180)
    runs = group_runs(store, group)
    assert all(r.snapshot.status == "finished" for r in runs)
    probes = store.probes(runs[0].id)
    assert probes["batch_norm"] and probes["records"][0]["step"] == 1 and len(probes["records"][0]["pre"]) == 4


def test_probe_percentiles_equal_direct_computation(data_dir):
    model = build_model(TrainConfig(batch_norm=True))
    probe = BNProbe(every=25)
    probe.attach(model)
    data = load_dataset("mnist", data_dir)
    xb, yb = next(iterate_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(0)))
    model.train()
    probe.before_step(25)
    F.cross_entropy(model(xb), yb).backward()
    probe.after_backward(25, model)
    (rec,) = probe.to_dict()["records"]
    q = torch.tensor([0.15, 0.5, 0.85])
    with torch.no_grad():
        h = xb
        for i, block in enumerate(model.blocks):
            pre = block[0](h)
            post = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + block[1].eps) * block[1].weight + block[1].bias
            assert rec["pre"][i] == pytest.approx(torch.quantile(pre.flatten(), q).tolist(), abs=1e-5)
            assert rec["post"][i] == pytest.approx(torch.quantile(post.flatten(), q).tolist(), abs=1e-4)
            assert rec["bn"][i][0] == pytest.approx(pre[:, 0].mean().item(), abs=1e-5)
            assert rec["grad"][i] == pytest.approx(block[0].weight.grad.norm().item())
            h = block(h)
    probe.before_step(26)  # not a sampled step: nothing recorded
    F.cross_entropy(model(xb), yb).backward()
    probe.after_backward(26, model)
    assert len(probe.to_dict()["records"]) == 1


def test_train_vs_eval_batch_size_one_is_a_result(store, data_dir):
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=100))
    store.trainer(run.id).join(120)
    model = store.load_model(run.id)
    before = model.blocks[0][1].running_mean.clone()
    res = train_vs_eval(model, "mnist", data_dir, n=128)
    assert [r.batch_size for r in res] == [1, 2, 8, 64]
    assert res[0].train_acc is None and "Expected more than 1 value" in res[0].error
    assert all(r.train_acc is not None for r in res[1:]) and res[3].train_acc > res[1].train_acc
    assert len({r.eval_acc for r in res}) == 1
    assert torch.equal(model.blocks[0][1].running_mean, before)  # train mode ran on a copy


def test_noise_verdict_words():
    def arm(accs):
        return ArmSummary(len(accs), accs, accs, 1.0, {})
    assert "one seed per arm" in noise_verdict(arm([0.98]), arm([0.97]))
    assert "within seed-to-seed noise" in noise_verdict(arm([0.980, 0.976]), arm([0.978, 0.975]))
    assert "BN is ahead" in noise_verdict(arm([0.981, 0.982]), arm([0.970, 0.971]))


def test_summarize_arm_reach(store):
    run = store.start(TrainConfig(batch_norm=True, epochs=2, max_batches=300))
    store.trainer(run.id).join(120)
    snap = store.get(run.id).snapshot
    s = summarize_arm([snap], thresholds=(0.5, 0.9999))
    assert s.reach[0.5][0] == 1 and s.reach[0.5][1] == pytest.approx(snap.history[0].seconds)
    assert s.reach[0.9999] == (None, None, 0)
    assert s.final_acc == [snap.history[-1].test_acc]


def test_batchnorm_page_with_a_tiny_twin_run(app_env):
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/batchnorm.py").run()
    assert "No twin runs yet" in " ".join(i.value for i in at.info)
    at.number_input(key=K.BN_EPOCHS).set_value(2)
    at.number_input(key=K.BN_SEEDS).set_value(1)
    at.number_input(key=K.BN_MAX_BATCHES).set_value(40)
    at.button(key=K.BN_START).click().run()
    from ui.registry import get_store
    store = get_store()
    runs = store.list()
    assert len(runs) == 2
    for r in runs:
        store.trainer(r.id).join(120)
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    bn, plain = (store.get(r.id).snapshot.final.test_acc for r in sorted(runs, key=lambda r: not r.config.batch_norm))
    assert f"BN {bn:.2%} vs no-BN {plain:.2%}" in text and "one seed per arm" in text
    assert "before BN" in text
    at.button(key=K.BN_MODES).click().run()
    assert "cannot run at all" in " ".join(m.value for m in at.markdown)
    assert "about" in " ".join(m.value for m in at.markdown if "learning rates" in m.value)  # duration stated first
    at.button(key=K.BN_SWEEP_START).click().run()
    sweep = [r for r in store.list() if r.group and r.group.startswith("lr-sweep-")]
    assert sorted((r.config.lr, r.config.batch_norm) for r in sweep) == sorted(
        (lr, bn) for lr in (1e-3, 1e-2, 5e-2) for bn in (True, False))
    for r in sweep:
        store.trainer(r.id).join(120)
    at.run()
    assert "BN at lr 0.05:" in " ".join(m.value for m in at.markdown)
