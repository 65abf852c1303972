"""The ``digits-jax`` command line: parses, dispatches, and turns user errors into one line.

Heavy modules (JAX, TFDS, OpenCV) are imported inside the commands that need them,
so ``--help`` and input errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from digits_jax.errors import DigitsJaxError

DEFAULT_WORKDIRS = {"dae": Path("workdirs/dae"), "classifier": Path("workdirs/classifier")}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Exit codes: 0 success (an empty page too), 1 internal error, 2 usage or model error,
# 3 some input images could not be read (the others were), 141 stdout's reader went away.
EXIT_BAD_IMAGE = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by it


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
    group = parser.add_argument_group("multi-host data parallelism (jax.distributed)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="env DIGITS_JAX_COORDINATOR")
    group.add_argument("--num-processes", type=int, help="env DIGITS_JAX_NUM_PROCESSES")
    group.add_argument("--process-id", type=int, help="env DIGITS_JAX_PROCESS_ID")


def _add_tta_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta",
        type=int,
        default=1,
        metavar="N",
        help="test-time augmentation: average N fixed views (1: none; at most 9)",
    )


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="a classifier workdir; repeat for an ensemble "
        f"(default: {DEFAULT_WORKDIRS['classifier']}, which make demo trains)",
    )
    parser.add_argument(
        "--backend",
        default="numpy",  # checked by inference.load_classifier, which knows the backends
        help="what applies the network: numpy (default; no JAX start-up, fastest for a few "
        "photos) or jax (the compiled Flax model: large batches, accelerators); TTA views "
        "always run on JAX",
    )
    _add_tta_flag(parser)


def _models(args: argparse.Namespace):
    """The ``--model`` workdirs (default: the one make demo trains) as an ensemble."""
    from digits_jax import inference

    return inference.load_ensemble(args.model or [DEFAULT_WORKDIRS["classifier"]], args.backend)


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

    p = sub.add_parser("evaluate", help="test accuracy of a trained classifier (or an ensemble)")
    p.add_argument(
        "--workdir",
        type=Path,
        action="append",
        help="a classifier workdir; repeat for an ensemble (default: workdirs/classifier)",
    )
    _add_tta_flag(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_data_flags(p)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser(
        "bench",
        help="training and inference throughput (vs PyTorch if installed); bench --help",
        add_help=False,
    )
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("read", help="read the handwritten digits in photos, line by line")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO|DIR")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="draw boxes and digits (file, or folder for several photos or a folder's)",
    )
    p.add_argument("--crops", type=Path, metavar="DIR", help="save the 28x28 crops as PNG")
    p.add_argument("--min-confidence", type=float, default=0.0, metavar="P", help="print ? below P")
    p.set_defaults(run=cmd_read)

    p = sub.add_parser("extract", help="find the digits in a photo, without a model")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO|DIR")
    p.add_argument("--crops", type=Path, metavar="DIR", help="save the 28x28 crops as PNG")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=cmd_extract)

    p = sub.add_parser("classify", help="classify single-digit images (crops), one digit each")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE|DIR")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=cmd_classify)
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
    from digits_jax import config_lib, parallel

    distributed = parallel.initialize_distributed(
        args.coordinator, args.num_processes, args.process_id
    )
    path = args.config or config_lib.default_config_path(task)
    config = config_lib.get_config(path, args.config_overrides)
    if config.data_parallel and not distributed:  # a distributed run: one CPU device each
        parallel.split_cpu(parallel.cpu_device_count(config.cpu_devices, config.batch_size))
    return config


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

    workdirs = args.workdir or [DEFAULT_WORKDIRS["classifier"]]
    result = inference.evaluate_workdirs(workdirs, split=args.split, tta=args.tta)
    if args.json:
        print(json.dumps(result))
    else:
        acc = result[f"{args.split}_accuracy"]
        what = f"{len(workdirs)} models" if len(workdirs) > 1 else f"epoch {result['epochs'][0]}"
        loss, ece = result[f"{args.split}_loss"], result[f"{args.split}_ece"]
        print(
            f"{args.split} accuracy: {100 * acc:.2f}% on {result['num_examples']} examples "
            f"(loss {loss:.4f}, ECE {100 * ece:.2f}%, {what}, tta {args.tta})"
        )
    return 0


def _report_bad(path: str, message: str) -> None:
    print(
        f"digits-jax: error: {message}"
        if path in message
        else f"digits-jax: error: {path}: {message}",
        file=sys.stderr,
    )


def _progress(items: list, unit: str) -> Iterable:
    """A progress bar on stderr over several inputs (none for one, or when stderr is not a
    terminal)."""
    if len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, unit=unit, disable=None, file=sys.stderr, leave=False)


def _annotation_path(out: Path, photo: str, several: bool) -> Path:
    return out / f"{Path(photo).stem}_read.jpg" if several else out


def cmd_bench(argv: list[str]) -> int:
    """Its flags are parsed by the bench module, so other commands never import it."""
    from digits_jax import bench

    parser = argparse.ArgumentParser(
        prog="digits-jax bench", description=(bench.__doc__ or "").splitlines()[0]
    )
    bench.add_arguments(parser)
    return bench.main(parser.parse_args(argv))


def cmd_read(args: argparse.Namespace) -> int:
    if not 0.0 <= args.min_confidence <= 1.0:
        raise DigitsJaxError("--min-confidence must be between 0 and 1")
    photos = _image_files(args.photos)
    from concurrent.futures import ThreadPoolExecutor

    from digits_jax import annotate, reading

    # Extraction needs no model: it runs in a thread while the model loads (OpenCV and
    # NumPy release the GIL), which hides JAX's start-up on the jax backend. One task per
    # photo, so a model that fails to load cancels the photos not yet begun.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        futures = [pool.submit(reading.extract_or_error, photo) for photo in photos]
        model = _models(args)
        extracted = [future.result() for future in _progress(futures, "photo")]
        results, pages = reading.collect(extracted)
    finally:
        pool.shutdown(cancel_futures=True)
    reading.classify_pages(results, pages, model, args.min_confidence, args.tta)
    by_path = {page.path: page for page in pages}
    several = len(photos) > 1 or any(p.is_dir() for p in args.photos)
    for result in results:
        if result.error:
            _report_bad(result.path, result.error)
            continue
        page = by_path[result.path]
        if args.crops:
            annotate.save_crops(Path(result.path).stem, page.lines, args.crops)
        if args.annotate:
            digits = [d for line in result.lines for d in line.digits]
            drawn = annotate.draw_boxes(
                page.image,
                page.scale,
                [d.box for d in digits],
                [str(d.digit) for d in digits],
                [d.confidence for d in digits],
            )
            annotate.write_image(_annotation_path(args.annotate, result.path, several), drawn)
    if args.json:
        print(json.dumps({"images": [r.to_json() for r in results]}))
    else:
        for result in results:
            if result.error:
                continue
            if several:
                print(f"== {result.path}")
            for line in result.text_lines():
                print(line)
            if not result.lines:
                print(f"digits-jax: no digits found in {result.path}", file=sys.stderr)
    return EXIT_BAD_IMAGE if any(r.error for r in results) else 0


def cmd_extract(args: argparse.Namespace) -> int:
    from digits_jax import annotate, reading

    documents, failed = [], False
    for photo in _image_files(args.photos):
        result, page = reading.extract_or_error(photo)
        if page is None:
            _report_bad(result.path, result.error)
            failed = True
            continue
        saved = annotate.save_crops(photo.stem, page.lines, args.crops) if args.crops else []
        names = iter(str(p) for p in saved)
        w, h = page.size
        lines = [
            [{"box": list(d.box), **({"crop": next(names)} if saved else {})} for d in line]
            for line in page.lines
        ]
        documents.append({"path": str(photo), "width": w, "height": h, "lines": lines})
        if not args.json:
            counts = " ".join(str(len(line)) for line in page.lines) or "none"
            print(
                f"{photo}: {sum(map(len, page.lines))} digits in {len(page.lines)} lines ({counts})"
            )
    if args.json:
        print(json.dumps({"images": documents}))
    return EXIT_BAD_IMAGE if failed else 0


def _image_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DigitsJaxError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {item}")
            files.extend(found)
        else:
            files.append(item)
    return files


def cmd_classify(args: argparse.Namespace) -> int:
    from digits_jax import images, mnist_format, reading

    model = _models(args)
    paths, crops, bad = [], [], []
    for path in _progress(_image_files(args.inputs), "image"):
        try:
            crops.append(mnist_format.normalise_digit_image(images.load_image(path)))
            paths.append(path)
        except DigitsJaxError as error:
            bad.append((str(path), str(error)))
    for path, message in bad:  # after the progress bar is gone
        _report_bad(path, message)
    probs = reading.probabilities(model, crops, args.tta)
    rows = [
        {"path": str(p), "digit": int(pr.argmax()), "confidence": round(float(pr.max()), 4)}
        for p, pr in zip(paths, probs, strict=True)
    ]
    if args.json:
        print(json.dumps({"images": rows}))
    else:
        for row in rows:
            print(f"{row['path']}: {row['digit']} ({100 * row['confidence']:.1f}%)")
    return EXIT_BAD_IMAGE if bad else 0


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
        if argv[:1] == ["bench"]:
            return cmd_bench(argv[1:])
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
    except BrokenPipeError:
        # Whoever read stdout went away (``digits-jax read DIR | head``): stop quietly
        # with a killed-by-SIGPIPE status, and let the exit's flush go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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


# Commands that only read files and print or write finished outputs: nothing is left
# to flush when main() returns, so they skip the interpreter's teardown of JAX and
# XLA (about 0.25 s, a sixth of a one-photo read).
_FAST_EXIT = ("read", "classify", "extract")


def entry() -> None:
    """The ``digits-jax`` console script: main(), then the exit."""
    code = main()
    if sys.argv[1:2] and sys.argv[1] in _FAST_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a reader that went away: ``digits-jax read ... | head``
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
