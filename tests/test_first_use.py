"""What a first-time learner meets: the data checked before any button trains, state that follows the runs,
charts with real ranges before their data, runs that can be told apart, time estimates from this machine's runs."""
import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from core.engine.data import RAW_FILES, check_dataset
from core.engine.snapshot import EpochMetrics, RunSnapshot
from core.store.runs import RunInfo
from tests.waiting import open_part, parts, texts, wait_ended, wait_until
from ui import keys as K

TIMEOUT = 120
PAGES = ("pages/home.py", "pages/train.py", "pages/runs.py", "pages/batchnorm.py", "pages/tuning.py", "pages/softmax.py",
         "pages/frameworks.py", "pages/draw.py")
# Every button that trains, by page: off while the data is missing.
TRAINING_BUTTONS = {"pages/train.py": [K.TRAIN_START], "pages/batchnorm.py": [K.BN_START, K.BN_SWEEP_START],
                    "pages/softmax.py": [K.SM_RUN_EXPERIMENT, K.SM_TRAIN_BOTH], "pages/draw.py": [K.DRAW_QUICK_TRAIN],
                    "pages/tuning.py": [K.TUNE_GVR_START, K.TUNE_LR_START, K.TUNE_BETA_START, K.TUNE_C2F_START,
                                        K.TUNE_OWN_START],
                    "pages/frameworks.py": [K.FW_START]}


@pytest.fixture
def app(app_env):
    return AppTest.from_file("../app.py", default_timeout=TIMEOUT)


@pytest.fixture
def offline(app_env, monkeypatch):
    """An empty data folder, as on a machine that never went online."""
    empty = app_env / "no-data"
    empty.mkdir()
    monkeypatch.setenv("DATA_DIR", str(empty))
    return empty


# --- the data, checked before anything trains ---------------------------------------------------------------
def test_data_check_names_missing_and_damaged_files(tmp_path, data_dir):
    empty = check_dataset("mnist", tmp_path)
    assert not empty.ok and empty.missing == RAW_FILES and "is not on disk" in empty.problem()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in RAW_FILES:
        (raw / f).write_bytes(b"\0" * 16)
    damaged = check_dataset("mnist", tmp_path)
    assert not damaged.ok and not damaged.missing and len(damaged.damaged) == 4 and "damaged" in damaged.problem()
    assert check_dataset("mnist", data_dir).ok


@pytest.mark.parametrize("page", PAGES)
def test_offline_every_page_says_so_and_keeps_training_buttons_off(app, offline, page):
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    assert "MNIST is not on disk" in texts(app), page
    tabs, labels = parts(page)
    seen = set()
    for label in labels:  # every part of the page (only the open one is drawn)
        if tabs:
            open_part(app, tabs, label)
            assert not app.exception, (page, label)
        shown = {b.key for b in app.button}
        for key in TRAINING_BUTTONS.get(page, []):
            if key in shown:
                assert app.button(key=key).disabled, (page, key)
                seen.add(key)
    assert seen >= set(TRAINING_BUTTONS.get(page, [])), page  # every training button was found somewhere
    from ui.registry import get_store
    assert get_store().list() == []  # nothing was started, so nothing failed


def test_offline_download_says_why_and_the_page_stays(app, offline, monkeypatch):
    import ui.data
    from core.engine.data import DataUnavailableError

    def refuse(name):
        raise DataUnavailableError(f"The {name} dataset could not be downloaded (URLError: no network)")
    monkeypatch.setattr(ui.data, "load_dataset", refuse)
    app.run()
    app.switch_page("pages/train.py").run()
    app.button(key="train_data_download").click().run()
    assert not app.exception
    assert "could not be downloaded" in " ".join(e.value for e in app.error)
    assert app.button(key=K.TRAIN_START).disabled


def test_data_arriving_turns_the_buttons_on(app, offline, data_dir):
    app.run()
    app.switch_page("pages/train.py").run()
    assert app.button(key=K.TRAIN_START).disabled
    (offline / "MNIST").symlink_to(Path(data_dir) / "MNIST")  # the learner copies the files in
    app.button(key="train_data_recheck").click().run()
    assert not app.button(key=K.TRAIN_START).disabled and "is not on disk" not in texts(app)


