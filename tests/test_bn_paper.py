"""The BatchNorm lab's paper mode (Ioffe & Szegedy 2015, figure 1): the run settings it needs (hidden activation,
Gaussian initial weights, plain SGD), the pair, the probe of the sigmoid's input, the verdicts, and the page."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch.nn import functional as F

from core.engine.config import TrainConfig, config_columns, config_from_args
from core.engine.data import load_dataset, normalize
from core.engine.models import MLP, build_model
from core.engine.optimizers import build_optimizer
from core.engine.torch_loop import evaluate
from core.lessons import bn_paper as P
from core.lessons.batchnorm import group_runs, lab_groups
from core.store.runs import RunStore
from core.store.groups import LabKind
from tests.test_bnlab import BatchRecorder
from tests.waiting import open_part, wait_until
from ui import keys as K

SIGMOID = TrainConfig(hidden=(32, 16), activation="sigmoid", weight_init="gaussian", init_std=0.05,
                      optimizer="plain-sgd", lr=0.5, batch_size=60, epochs=2, max_batches=20)


# --- the run settings ------------------------------------------------------------------------------------
def test_new_settings_train_and_round_trip_through_a_runs_config(store):
    """A sigmoid / Gaussian / plain-SGD run trains and reads back with its settings; a config.json written
    before these fields existed reads as today's defaults. Catches: a field not saved, or not read back, or an
    old run failing to load (or loading as sigmoid) for lack of the new keys."""
    run = store.start(SIGMOID)
    store.trainer(run.id).join(120)
    snap = store.get(run.id).snapshot
    assert snap.status == "finished", snap.error
    assert all(math.isfinite(l) for _, l in snap.step_losses)
    reopened = RunStore(store.root, store.data_dir)
    assert reopened.get(run.id).config == SIGMOID
    model = reopened.load_model(run.id)
    assert all(isinstance(b[-1], torch.nn.Sigmoid) for b in model.blocks)  # the saved weights load as the same net
    initial = build_model(SIGMOID)
    assert not torch.equal(model.blocks[0][0].weight, initial.blocks[0][0].weight)  # it trained

    meta = json.loads((store.root / run.id / "config.json").read_text())
    for name in ("activation", "weight_init", "init_std"):
        del meta["config"][name]
    (store.root / run.id / "config.json").write_text(json.dumps(meta))
    old = RunStore(store.root, store.data_dir).get(run.id).config
    assert (old.activation, old.weight_init, old.init_std) == ("relu", "default", TrainConfig().init_std)
    assert old == replace(SIGMOID, activation="relu", weight_init="default", init_std=TrainConfig().init_std)


def test_settings_on_the_command_line_in_the_label_and_in_the_runs_table():
    """The fields come from TrainConfig's metadata: flags, the label and the table's columns. Catches a field
    without its metadata, a label that hides a non-default network, and σ shown where it does not apply."""
    from core.train import parse_args

    cfg = config_from_args(parse_args(["--activation", "tanh", "--weight-init", "gaussian", "--init-std", "0.02",
                                       "--optimizer", "plain-sgd", "--lr", "0.1"]))
    assert (cfg.activation, cfg.weight_init, cfg.init_std, cfg.optimizer) == ("tanh", "gaussian", 0.02, "plain-sgd")
    assert {"tanh", "init=gaussian", "init_std=0.02", "plain-sgd"} <= set(cfg.label().split())
    assert "relu" not in TrainConfig().label() and "init" not in TrainConfig().label()
    cols = config_columns(cfg)
    assert cols["Hidden activation"] == "tanh" and cols["Initial weights"] == "gaussian"
    assert cols["Initial weight σ"] == "0.02" and cols["Momentum"] == "–"  # plain SGD reads no momentum
    assert config_columns(TrainConfig())["Initial weight σ"] == "–"  # σ only matters for Gaussian weights


def test_new_settings_are_not_tuned_and_keras_refuses_them():
    """A study does not vary the network's activation or initial weights unless the code says so, and a Keras
    run names the setting it cannot take. Catches a field silently joining the search space, and a Keras run
    that would train ReLU while its config says sigmoid."""
    from core.tuning.space import tunable_dimensions

    assert not {"activation", "weight_init", "init_std"} & set(tunable_dimensions())
    for bad, name in ((dict(activation="sigmoid"), "activation"), (dict(weight_init="gaussian"), "weight_init"),
                      (dict(optimizer="plain-sgd"), "optimizer")):
        with pytest.raises(ValueError, match=name):
            TrainConfig(framework="keras", **bad)


def test_activation_modules_and_a_forward_pass_by_hand():
    """Each activation is the module its name says, and the network computes W2·f(W1·x + b1) + b2. Catches a
    wrong mapping (tanh built as sigmoid) or an activation skipped."""
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    for name, f in (("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)):
        m = MLP(hidden=(3,), inputs=4, outputs=2, activation=name)
        lin, out = m.blocks[0][0], m.out
        expected = f(x @ lin.weight.T + lin.bias) @ out.weight.T + out.bias
        assert torch.allclose(m(x), expected, atol=1e-6)


def test_gaussian_initial_weights():
    """Every Linear weight (the output layer's too) from N(0, σ²), biases 0, the same for BN and no-BN. Catches
    σ taken as the variance, a uniform draw, the course's Xavier kept on the output, biases left random.
    Tolerances: the sample σ of 78,400 draws is within 0.3% of σ (one standard error); 3% is 12 of them."""
    cfg = replace(SIGMOID, hidden=(100, 100), init_std=0.02)
    model = build_model(cfg)
    for lin in [b[0] for b in model.blocks] + [model.out]:
        w = lin.weight.detach()
        assert torch.count_nonzero(lin.bias) == 0
        if w.numel() >= 50_000:  # the first layer
            assert w.std().item() == pytest.approx(0.02, rel=0.03) and abs(w.mean().item()) < 0.03 * 0.02
            kurt = ((w - w.mean()) ** 4).mean() / w.var() ** 2
            assert kurt.item() == pytest.approx(3.0, abs=0.2)  # Gaussian; a uniform draw has 1.8
    assert model.out.weight.std().item() == pytest.approx(0.02, rel=0.15)  # 1,000 draws: 2.2% per standard error
    bn = build_model(replace(cfg, batch_norm=True))
    assert all(torch.equal(a[0].weight, b[0].weight) for a, b in zip(model.blocks, bn.blocks))


def test_plain_sgd_is_w_minus_lr_times_the_gradient():
    """Two steps, each exactly w ← w − lr·g. Catches momentum (the second step would add 0.9 of the first
    gradient) and weight decay."""
    model = build_model(replace(SIGMOID, hidden=(8,)))
    opt = build_optimizer(model.parameters(), SIGMOID)
    torch.manual_seed(1)
    for _ in range(2):
        x, y = torch.randn(6, 784), torch.randint(0, 10, (6,))
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        opt.step()
        for p, w, g in zip(model.parameters(), before, grads):
            assert torch.allclose(p.detach(), w - SIGMOID.lr * g, rtol=0, atol=1e-7)


def test_plain_sgd_steps_as_torch_optim_sgd_does():
    """The trainer's PlainSGD (one foreach call, no torch.optim bookkeeping) against torch.optim.SGD(lr) over 50
    steps of the paper's network with BN: the same bits. Catches a faster update that rounds differently (the
    reproduced numbers of benchmarks/README.md would move) and one that skips a parameter (BN's γ and β)."""
    cfg = replace(SIGMOID, batch_norm=True)
    ours, theirs = build_model(cfg), build_model(cfg)
    opts = build_optimizer(ours.parameters(), cfg), torch.optim.SGD(theirs.parameters(), lr=cfg.lr)
    torch.manual_seed(2)
    for _ in range(50):
        x, y = torch.randn(60, 784), torch.randint(0, 10, (60,))
        for model, opt in zip((ours, theirs), opts):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    assert not torch.equal(ours.blocks[0][1].weight, torch.ones_like(ours.blocks[0][1].weight))  # γ moved


# --- the pair --------------------------------------------------------------------------------------------
def test_pair_configs_differ_only_in_bn_and_train_the_papers_steps():
    """Catches a pair whose arms differ in anything but BN, or a step count that is not the paper's."""
    for network in P.NETWORKS:
        bn, plain = P.pair_configs(network)
        assert bn.batch_norm and not plain.batch_norm and replace(bn, batch_norm=False) == plain
        assert P.total_steps(bn) == 50_000 and bn.batch_size == 60
    bn, _ = P.pair_configs("paper")
    assert (bn.hidden, bn.activation, bn.weight_init, bn.optimizer) == \
        ((100, 100, 100), "sigmoid", "gaussian", "plain-sgd")
    course, _ = P.pair_configs("course")
    assert (course.hidden, course.activation, course.optimizer) == ((512, 256, 128, 32), "relu", "adam")
    assert [P.total_steps(P.steps_config(bn, n)) for n in P.STEP_CHOICES] == list(P.STEP_CHOICES)
    with pytest.raises(ValueError, match="steps"):
        P.steps_config(bn, 1_500)


def test_the_pair_shares_initial_weights_and_batch_order(store):
    """The paper pair's two configs, trained through the store, see the same initial weights and the same
    minibatches in the same order. Catches an init or a batch order that depends on BN."""
    recorders, prev = {}, None
    for cfg in P.pair_configs("paper", steps=30):
        recorders[cfg.batch_norm] = BatchRecorder()
        prev = store.start(cfg, allow_duplicate=True, after=prev, probe=recorders[cfg.batch_norm]).id
    store.trainer(prev).join(120)
    a, b = recorders[True], recorders[False]
    assert len(a.batches) == len(b.batches) == 30 and a.batches == b.batches
    assert all(torch.equal(x, y) for x, y in zip(a.initial, b.initial))


def test_start_paper_pair_through_the_store(store):
    """Both runs start as a group of the store (the Runs page lists them), one after the other, with a probe
    whose records read back. Catches a pair outside the store or without its records."""
    group = P.start_paper_pair(store, "paper", steps=40, records=4)
    runs = group_runs(store, group)
    assert [r.config for r in runs] == list(P.pair_configs("paper", steps=40))
    assert sum(r.snapshot.status == "running" for r in runs) <= 1
    store.trainer(runs[-1].id).join(120)
    assert lab_groups(store, LabKind.PAPER) == [group]
    pair = P.read_pair(store, group)
    assert not pair.live and pair.total == 40 and pair.network == "paper"
    for bn in (True, False):
        t = pair.traces[bn]
        assert t.steps == (0, 10, 20, 30, 39) and t.n_units == 100  # before step 1, every 10th, before the last
        assert bool(t.units_batch) == bn
        assert 0 < t.seconds < store.get(runs[not bn].id).snapshot.elapsed  # its own time, inside the run's
        assert pair.final[bn] == store.get(runs[not bn].id).snapshot.history[-1].test_acc
    assert P.accuracy_curve(pair.traces[True], pair.final[True])[0][-1] == 40  # the run's own last evaluation


# --- the probe: percentiles of the sigmoid's input --------------------------------------------------------
def _tiny(bn: bool) -> MLP:
    g = torch.Generator().manual_seed(3)
    m = MLP(hidden=(3, 2), inputs=4, outputs=2, activation="sigmoid", batch_norm=bn)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        if bn:
            for b in m.blocks:
                b[1].running_mean.copy_(torch.randn(b[1].running_mean.shape, generator=g))
                b[1].running_var.copy_(torch.rand(b[1].running_var.shape, generator=g) + 0.5)
    return m.train()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


@pytest.mark.parametrize("bn", [False, True])
def test_percentiles_are_of_the_sigmoids_input_by_hand(bn):
    """On a 4-3-2-2 sigmoid network the recorded percentiles equal numpy's, per unit over the batch, of the
    last hidden layer's input to its sigmoid, computed by hand: W2·σ(W1·x + b1) + b2, and with BN
    γ·(z − μ)/√(σ² + ε) + β, with the running averages (as the network classifies) and with the batch's own
    statistics at every BN layer (the training network). Catches percentiles of the sigmoid's output, of the
    Linear output before BN, of the pooled layer, running averages moved by the probe, the model left in eval mode."""
    m = _tiny(bn)
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(5))
    running = [(_np(b[1].running_mean).copy(), _np(b[1].running_var).copy()) for b in m.blocks] if bn else []
    classified, batch = P.activation_inputs(m, x)

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def layer(h, i, stats):
        lin = m.blocks[i][0]
        z = h @ _np(lin.weight).T + _np(lin.bias)
        if not bn:
            return z
        b = m.blocks[i][1]
        mu, var = (z.mean(0), z.var(0)) if stats == "batch" else running[i]  # numpy's var divides by B: biased
        return _np(b.weight) * (z - mu) / np.sqrt(var + b.eps) + _np(b.bias)

    def last_input(stats):
        return layer(sigmoid(layer(_np(x), 0, stats)), 1, stats)  # (7, 2): the input of the last sigmoid

    q = [15, 50, 85]
    expected = np.percentile(last_input("running"), q, axis=0).T  # (units, 3), linear interpolation
    got = np.array(P.unit_percentiles(classified, 2))
    assert got == pytest.approx(expected, abs=1e-5)
    output = np.percentile(sigmoid(last_input("running")), q, axis=0).T
    assert not np.allclose(got, output, atol=1e-3)  # not the sigmoid's output
    if bn:
        assert np.array(P.unit_percentiles(batch, 2)) == pytest.approx(
            np.percentile(last_input("batch"), q, axis=0).T, abs=1e-5)
        for b, (mean, var) in zip(m.blocks, running):
            assert np.array_equal(_np(b[1].running_mean), mean) and np.array_equal(_np(b[1].running_var), var)
    else:
        assert batch is None
    assert m.training  # the trainer gets its model back in train mode


