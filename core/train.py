"""Command line: train one run, show progress, save it where the dashboard finds it.

    python -m core.train --epochs 2 --bn --max-batches 100 --json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from tqdm import tqdm

from core.engine.config import add_config_arguments, config_from_args
from core.engine.cpu import apply_thread_policy
from core.store.runs import RunStore
from core.engine.snapshot import EpochMetrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.splitlines()[0])
    add_config_arguments(p)
    p.add_argument("--data-dir", default=None, help="default: $DATA_DIR or ./data")
    p.add_argument("--runs-dir", default=None, help="default: $RUNS_DIR or ./runs")
    p.add_argument("--name", default=None)
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on the last line")
    return p.parse_args(argv)


def epoch_line(h: EpochMetrics, epochs: int) -> str:
    return (f"epoch {h.epoch}/{epochs}  train loss {h.train_loss:.4f}  train acc {h.train_acc:.2%}  "
            f"test loss {h.test_loss:.4f}  test acc {h.test_acc:.2%}  {h.seconds:.2f}s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = RunStore(args.runs_dir, args.data_dir)
    run = store.start(config, name=args.name)
    trainer = store.trainer(run.id)
    print(f"run {run.id}: {config.label()} · {apply_thread_policy().describe()}", file=sys.stderr)
    bar, shown_epochs = None, 0
    try:
        while trainer.alive:
            snap = trainer.snapshot
            if snap.epoch == shown_epochs and snap.epoch_step > 0:
                if bar is None:
                    bar = tqdm(total=snap.steps_per_epoch, desc=f"epoch {snap.epoch + 1}/{config.epochs}",
                               file=sys.stderr, leave=False)
                bar.set_postfix(loss=f"{snap.step_losses[-1][1]:.4f}", refresh=False)
                bar.update(snap.epoch_step - bar.n)
            while shown_epochs < len(snap.history):
                if bar is not None:
                    bar.close()
                    bar = None
                print(epoch_line(snap.history[shown_epochs], config.epochs), file=sys.stderr)
                shown_epochs += 1
            time.sleep(0.1)
    except KeyboardInterrupt:
        store.stop(run.id)
    trainer.join()
    if bar is not None:
        bar.close()
    snap = trainer.snapshot
    for h in snap.history[shown_epochs:]:
        print(epoch_line(h, config.epochs), file=sys.stderr)
    print(f"{snap.status}{': ' + snap.error if snap.error else ''}; saved to {store.root / run.id}", file=sys.stderr)
    if args.json:
        final = asdict(snap.final) if snap.final else {}
        print(json.dumps({"run_id": run.id, "status": snap.status, "error": snap.error, **final,
                          "elapsed": snap.elapsed, "device": snap.device}))
    return 0 if snap.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