# --- state that follows the runs ------------------------------------------------------------------------------
def test_store_revision_moves_with_every_change(store):
    r0 = store.revision()
    assert store.revision() == r0  # polling changes nothing
    run = store.start(TrainConfig(epochs=1, max_batches=20))
    r1 = store.revision()
    assert r1 != r0
    store.trainer(run.id).join(60)
    assert store.revision() not in (r0, r1)  # ended
    r2 = store.revision()
    store.rename(run.id, "renamed")
    assert store.revision() != r2
    r3 = store.revision()
    store.delete(run.id)
    assert store.revision() != r3


def test_duplicate_warning_goes_when_the_identical_run_ends(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.number_input(key=K.TRAIN_EPOCHS).set_value(50)
    app.button(key=K.TRAIN_START).click().run()
    app.button(key=K.TRAIN_START).click().run()
    assert "already training" in " ".join(w.value for w in app.warning)
    store = get_store()
    store.stop_all(wait=60)
    app.run()  # what the page's poll does when the run's status changes
    assert "already training" not in " ".join(w.value for w in app.warning)
    (run,) = store.list()
    assert "running" not in app.selectbox(key=K.TRAIN_RUN_ID).format_func(run.id)  # the picker says stopped
    assert "stopped" in app.selectbox(key=K.TRAIN_RUN_ID).format_func(run.id)


def test_stopped_run_one_accuracy_on_the_train_and_runs_pages(app):
    """Stopped during epoch 2: the Train page (picker, metric, table) and Evaluate give epoch 1's accuracy."""
    from ui.registry import get_store
    app.run()
    store = get_store()
    run = store.start(TrainConfig(epochs=3, max_batches=300), name="stopped early")
    trainer = store.trainer(run.id)
    wait_until(lambda: trainer.snapshot.epoch >= 1 and trainer.snapshot.epoch_step >= 20 or not trainer.alive,
               TIMEOUT, what="epoch 2 to be under way")
    store.stop(run.id, wait=60)
    info = store.get(run.id)
    acc = f"{info.snapshot.final.test_acc:.2%}"
    app.switch_page("pages/train.py").run()
    assert app.selectbox(key=K.TRAIN_RUN_ID).format_func(run.id).endswith(acc)
    assert [m.value for m in app.metric if m.label == "Last test accuracy"] == [acc]
    assert list(app.table[0].value["test acc"]) == [acc]  # one epoch, the one its weights hold
    assert "its weights and numbers are those of epoch 1" in texts(app)
    app.switch_page("pages/runs.py").run()
    open_part(app, K.RUNS_TAB, "Evaluate a run")
    assert [m.value for m in app.metric if m.label == "Test accuracy"] == [acc]


# --- runs that can be told apart --------------------------------------------------------------------------------
def test_identical_settings_get_distinct_names(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.number_input(key=K.TRAIN_EPOCHS).set_value(1)
    app.number_input(key=K.TRAIN_MAX_BATCHES).set_value(10)
    store = get_store()
    for _ in range(2):
        app.button(key=K.TRAIN_START).click().run()
        wait_ended(store)
        app.run()
    names = sorted(r.name for r in store.list())
    label = TrainConfig(epochs=1, max_batches=10).label()
    assert names == [label, f"{label} (2)"]


def test_pickers_list_own_runs_first_and_never_default_to_a_diverged_run(app):
    from ui.registry import get_store
    app.run()
    store = get_store()
    mine = store.start(TrainConfig(epochs=1, max_batches=20), name="mine")
    wait_ended(store)
    lab = store.start(TrainConfig(epochs=1, max_batches=20, seed=1), name="lab twin", group="twins-abc123",
                      allow_duplicate=True)
    wait_ended(store)
    bad = store.start(TrainConfig(lr=10.0, optimizer="sgd", max_batches=50, epochs=1), name="too fast")
    wait_ended(store)
    assert store.get(bad.id).snapshot.status == "diverged"
    app.switch_page("pages/train.py").run()
    picker = app.selectbox(key=K.TRAIN_RUN_ID)
    assert picker.value == mine.id  # the newest run is diverged: not shown first
    assert len(picker.options) == 2 and not any("lab twin" in o for o in picker.options)  # the labs' runs: on request
    app.toggle(key=K.TRAIN_LAB_RUNS).set_value(True).run()
    options = app.selectbox(key=K.TRAIN_RUN_ID).options
    assert len(options) == 3 and options[-1].startswith("[BN twins] lab twin")  # and then last
    app.switch_page("pages/runs.py").run()
    assert app.multiselect(key=K.RUNS_OVERLAY).value == [mine.id]  # failed and diverged runs are not compared by default
    table = app.dataframe[0].value
    open_part(app, K.RUNS_TAB, "Evaluate a run")
    assert app.selectbox(key=K.RUNS_EVAL).value == mine.id
    assert list(table["name"])[-1] == "lab twin" and list(table["lab"])[-1] == "BN twins"


# --- charts ---------------------------------------------------------------------------------------------------
def test_charts_have_real_ranges_before_their_data():
    from ui.figures import accuracy_figure, arm_band_figure, line_figure, loss_figure

    empty = RunSnapshot(status="running", epochs=10, steps_per_epoch=938)
    loss, acc = loss_figure([("run", empty)], total_steps=9380), accuracy_figure([("run", empty)], epochs=10)
    assert tuple(loss.layout.yaxis.range) == (0, 2.5) and tuple(loss.layout.xaxis.range) == (0, 9380)
    assert tuple(acc.layout.yaxis.range)[0] == 0 and 1 <= tuple(acc.layout.yaxis.range)[1] <= 1.01
    assert tuple(acc.layout.xaxis.range) == (0.5, 10.5) and acc.layout.yaxis.tickformat.endswith("%")
    assert "Waiting for the first epoch" in acc.layout.annotations[0].text
    assert "Waiting for the first training steps" in loss.layout.annotations[0].text
    for fig in (arm_band_figure({"BN": [empty], "no-BN": [empty]}, m, epochs=5) for m in ("loss", "test_acc")):
        assert fig.layout.annotations and fig.layout.yaxis.range[0] == 0
    done = replace(empty, status="finished", history=(EpochMetrics(1, 0.3, 0.91, 0.25, 0.93, 2.0),))
    acc = accuracy_figure([("run", done)], epochs=10)
    assert not acc.layout.annotations and 0 <= acc.layout.yaxis.range[0] < 0.91 and acc.layout.yaxis.range[1] <= 1.01
    sweep = line_figure([1e-3, 1e-2, 5e-2], {"BN": [0.9, 0.8, 0.7]}, "t", "lr", "acc", log_x=True, percent=True)
    assert sweep.layout.yaxis.tickformat == ".0%" and sweep.data[0].mode == "lines+markers"  # 3 points: markers


def test_overlay_legend_has_one_short_entry_per_run():
    from ui.figures import LEGEND_NAME, accuracy_figure, loss_figure

    snap = RunSnapshot(status="finished", step_losses=((10, 1.0), (20, 0.8)), steps_per_epoch=20,
                       history=(EpochMetrics(1, 0.5, 0.8, 0.4, 0.85, 1.0),))
    runs = [("mnist no-BN lr=0.001 bs=64 ep=10 seed=0 (2)", snap), ("mnist BN lr=0.001 bs=64 ep=10 seed=0", snap)]
    for fig in (loss_figure(runs), accuracy_figure(runs)):
        shown = [t.name for t in fig.data if t.showlegend is not False]
        assert len(shown) == 2 and all(len(n) <= LEGEND_NAME for n in shown)


# --- the BatchNorm lab ------------------------------------------------------------------------------------------
def plant_run(runs: Path, run_id: str, config: TrainConfig, name: str, group: str, test_acc: float) -> None:
    """A run folder as the store writes it (no weights: reported as a problem, numbers kept)."""
    d = runs / run_id
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": config.to_dict(), "name": name, "created": time.time(),
                                               "group": group}))
    (d / "status.json").write_text(json.dumps({"status": "finished", "error": None}))
    (d / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 2.3}) + "\n" + json.dumps(
        {"epoch": 1, "train_loss": 2.3, "train_acc": test_acc, "test_loss": 2.3, "test_acc": test_acc, "seconds": 1.5}) + "\n")


