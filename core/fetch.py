"""`python -m core.fetch [mnist fashion-mnist]`: download what is missing; explain, don't crash, when offline."""
from __future__ import annotations

import sys

from core.engine.data import DataUnavailableError, load_dataset, resolve_data_dir


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["mnist"]
    status = 0
    for name in names:
        try:
            d = load_dataset(name)
            print(f"{name}: {len(d.train_x)} training and {len(d.test_x)} test images in {resolve_data_dir()}")
        except DataUnavailableError as e:
            print(f"warning: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
