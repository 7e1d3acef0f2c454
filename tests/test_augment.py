"""The robust preset: augmentation on whole batches, the `robust` run option, centre lines of digits."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from core.engine import augment as A
from core.engine.config import TrainConfig, add_config_arguments, config_columns, config_from_args
from core.engine.data import iterate_batches, load_dataset, normalize
from core.engine.strokes import centre_lines, holes, squared_distance, thin
from core.engine.trainer import Trainer
from tests.waiting import wait_until

STILL = replace(A.DEFAULT, rotation_deg=0.0, shear=0.0, scale=(1.0, 1.0), aspect=(1.0, 1.0), translate_px=0.0,
                elastic_px=0.0, restroke=0.0)  # every change switched off


def batches(data, cfg=None, seed=0, epoch=1, max_batches=20):
    return list(A.robust_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(seed), max_batches,
                                 0.5, 0.5, seed, epoch, cfg))


def test_grid_is_affine_grid():
    thetas = A._thetas(50, torch.Generator().manual_seed(1), A.DEFAULT, torch.ones(50))
    assert torch.allclose(A._grid(thetas), F.affine_grid(thetas, [50, 1, 28, 28], align_corners=False), atol=1e-6)


def test_nothing_switched_on_changes_nothing(data_dir):
    x = normalize(load_dataset("mnist", data_dir).train_x[:200])
    out = A.augment(x, torch.Generator().manual_seed(0), 0.5, 0.5, STILL)
    assert torch.allclose(out, x, atol=1e-5)


def test_batches_keep_labels_order_and_shapes(data_dir):
    data = load_dataset("mnist", data_dir)
    plain = list(iterate_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(0), 20))
    robust = batches(data)
    assert len(robust) == len(plain) == 20
    for (xa, ya), (xp, yp) in zip(robust, plain):
        assert torch.equal(ya, yp)  # the same minibatches, labels untouched
        assert xa.shape == xp.shape == (64, 784) and xa.dtype == xp.dtype
        assert xa.min() >= -1 - 1e-6 and xa.max() <= 1 + 1e-6  # still normalised ink
        assert not torch.allclose(xa, xp)
    # every digit stays whole and near the middle of the frame, where the Draw page puts a drawing
    ink = torch.cat([b[0] for b in robust]).view(-1, 28, 28) * 0.5 + 0.5
    idx = torch.arange(28.0)
    mass = ink.sum((1, 2))
    com = torch.stack([(ink.sum(2) * idx).sum(1), (ink.sum(1) * idx).sum(1)], 1) / mass.unsqueeze(1)
    assert ((com - 14).abs() < 4).all() and (mass > 20).all()
    assert (ink[:, [0, -1], :].amax((1, 2)) < 0.5).float().mean() > 0.95  # few cut off at the frame


def test_same_seed_same_augmentation_other_seed_or_epoch_other(data_dir):
    data = load_dataset("mnist", data_dir)
    first = batches(data, seed=3, max_batches=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, batches(data, seed=3, max_batches=3)))
    assert not torch.equal(first[0][0], batches(data, seed=3, epoch=2, max_batches=3)[0][0])
    assert not torch.equal(first[0][0], batches(data, seed=4, max_batches=3)[0][0])


def test_helper_thread_gives_the_same_batches_and_stops_with_the_reader(data_dir, monkeypatch):
    import threading

    data = load_dataset("mnist", data_dir)
    ahead = batches(data, max_batches=40)
    monkeypatch.setattr(A, "_ahead", lambda items, depth=2: items)  # everything in the reading thread
    inline = batches(data, max_batches=40)
    monkeypatch.undo()
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ahead, inline))
    it = A.robust_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(0), None, 0.5, 0.5, 0, 1)
    next(it)
    assert any(t.name == "augment" for t in threading.enumerate())
    it.close()  # the trainer stops mid-epoch
    wait_until(lambda: not any(t.name == "augment" for t in threading.enumerate()), timeout=30, what="the helper thread")


def test_an_error_in_the_helper_thread_reaches_the_reader():
    def broken():
        yield 1
        raise ValueError("bad chunk")
    it = A._ahead(broken())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad chunk"):
        next(it)


def test_restroke_draws_one_stroke_width_scaled_as_the_page_scales_drawings():
    line = np.zeros((1, 28, 28), bool)
    line[0, 4:22, 14] = True  # a vertical centre line, 18 px
    lines = A.CentreLines(torch.from_numpy(squared_distance(line)), torch.tensor([18.0]))
    x = torch.full((1, 28, 28), -1.0)
    for r in (0.6, 1.0, 2.0, 3.0):
        cfg = replace(STILL, restroke=1.0, stroke_radius=(r, r))
        img, grow = A._restroked(x, lines, torch.tensor([0]), torch.Generator().manual_seed(0), cfg, 0.5, 0.5)
        ink = (img[0] * 0.5 + 0.5)[10]  # one row across the stroke
        assert ink.sum().item() == pytest.approx(2 * r, abs=0.05)  # the stroke is 2r wide
        assert ink.max().item() == pytest.approx(min(1.0, r + 0.5))
        assert grow.item() == pytest.approx(20 / (18 + 2 * r))  # line + stroke: 20 px, like a preprocessed drawing
    kept, grow = A._restroked(x, lines, torch.tensor([0]), torch.Generator().manual_seed(0), replace(STILL, restroke=1e-9),
                              0.5, 0.5)
    assert torch.equal(kept, x) and grow.item() == 1.0  # the share not chosen stays as it was


def test_restroked_digits_span_twenty_pixels(data_dir):
    """A redrawn digit is as large as the Draw page makes a drawing: its longer side about 20 px."""
    data = load_dataset("mnist", data_dir)
    cfg = replace(STILL, restroke=1.0)
    ink = torch.cat([b[0] for b in batches(data, cfg, max_batches=4)]).view(-1, 28, 28) * 0.5 + 0.5
    on = ink >= 8 / 255
    rows, cols = on.any(2), on.any(1)
    span = lambda m: 28 - m.int().argmax(1) - m.flip(1).int().argmax(1)
    longer = torch.maximum(span(rows), span(cols)).float()
    assert 19 <= longer.median() <= 22 and (longer <= 24).float().mean() > 0.95  # anti-aliasing adds a pixel or two


def test_centre_lines_and_distances(data_dir):
    from scipy import ndimage

    x = load_dataset("mnist", data_dir).test_x[:300].numpy()
    lines = centre_lines(x)
    assert not (lines & ~(x >= 128)).any()  # inside the ink
    assert lines.any((1, 2)).all()
    # about one pixel wide (Zhang-Suen leaves a 2x2 square at some junctions)
    assert np.median(lines.sum((1, 2)) / (x >= 128).sum((1, 2))) < 0.5
    blocks = lines[:, :-1, :-1] & lines[:, 1:, :-1] & lines[:, :-1, 1:] & lines[:, 1:, 1:]
    assert blocks.sum() < 0.05 * len(x)
    exact = np.stack([ndimage.distance_transform_edt(~line) for line in lines]) ** 2
    assert np.array_equal(squared_distance(lines), np.minimum(np.round(exact), 17).astype(np.uint8))


def test_loops_a_heavy_pen_filled_stay_open():
    ring = np.zeros((1, 28, 28), np.uint8)
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 14, xx - 14)
    ring[0][(r >= 3) & (r <= 7)] = 255
    ring[0][r < 3] = 150  # the hole, inked lightly by a heavy pen: ink at 128, a hole at 192
    assert holes(ring >= 128).sum() == 0 and holes(thin(ring >= 128)).sum() == 0  # thinned as it is: a dot
    assert holes(centre_lines(ring)).sum() > 0  # the centre line is a loop


# --- the run option ---------------------------------------------------------------------------
def test_robust_is_a_run_option_off_by_default():
    import argparse

    assert TrainConfig().robust is False  # the course recipe
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    assert config_from_args(p.parse_args(["--robust"])).robust is True
    assert config_from_args(p.parse_args([])).robust is False
    assert config_columns(TrainConfig(robust=True))["robust"] == "True"
    assert "robust" in TrainConfig(robust=True).label() and "robust" not in TrainConfig().label()
    old = TrainConfig().to_dict()
    del old["robust"]  # a run saved before the option existed trained without it
    assert TrainConfig.from_dict(old).robust is False


def test_trainer_augments_only_when_robust(data_dir, monkeypatch):
    calls = []
    real = A.augment
    monkeypatch.setattr(A, "augment", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for robust in (False, True):
        calls.clear()
        t = Trainer(TrainConfig(robust=robust, epochs=1, max_batches=20), data_dir=data_dir)
        t.start().join(120)
        assert t.snapshot.status == "finished", t.snapshot.error
        assert bool(calls) == robust


def test_short_robust_run_trains_and_is_persisted(store):
    from core.store.runs import RunStore

    cfg = TrainConfig(batch_norm=True, robust=True, epochs=2, max_batches=60, seed=1)
    run = store.start(cfg)
    store.trainer(run.id).join(240)
    snap = store.get(run.id).snapshot
    assert snap.status == "finished", snap.error
    assert snap.final.test_acc > 0.7 and snap.history[-1].train_loss < snap.history[0].train_loss
    assert json.loads((store.root / run.id / "config.json").read_text())["config"]["robust"] is True
    reloaded = RunStore(store.root, store.data_dir).get(run.id)
    assert reloaded.config == cfg and reloaded.config.robust


def test_robust_run_is_deterministic(data_dir):
    snaps = []
    for _ in range(2):
        t = Trainer(TrainConfig(robust=True, batch_norm=True, epochs=1, max_batches=30, seed=5, precision="fp32"),
                    data_dir=data_dir)
        t.start().join(120)
        snaps.append(t.snapshot)
    assert snaps[0].step_losses == snaps[1].step_losses
    assert snaps[0].final.test_acc == snaps[1].final.test_acc