def test_sweep_arm_at_one_digits_share_is_explained(app, app_env):
    base = TrainConfig(epochs=1, max_batches=150)
    runs = app_env / "runs"
    for i, (lr, bn, acc) in enumerate([(1e-3, True, 0.93), (1e-3, False, 0.88), (5e-2, True, 0.9), (5e-2, False, 0.1135)]):
        plant_run(runs, f"20260101-12000{i}-abcde{i}", replace(base, lr=lr, batch_norm=bn), f"arm {i}", "lr-sweep-abcdef", acc)
    app.run()
    app.switch_page("pages/batchnorm.py").run()
    open_part(app, K.BN_TAB, "Learning-rate headroom")
    assert not app.exception
    note = " ".join(i.value for i in app.info)
    assert "no-BN at lr 0.05: 11.35%** is exactly the share of 1s among the 10,000 test images (1,135 of them)" in note
    assert "BN at lr 0.05: 90.00%" not in note  # only the arm that collapsed


def test_failed_twins_say_so_instead_of_waiting(app, monkeypatch):
    """Twins that fail (here: the data vanished after the page checked it) are errors with their message, and the
    inside view says why it stays empty instead of promising to fill in."""
    import core.engine.trainer as tr
    from core.engine.data import DataUnavailableError
    from ui.registry import get_store
    monkeypatch.setattr(tr, "load_dataset", lambda *a: (_ for _ in ()).throw(DataUnavailableError("no MNIST here")))
    app.run()
    app.switch_page("pages/batchnorm.py").run()
    app.number_input(key=K.BN_SEEDS).set_value(1).run()
    app.button(key=K.BN_START).click().run()
    wait_ended(get_store())
    app.run()
    errors = [e.value for e in app.error]
    assert len(errors) == 2 and all("failed" in e and "no MNIST here" in e for e in errors)
    open_part(app, K.BN_TAB, "Inside the network")
    assert "Nothing to show inside" in " ".join(w.value for w in app.warning)
    assert "appears as soon as" not in texts(app)