def test_probe_records_what_it_says_on_the_fixed_test_batch(data_dir):
    """The probe's records, on the real data, equal activation_inputs on the first 1,000 test images and the
    trainer's own evaluation, at steps 0, every, 2·every, ... and before the last step. Catches a batch that is
    not the fixed one, an accuracy over something else, a record on the wrong schedule."""
    model = build_model(replace(SIGMOID, hidden=(20, 10), batch_norm=True))
    probe = P.PaperProbe(total=7, every=3, data_dir=data_dir)
    probe.attach(model)
    assert [s for s in range(1, 8) if probe.wants(s)] == [1, 4, 7]
    data = load_dataset("mnist", data_dir)
    x = normalize(data.test_x[:P.FIXED_IMAGES])
    probe.before_step(1)
    rec = probe.to_dict()["records"][0]
    classified, batch = P.activation_inputs(model, x)
    assert rec["step"] == 0
    assert np.array(rec["units"]) == pytest.approx(np.array(P.unit_percentiles(classified, 10)), rel=1e-5, abs=1e-7)
    assert np.array(rec["units_batch"]) == pytest.approx(np.array(P.unit_percentiles(batch, 10)), rel=1e-5, abs=1e-7)
    assert rec["test_acc"] == evaluate(model, data.test_x, data.test_y)[1]
    assert P.read_paper_probe(probe.to_dict()).n_units == 10
    assert P.read_paper_probe({"kind": "paper", "records": [{"step": "x"}]}) is None  # damaged: nothing, no error


