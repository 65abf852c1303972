"""The ``digits-jax`` command line: parses, dispatches, and turns user errors into one line.

Heavy modules (JAX, TFDS, OpenCV) are imported inside the commands that need them,
so ``--help`` and input errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from digits_jax.errors import DigitsJaxError

DEFAULT_WORKDIRS = {"dae": Path("workdirs/dae"), "classifier": Path("workdirs/classifier")}


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="where the TFDS-built MNIST lives (env DIGITS_JAX_DATA_DIR)"
    )
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        help="a folder holding the four MNIST IDX files, raw or .gz (env DIGITS_JAX_MNIST_DIR)",
    )


def _add_config_flags(parser: argparse.ArgumentParser, task: str) -> None:
    from_file = "configs/dae.py" if task == "dae" else "configs/classifier.py"
    parser.add_argument(
        "--config", type=Path, help=f"a get_config() file (default: {from_file} of this checkout)"
    )
    parser.add_argument("--workdir", type=Path, required=True, help="run directory (resumable)")
    parser.epilog = "Any config value can be overridden: --config.num_epochs=3"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digits-jax",
        description="Train a handwritten-digit recognizer in JAX/Flax and read digits.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="get, verify and build MNIST (TFDS array_record)")
    _add_data_flags(p)
    p.add_argument("--no-download", action="store_true", help="skip the official download")
    p.set_defaults(run=cmd_data)

    p = sub.add_parser("pretrain", help="pretrain the denoising autoencoder")
    _add_config_flags(p, "dae")
    _add_data_flags(p)
    p.set_defaults(run=cmd_pretrain)

    p = sub.add_parser("train", help="train the classifier (optionally from a DAE's encoder)")
    _add_config_flags(p, "classifier")
    _add_data_flags(p)
    p.add_argument("--init-from", type=Path, help="a DAE workdir whose encoder is grafted in")
    p.add_argument("--freeze-encoder", action="store_true", help="keep the grafted encoder fixed")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a trained classifier")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIRS["classifier"])
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_data_flags(p)
    p.set_defaults(run=cmd_evaluate)
    return parser


def _apply_data_flags(args: argparse.Namespace) -> None:
    """Data locations travel as environment variables, which the data layer reads."""
    if getattr(args, "data_dir", None):
        os.environ["DIGITS_JAX_DATA_DIR"] = str(args.data_dir)
    if getattr(args, "mnist_dir", None):
        if not args.mnist_dir.is_dir():
            raise DigitsJaxError(f"--mnist-dir: no such folder: {args.mnist_dir}")
        os.environ["DIGITS_JAX_MNIST_DIR"] = str(args.mnist_dir)


def _load_config(args: argparse.Namespace, task: str):
    from digits_jax import config_lib

    path = args.config or config_lib.default_config_path(task)
    return config_lib.get_config(path, args.config_overrides)


def cmd_data(args: argparse.Namespace) -> int:
    from digits_jax import data

    report = data.prepare_mnist(allow_download=not args.no_download)
    print(f"MNIST source: {report.source}")
    print(f"built in: {report.data_dir}")
    for name, digest in sorted(report.checksums.items()):
        print(f"sha256 {digest}  {name}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    config = _load_config(args, "dae")
    from digits_jax import pretrain

    last = pretrain.train_and_evaluate(config, args.workdir)
    print(f"DAE test reconstruction MSE: {last.get('test_loss', float('nan')):.5f}")
    print(f"figures: {args.workdir / 'reconstructions.png'}, {args.workdir / 'curves.png'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    config = _load_config(args, "classifier")
    if args.freeze_encoder:
        config.freeze_encoder = True
    from digits_jax import train

    last = train.train_and_evaluate(config, args.workdir, init_from=args.init_from)
    if "test_accuracy" in last:
        print(f"test accuracy: {100 * last['test_accuracy']:.2f}%")
    print(f"figures: {args.workdir / 'curves.png'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from digits_jax import inference

    result = inference.evaluate_workdir(args.workdir, split=args.split)
    if args.json:
        print(json.dumps(result))
    else:
        acc = result[f"{args.split}_accuracy"]
        print(
            f"{args.split} accuracy: {100 * acc:.2f}% on {result['num_examples']} examples "
            f"(loss {result[f'{args.split}_loss']:.4f}, epoch {result['epoch']})"
        )
    return 0


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) from the other arguments."""
    rest, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--config."):
            item = arg[len("--config.") :]
            if "=" not in item:
                value = next(it, None)
                if value is None:
                    raise DigitsJaxError(f"{arg} needs a value")
                item = f"{item}={value}"
            overrides.append(item)
        else:
            rest.append(arg)
    return rest, overrides


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, overrides = _split_overrides(argv)
        args = build_parser().parse_args(rest)
        if overrides and not hasattr(args, "config"):
            raise DigitsJaxError(f"'{args.command}' takes no --config overrides")
        args.config_overrides = overrides
        _apply_data_flags(args)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except DigitsJaxError as error:
        print(f"digits-jax: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("digits-jax: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: one line unless asked for more
        if os.environ.get("DIGITS_JAX_DEBUG"):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"digits-jax: internal error: {type(error).__name__}: {first} "
            "(set DIGITS_JAX_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
