#!/usr/bin/env python3
"""Reproduces the original's pretraining experiment over seeds, with statistics.

    python scripts/compare_pretraining.py --budget reduced   # about 12 minutes on 2 CPU cores
    python scripts/compare_pretraining.py --budget full      # 5 seeds x 15 epochs (a GPU job)

Arms: classifier from scratch, from the grafted DAE encoder fine-tuned, and frozen,
each with and without augmentation. Writes reports/pretraining.md, its plots and
reports/pretraining.json; runs go to --workdir (not committed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from digits_jax import config_lib, experiments
from digits_jax.errors import DigitsJaxError

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(experiments.BUDGETS), default="reduced")
    parser.add_argument("--seeds", type=int, help="override the budget's number of seeds")
    parser.add_argument("--epochs", type=int, help="override the budget's classifier epochs")
    parser.add_argument("--dae-epochs", type=int, help="override the budget's DAE epochs")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "classifier.py")
    parser.add_argument("--dae-config", type=Path, default=ROOT / "configs" / "dae.py")
    parser.add_argument(
        "--photos",
        type=Path,
        default=ROOT.parent / "shared" / "photos",
        help="labelled real photos (labels.tsv); generated pages when absent",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "workdirs" / "pretraining")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    budget = dict(experiments.BUDGETS[args.budget])
    for key in ("seeds", "epochs", "dae_epochs"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    try:
        base = config_lib.get_config(args.config)
        dae = config_lib.get_config(args.dae_config)
        args.out.mkdir(parents=True, exist_ok=True)
        result = experiments.run_experiment(
            base, dae, args.workdir, photo_dir=args.photos, **budget
        )
    except DigitsJaxError as error:
        print(f"compare_pretraining: error: {error}", file=sys.stderr)
        return 2
    summary = experiments.summarise(result)
    experiments.plot(result, summary, args.out)
    command = "python scripts/compare_pretraining.py " + shlex.join(argv or sys.argv[1:])
    report = experiments.write_report(result, summary, args.out, command.strip())
    (args.out / "pretraining.json").write_text(json.dumps({**result, "summary": summary}, indent=1))
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