# --- the verdicts ---------------------------------------------------------------------------------------
PLAIN = ((-0.1, 0.0, 0.1), (-3.0, -2.0, -1.0))  # (first, last) percentiles: moves 2, spread 0.2 -> 2 (x10)
BN = ((-1.0, 0.0, 1.0), (-1.2, 0.1, 1.2))  # moves 0.1, spread 2 -> 2.4 (x1.2)


def _trace(first_last, units: int = 4, bn: bool = False, acc=(0.5, 0.9, 0.95)) -> P.PaperTrace:
    first, last = first_last
    recs = (tuple([first] * units), tuple([first] * units), tuple([last] * units))
    return P.PaperTrace(total=100, every=10, steps=(0, 20, 99), test_acc=acc, units=recs,
                        units_batch=recs if bn else ())


def _pair(plain=PLAIN, bn=BN, acc_plain=(0.5, 0.90, 0.95), acc_bn=(0.5, 0.95, 0.97), final=(0.96, 0.98)):
    return P.PaperPair("paper", 100, {False: _trace(plain, acc=acc_plain), True: _trace(bn, bn=True, acc=acc_bn)},
                       {False: final[0], True: final[1]}, live=False)


def _held(pair, unit=0) -> list:
    return [v.held for v in P.paper_verdicts(pair, unit)]