def test_one_seed_says_the_spread_is_unknown(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/batchnorm.py").run()
    app.number_input(key=K.BN_SEEDS).set_value(1)
    app.number_input(key=K.BN_EPOCHS).set_value(1)
    app.number_input(key=K.BN_MAX_BATCHES).set_value(20)
    app.button(key=K.BN_START).click().run()
    wait_ended(get_store())
    app.run()
    summary = app.table[0].value.set_index("")  # one row per measure, one column per arm
    cells = " ".join(summary.loc["final test accuracy"])
    assert "one seed: spread unknown" in cells and "± 0.00%" not in cells


def test_estimate_rests_on_this_machines_timed_epochs(monkeypatch):
    import core.store.pace as pace
    monkeypatch.setattr(pace, "is_loaded", lambda name, data_dir=None: True)

    def timed(max_batches, seconds, epochs=1):
        cfg = TrainConfig(epochs=epochs, max_batches=max_batches)
        n = pace.steps_per_epoch(cfg)
        snap = RunSnapshot(status="finished", epochs=epochs, steps_per_epoch=n, step=n * epochs,
                           history=tuple(EpochMetrics(e, 1, .5, 1, .5, seconds) for e in range(1, epochs + 1)))
        return RunInfo(f"20260101-120000-{max_batches:06x}", cfg, "r", 0.0, snap)

    sweep = [TrainConfig(epochs=1, max_batches=150)] * 6
    same = pace.estimate([timed(150, 0.9), timed(150, 0.9)], sweep)
    assert same.seconds == pytest.approx(6 * (0.9 + pace.RUN_OVERHEAD)) and "of this size" in same.basis
    # epochs of 100 and 300 steps: 0.5 s + 0.004 s a step; 150 steps then take 1.1 s, not 150/300 of 1.7 s
    fit = pace.estimate([timed(100, 0.9), timed(300, 1.7)], sweep)
    assert fit.seconds == pytest.approx(6 * (1.1 + pace.RUN_OVERHEAD)) and "like these" in fit.basis
    guess = pace.estimate([], sweep, probe=None)  # nothing timed here, and the machine's pace not measured yet
    assert guess.first_guess and "a first guess: nothing timed here yet" in guess.basis
    other = replace(sweep[0], hidden=(64,))
    assert pace.estimate([timed(150, 0.9)] * 2, [other], probe=None).first_guess  # another network is not "like"
    keras = replace(sweep[0], framework="keras", precision="fp32")  # nor another framework
    assert "a Keras run at PyTorch's pace" in pace.estimate([timed(150, 0.9)] * 2, [keras], probe=None).basis
    probed = [replace(timed(150, 1.2), group="twins-abcdef")] * 2  # the lab's probe costs its twins time
    mixed = pace.estimate(probed + [timed(150, 0.9)] * 2, sweep, prefer=lambda r: r.group is None)
    assert mixed.seconds == pytest.approx(same.seconds)
    monkeypatch.setattr(pace, "is_loaded", lambda name, data_dir=None: False)
    loading = pace.estimate([timed(150, 0.9)] * 2, sweep, probe=None)
    assert loading.seconds == pytest.approx(same.seconds + pace.LOAD_SECONDS)


def test_estimate_before_any_run_rests_on_steps_timed_here(monkeypatch):
    """Issue: with no run history the first estimate used the dev machine's constants (1.5 ms a step) while a step
    here took 5.5 ms. With the machine's measured pace the estimate is that pace's arithmetic, says it rests on it,
    and is no first guess; a timed run of the same kind still wins over it. Catches an estimate that ignores the
    measured pace (the old behaviour) or lets it override this machine's timed epochs."""
    import core.store.pace as pace
    monkeypatch.setattr(pace, "is_loaded", lambda name, data_dir=None: True)
    slow = pace.Pace(step_fixed=0.004, per_sample=2e-5, eval_seconds=0.8, start=0.05, steps=24)
    cfg = TrainConfig(epochs=2, max_batches=200)
    e = pace.estimate([], [cfg], pace=slow)
    step = 0.004 + 2e-5 * 64
    assert e.seconds == pytest.approx(2 * (200 * step + 0.8) + pace.RUN_OVERHEAD)
    assert not e.first_guess and "24 steps timed here, no run like these yet" in e.basis
    assert e.seconds > 2 * pace.estimate([], [cfg], probe=None).seconds  # the constants were far too fast here
    snap = RunSnapshot(status="finished", epochs=2, steps_per_epoch=200, step=400,
                       history=tuple(EpochMetrics(k, 1, .5, 1, .5, 1.5) for k in (1, 2)))
    timed = RunInfo("20260101-120000-0000c8", cfg, "r", 0.0, snap)
    assert pace.estimate([timed], [cfg], pace=slow).seconds == pytest.approx(2 * 1.5 + pace.RUN_OVERHEAD)
    # a BN step costs what the probe measured for one; the robust preset's augmentation is not timed: a lower bound
    bn = replace(slow, bn_factor=1.5)
    assert pace.estimate([], [replace(cfg, batch_norm=True)], pace=bn).seconds == pytest.approx(
        2 * (200 * step * 1.5 + 0.8) + pace.RUN_OVERHEAD)
    robust = pace.estimate([timed], [replace(cfg, robust=True)], pace=slow)  # a plain run's epochs are not "like"
    assert "at least: the robust preset's augmentation is not timed yet" in robust.basis
    # while the probe measures, it is the one loading the data: the run will not (no load time added)
    monkeypatch.setattr(pace, "is_loaded", lambda name, data_dir=None: False)
    busy = SimpleNamespace(pace=None, measuring=True)
    assert pace.estimate([], [cfg], probe=busy).seconds == pytest.approx(pace.estimate([], [cfg], probe=None).seconds
                                                                          - pace.LOAD_SECONDS)


def test_pace_probe_measures_once_in_the_background(data_dir, monkeypatch):
    """The probe times real training steps in a thread of its own and keeps the result; a second start does not
    measure again; a failed measurement (no data) is kept as an error and tried again on the next start. Catches
    a probe that re-measures on every page view, or one that stays failed after the data arrives."""
    import core.store.pace as pace_module
    from core.engine.data import DataUnavailableError
    from core.store.pace import PaceProbe
    real = pace_module._measure
    monkeypatch.setattr(pace_module, "_measure", lambda *a: (_ for _ in ()).throw(DataUnavailableError("no MNIST")))
    probe = PaceProbe()
    with pytest.raises(DataUnavailableError):
        probe.wait(data_dir)
    assert probe.pace is None and isinstance(probe.error, DataUnavailableError)
    monkeypatch.setattr(pace_module, "_measure", real)
    probe.start(data_dir)
    pace = probe.wait(data_dir)
    assert pace.steps == 36 and pace.step_fixed + 64 * pace.per_sample > 0 and pace.eval_seconds > 0 and pace.bn_factor > 0
    probe.start(data_dir)
    assert probe.pace is pace and not probe.measuring and probe.error is None


def test_one_class_answer(data_dir):
    from core.lessons.evaluation import class_shares, one_class_answer
    shares = class_shares("mnist", data_dir)
    assert shares.sum() == pytest.approx(1) and round(float(shares[1]) * 10_000) == 1135
    assert one_class_answer(0.1135, shares, 10_000) == 1 and one_class_answer(0.098, shares, 10_000) == 0
    assert one_class_answer(0.5, shares, 10_000) is None


# --- the front door ---------------------------------------------------------------------------------------------
def test_home_has_a_three_step_path(app):
    app.run()
    assert not app.exception
    links = [e.proto for e in app.get("page_link")][:3]
    assert [link.label.split("·")[0].strip("* ") for link in links] == ["1", "2", "3"]
    assert [p in link.page for link, p in zip(links, ("train", "runs", "draw"))] == [True] * 3


def test_tests_never_write_the_readme_screenshot():
    """The browser tests write screenshots to a temporary folder unless `make screenshot` names docs/."""
    import ast
    root = Path(__file__).resolve().parent
    for path in (root / "browser").glob("*.py"):
        assert "docs" not in {n.value for n in ast.walk(ast.parse(path.read_text()))
                              if isinstance(n, ast.Constant) and isinstance(n.value, str)}, path.name


# --- the Draw page's preprocessing strip ------------------------------------------------------------------------
def test_strip_is_white_on_black_at_one_scale_with_the_shift_marked():
    from core.drawing.preprocess import preprocess
    from tests.test_preprocess import SEVEN, canvas
    from ui.tiles import COM, GAP, GRID, SCALE, TARGET, TILE, preprocessing_strip, saliency_figure

    pre = preprocess(canvas(SEVEN))
    tiles, captions = preprocessing_strip(pre, naive=False)
    assert len(tiles) == 6 and {t.shape for t in tiles} == {(TILE, TILE + GAP, 3)}  # one size for every step
    centred = tiles[4][:, :TILE]
    r, c = np.nonzero(pre.centered == 255)[0][0], np.nonzero(pre.centered == 255)[1][0]
    pixel = centred[r * SCALE + SCALE // 2 + 1, c * SCALE + SCALE // 2 + 1]
    assert tuple(pixel) in {(255, 255, 255), COM, TARGET}  # full ink is white, as the model sees it
    assert tuple(centred[SCALE * 2 + 2, 2]) == (0, 0, 0) and tuple(centred[SCALE * 3, 2]) == GRID  # black, grid
    boxed = tiles[3][:, :TILE]
    assert (boxed == COM).all(-1).any() and (boxed == TARGET).all(-1).any()  # centre of mass and (14, 14) marked
    assert "MODEL INPUT" in captions[4] and "centre of mass" in captions[3] and "moved" in captions[4]
    fig = saliency_figure(pre.centered, np.random.default_rng(0).random((28, 28)))
    assert fig.data[0].colorbar.tickformat == ".0%" and fig.data[0].zmax == 1  # a colour scale, as a share


def test_draw_page_shows_the_strip_and_the_saliency_scale(app_env, monkeypatch):
    import sys
    import types
    from tests.test_preprocess import SEVEN, canvas
    from ui.registry import get_store
    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=canvas(SEVEN), json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    store = get_store()
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=200))
    store.trainer(run.id).join(120)
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    captions = [c for img in at.image for c in img.captions]
    assert len(captions) == 6 and any("MODEL INPUT" in c for c in captions)
    assert any("Saliency" in c.proto.spec and '"colorbar"' in c.proto.spec for c in at.get("plotly_chart"))
