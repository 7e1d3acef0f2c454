"""Command line: train one run, show progress, save it where the dashboard finds it.

    python -m core.train --epochs 2 --bn --max-batches 100 --json

Exit status: 0 finished; 1 failed or diverged; 2 bad settings or an unusable runs folder; 130 (143) stopped by
Ctrl-C (SIGTERM). The first Ctrl-C stops the run after the current batch and waits for it to save; a second one
only says so; a third quits at once (the files stay loadable: every write is atomic). Once the run is saved,
signals are ignored while the process exits.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict

from tqdm import tqdm

from core.engine.config import add_config_arguments, config_from_args
from core.engine.cpu import apply_thread_policy
from core.store.runs import RunsFolderError, RunStore
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
    try:
        store = RunStore(args.runs_dir, args.data_dir)
        run = store.start(config, name=args.name)
    except (RunsFolderError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    trainer = store.trainer(run.id)
    print(f"run {run.id}: {config.label()} · {apply_thread_policy().describe()}", file=sys.stderr)
    stop = _StopOnSignals(lambda: store.stop(run.id))
    bar, shown_epochs = None, 0
    while trainer.alive:  # the signal handlers only set flags: no KeyboardInterrupt can cut this loop short
        snap = trainer.snapshot
        if snap.epoch == shown_epochs and snap.epoch_step > 0 and snap.step_losses:
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
        trainer.join(0.1)
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
    if stop.signum is not None:
        return 128 + stop.signum
    return 0 if snap.status == "finished" else 1


class _StopOnSignals:
    """Ctrl-C (and SIGTERM) stop the run cleanly: the first asks the run to stop after its current batch, a
    second says that it is stopping, a third quits at once."""

    def __init__(self, stop) -> None:
        self.stop, self.count, self.signum = stop, 0, None
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count == 1:
            self.stop()
            print("\nstopping after the current batch; the run keeps its last completed epoch "
                  "(Ctrl-C twice more quits at once)", file=sys.stderr)
        elif self.count == 2:
            print("still stopping: waiting for the current batch to end", file=sys.stderr)
        else:
            os._exit(128 + signum)  # every file is written atomically: what is on disk loads


if __name__ == "__main__":
    status = main()
    # The run has ended and is saved. As Python shuts down it puts its own signal handlers back to the default,
    # and a Ctrl-C then would kill the process (exit status -2) instead of ending it with this status: from here
    # on, signals are ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)
