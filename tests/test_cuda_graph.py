"""The CUDA-graph training step (core/engine/cuda_graph.py). Its plumbing (static buffers, outputs not
aliased to them, short batches eager) is checked on any machine; the capture itself only where CUDA is."""
import json

import pytest
import torch
import torch.nn.functional as F

from core.engine.config import TrainConfig
from core.engine.models import build_model
from core.engine.optimizers import build_optimizer
from core.engine.cuda_graph import GraphedStep

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


def batches(device, n=50, short_at=(20,)):
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        b = 32 if i in short_at else 64  # an epoch's last, short batch
        out.append((torch.randn(b, 784, generator=g).to(device), torch.randint(0, 10, (b,), generator=g).to(device)))
    return out


def make_step(device, bn=True):
    cfg = TrainConfig(batch_norm=bn, seed=3)
    model = build_model(cfg).to(device).train()
    opt = build_optimizer(model.parameters(), cfg)

    def step(x, y):
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, out
    return step, model


def eager_losses(device, bn=True):
    step, model = make_step(device, bn)
    return [step(x, y)[0].item() for x, y in batches(device)], model


def test_plumbing_matches_eager_steps_on_any_device():
    """Batches copied into static buffers, a short batch run eagerly in between, and every returned loss kept
    as its own value (not a view of a buffer the next step overwrites)."""
    expected, eager_model = eager_losses("cpu")
    step, model = make_step("cpu")
    graphed = GraphedStep(step, warmup=3, capture=False)
    losses = [graphed(x, y)[0] for x, y in batches("cpu")]
    assert [v.item() for v in losses] == expected
    assert graphed.replays == 50 - 3 - 1 and graphed.path == "CUDA graph"
    for a, b in zip(model.state_dict().values(), eager_model.state_dict().values()):
        assert torch.equal(a, b)


@cuda
@pytest.mark.parametrize("bn", [False, True])
def test_graph_replay_matches_eager_on_cuda(bn):
    torch.backends.cuda.matmul.allow_tf32 = False
    expected, _ = eager_losses("cuda", bn)
    step, _ = make_step("cuda", bn)
    graphed = GraphedStep(step)
    losses = [graphed(x, y)[0].item() for x, y in batches("cuda")]
    assert graphed.path == "CUDA graph" and graphed.replays == 46
    assert losses == pytest.approx(expected, rel=1e-5)


@cuda
def test_a_step_that_cannot_be_captured_trains_eagerly_and_says_so():
    step, _ = make_step("cuda")

    def syncing(x, y):
        loss, out = step(x, y)
        loss.item()  # a host sync: not allowed while capturing
        return loss, out
    graphed = GraphedStep(syncing)
    losses = [graphed(x, y)[0].item() for x, y in batches("cuda", n=8)]
    assert graphed.path.startswith("eager (CUDA graph capture failed") and len(losses) == 8


@cuda
@pytest.mark.parametrize("bn", [False, True])
def test_trainer_graph_and_eager_paths_agree(bn, data_dir):
    """The same run through the graph and the eager path: step losses within 1e-5 over the first 50 steps,
    and each run says which path it took."""
    from core.engine.trainer import Trainer

    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = TrainConfig(batch_norm=bn, precision="fp32", epochs=1, max_batches=60, seed=1)
    runs = {}
    for graph in (False, True):
        t = Trainer(cfg, data_dir=data_dir, device=torch.device("cuda"), log_every=1, cuda_graph=graph).start()
        t.join(300)
        assert t.snapshot.status == "finished", t.snapshot.error
        runs[graph] = t.snapshot
    assert runs[False].engine == "eager" and runs[True].engine == "CUDA graph"
    eager, graphed = ([loss for _, loss in runs[g].step_losses[:50]] for g in (False, True))
    assert graphed == pytest.approx(eager, rel=1e-5)
    assert runs[True].history[0].test_acc == pytest.approx(runs[False].history[0].test_acc, abs=0.002)


@cuda
def test_graph_path_is_deterministic_and_recorded(store):
    cfg = TrainConfig(batch_norm=True, precision="fp32", epochs=1, max_batches=40, seed=2)
    snaps = []
    for _ in range(2):
        run = store.start(cfg, allow_duplicate=True)
        store.trainer(run.id).join(300)
        snaps.append(store.get(run.id).snapshot)
        status = json.loads((store.root / run.id / "status.json").read_text())
        assert status["engine"] == "CUDA graph" and status["device"].startswith("cuda")
    assert snaps[0].step_losses == snaps[1].step_losses