FLIPS = {  # claim index -> data that says otherwise
    0: dict(acc_bn=(0.5, 0.85, 0.97)),  # BN behind after a fifth of the steps
    1: dict(final=(0.98, 0.96)),  # BN behind at the end
    2: dict(plain=((-0.1, 0.0, 0.1), (-0.7, 0.3, 1.3))),  # the baseline's median moves only 0.3
    3: dict(plain=((-1.0, 0.0, 1.0), (-3.2, -2.0, -0.8))),  # the baseline's spread changes only x1.2
    4: dict(bn=((-1.0, 0.0, 1.0), (-0.5, 1.5, 2.5))),  # BN's median moves 1.5 of the baseline's 2
    5: dict(bn=((-1.0, 0.0, 1.0), (-4.0, 0.1, 4.0))),  # BN's spread changes x4 against x10
}


def test_every_claim_holds_on_data_that_shows_it():
    assert _held(_pair()) == [True] * 6


@pytest.mark.parametrize("claim", sorted(FLIPS))
def test_each_verdict_flips_when_the_data_says_otherwise(claim):
    """Each verdict is computed from the numbers: changing only what the claim is about turns it to "not held".
    Catches a verdict that is constant, reads the wrong arm, or the wrong checkpoint."""
    held = _held(_pair(**FLIPS[claim]))
    assert held[claim] is False
    assert held[:2] == [claim != 0, claim != 1]  # the accuracy claims do not move with the percentiles


