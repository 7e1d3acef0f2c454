"""One source of truth: a dataset, an optimizer or a run option added in one place appears in the CLI's
--help, on the Train page and in the Runs table with no other code (issue: 'a two-file change')."""
import dataclasses

import pytest
import torch
from streamlit.testing.v1 import AppTest

import core.engine.config as C
from core.engine.data import DATASETS, DatasetSpec
from core.engine.optimizers import OPTIMIZERS, OptimizerSpec
from tests.waiting import wait_until
from ui import keys as K


def cli_help(capsys) -> str:
    from core.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return capsys.readouterr().out


def train_page(app_env):
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def runs_table(app_env, config) -> list[dict]:
    """Train a tiny run with `config`, then read the Runs page's table."""
    from ui.registry import get_store

    store = get_store()
    run = store.start(config)
    wait_until(lambda: not store.get(run.id).live, 120, what="the tiny run")
    assert store.get(run.id).snapshot.status == "finished", store.get(run.id).snapshot.error
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    return at.dataframe[0].value.to_dict("records")


def test_a_new_dataset_is_one_registry_entry(app_env, monkeypatch, capsys):
    """Catches a page or lab that names its datasets itself (the BatchNorm lab trained MNIST only): the entry is in
    the CLI, trains from the Train page and from the BatchNorm lab, and shows in the Runs table."""
    from ui.registry import get_store

    mnist = DATASETS["mnist"]
    monkeypatch.setitem(DATASETS, "mnist-copy", dataclasses.replace(mnist, name="mnist-copy", label="MNIST, a copy"))
    assert "mnist-copy" in cli_help(capsys)
    at = train_page(app_env)
    assert "MNIST, a copy" in at.selectbox(key=K.TRAIN_DATASET).options  # options as labelled
    at.selectbox(key=K.TRAIN_DATASET).set_value("mnist-copy")
    at.number_input(key=K.TRAIN_EPOCHS).set_value(1)
    at.number_input(key=K.TRAIN_MAX_BATCHES).set_value(3).run()
    at.button(key=K.TRAIN_START).click().run()
    assert not at.exception, at.exception
    store = get_store()
    wait_until(lambda: store.list() and not any(r.live for r in store.list()), 120, what="the Train page's run")

    at.switch_page("pages/batchnorm.py").run()
    assert "MNIST, a copy" in at.selectbox(key=K.BN_DATASET).options
    at.selectbox(key=K.BN_DATASET).set_value("mnist-copy")
    at.number_input(key=K.BN_EPOCHS).set_value(1)
    at.number_input(key=K.BN_SEEDS).set_value(1)
    at.number_input(key=K.BN_MAX_BATCHES).set_value(3).run()
    at.button(key=K.BN_START).click().run()
    assert not at.exception, at.exception
    wait_until(lambda: len(store.list()) == 3 and not any(r.live for r in store.list()), 120, what="the lab's twins")
    assert [(r.config.dataset, r.snapshot.status) for r in store.list()] == [("mnist-copy", "finished")] * 3
    rows = runs_table(app_env, C.TrainConfig(dataset="mnist-copy", epochs=1, max_batches=2))
    assert {row["Dataset"] for row in rows} == {"mnist-copy"}


def test_a_new_optimizer_is_one_registry_entry(app_env, monkeypatch, capsys):
    spec = OptimizerSpec("adagrad", "Adagrad", (), lambda params, c: torch.optim.Adagrad(params, lr=c.lr))
    monkeypatch.setitem(OPTIMIZERS, "adagrad", spec)
    assert "adagrad" in cli_help(capsys)
    page = train_page(app_env)
    assert "Adagrad" in page.selectbox(key=K.TRAIN_OPTIMIZER).options
    page.selectbox(key=K.TRAIN_OPTIMIZER).set_value("adagrad").run()
    assert "train_beta1" not in {w.key for w in page.number_input}  # Adagrad reads none of Adam's fields
    rows = runs_table(app_env, C.TrainConfig(optimizer="adagrad", epochs=1, max_batches=3))
    assert rows[0]["Optimizer"] == "adagrad" and rows[0]["Adam β1"] == "–"  # Adam's fields do not apply


def test_a_new_run_option_is_one_field(app_env, monkeypatch, capsys):
    extended = dataclasses.make_dataclass(
        "TrainConfig",
        [("label_smoothing", float, C.option(0.0, "Label smoothing", "share of the target spread over the other "
                                             "classes", "float", lo=0.0, hi=0.5))],
        bases=(C.TrainConfig,), frozen=True)
    monkeypatch.setattr(C, "TrainConfig", extended)
    assert "--label-smoothing" in cli_help(capsys)
    page = train_page(app_env)
    assert page.number_input(key="train_label_smoothing").value == 0.0
    rows = runs_table(app_env, extended(label_smoothing=0.1, epochs=1, max_batches=3))
    assert rows[0]["Label smoothing"] == "0.1"
    assert "label_smoothing=0.1" in extended(label_smoothing=0.1).label()  # in the run's label when not the default
    assert "label_smoothing" not in extended().label()


def test_a_new_field_is_tunable_only_when_its_metadata_says_so(monkeypatch):
    """Catches the old opt-out list: a field the config gains must not become something a study varies by default
    (a seed-like or budget-like field would silently be searched), yet opting in needs no code in the space."""
    from core.tuning.space import tunable_dimensions

    for tunable in (False, True):
        extended = dataclasses.make_dataclass(
            "TrainConfig", [("dropout", float, C.option(0.0, "Dropout", "share of units dropped", "float", lo=0.0,
                                                         hi=0.9, tunable=tunable))], bases=(C.TrainConfig,), frozen=True)
        monkeypatch.setattr(C, "TrainConfig", extended)
        dims = tunable_dimensions()
        assert ("dropout" in dims) == tunable
        assert {"lr", "batch_norm", "width"} <= set(dims) and not {"seed", "epochs", "dataset", "precision"} & set(dims)


def test_optimizer_fields_show_only_where_they_apply(app_env):
    page = train_page(app_env)
    keys = {w.key for w in page.number_input}
    assert "train_beta1" in keys and "train_momentum" not in keys  # Adam is the default
    page.selectbox(key=K.TRAIN_OPTIMIZER).set_value("sgd").run()
    keys = {w.key for w in page.number_input}
    assert "train_momentum" in keys and "train_beta1" not in keys


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_trains(name, data_dir):
    from core.engine.trainer import Trainer

    lr = {"sgd": 0.01, "plain-sgd": 0.1}.get(name, 1e-3)
    t = Trainer(C.TrainConfig(optimizer=name, lr=lr, epochs=1, max_batches=30), data_dir=data_dir).start()
    t.join(120)
    s = t.snapshot
    assert s.status == "finished", s.error
    assert s.step_losses[-1][1] < s.step_losses[0][1]  # it learns


def test_adam_exposes_its_betas_and_epsilon():
    from core.engine.optimizers import FusedAdam, build_optimizer

    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model.parameters(), C.TrainConfig(beta1=0.5, beta2=0.9, eps=1e-6))
    assert isinstance(opt, FusedAdam) and opt.betas == (0.5, 0.9) and opt.eps == 1e-6