def test_verdicts_count_units_and_wait_for_data():
    """The unit count is over the layer; a claim without its data is "not measured yet", never a verdict.
    Catches a count fixed at the layer size and a verdict drawn from missing numbers."""
    pair = _pair()
    bn = pair.traces[True]
    last = list(bn.units[-1])
    last[2] = (-0.5, 1.5, 2.5)  # unit 2 of the BN network: its median moves 1.5 by the end
    units = bn.units[:-1] + (tuple(last),)
    pair = replace(pair, traces={False: pair.traces[False], True: replace(bn, units=units, units_batch=units)})
    verdicts = P.paper_verdicts(pair, unit=1)
    assert verdicts[4].held is True and verdicts[4].units == (3, 4)
    assert P.paper_verdicts(pair, unit=2)[4].held is False
    empty = P.PaperPair("paper", 100, {False: None, True: None}, {False: None, True: None}, live=True)
    assert _held(empty) == [None] * 6


def test_typical_unit_is_the_median_mover_and_accuracy_checkpoints():
    """Catches a "typical" unit picked as the largest mover, and checkpoints that are not 1/5, 1/2 and the end."""
    shifts = [0.1, 0.5, 0.3, 2.0, 0.2]
    recs = (tuple((0.0, 0.0, 1.0) for _ in shifts), tuple((0.0, s, 1.0) for s in shifts))
    trace = P.PaperTrace(100, 50, (0, 99), (0.1, 0.9), recs)
    assert P.typical_unit(trace) == 2
    assert P.checkpoints(50_000) == (10_000, 25_000, 50_000)
    assert P.accuracy_at(trace, 0.95, 100) == 0.95 and P.accuracy_at(trace, None, 100) is None
    assert P.accuracy_at(trace, 0.95, 0) == 0.1


# --- the page ---------------------------------------------------------------------------------------------
def test_paper_mode_on_the_batchnorm_page(app_env, monkeypatch):
    """The section states its duration before Start, trains the pair as lab runs, draws the three panels and
    gives each claim a verdict and the reproduced numbers."""
    monkeypatch.setattr(P, "RECORDS", 10)
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/batchnorm.py").run()
    open_part(at, K.BN_TAB, K.BN_PARTS[-1])  # the lab's last tab
    assert not at.exception, at.exception
    assert any("2 runs of 50,000 steps" in c.value and "about" in c.value for c in at.caption)
    assert any("No paper-mode pair yet" in i.value for i in at.info)
    at.select_slider(key=K.BN_PAPER_STEPS).set_value(1_000).run()
    at.button(key=K.BN_PAPER_START).click().run()
    from ui.registry import get_store
    store = get_store()
    runs = [r for r in store.list() if LabKind.PAPER.owns(r.group)]
    assert len(runs) == 2
    wait_until(lambda: not any(store.get(r.id).live for r in runs), 180, what="the paper pair")
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert text.count("held") >= 6 and "not measured yet" not in text
    pair = P.read_pair(store, runs[0].group)
    unit = P.typical_unit(pair.traces[False])
    for v in P.paper_verdicts(pair, unit):
        assert v.measured in text
    table = at.dataframe[-1].value
    assert list(table["test acc @ 1,000"]) == [f"{pair.final[False]:.2%}", f"{pair.final[True]:.2%}"]
    assert at.selectbox(key=K.BN_PAPER_UNIT).value == unit
