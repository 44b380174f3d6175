"""`keras-cnn tune`: keras-tuner search over a family's architectures, local or distributed."""

from __future__ import annotations

import json

from keras_cnn.commands._args import IMAGE_SIZE_FORMS, check_image_channels, image_size
from keras_cnn.commands._errors import set_flag_names
from keras_cnn.commands._ray import add_engine_arguments, engine_function

_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_count(arg, text):
    """ "5M", "2.5G", "300k", "1e6" or "1000000" -> a positive int."""
    if text is None:
        return None
    raw = str(text).strip().replace("_", "").replace(",", "")
    scale = 1.0
    if raw and raw[-1].lower() in _SUFFIXES:
        scale, raw = _SUFFIXES[raw[-1].lower()], raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"`{arg}` must be a positive number like 5e6, 5M or 300k. Received: {arg}={text!r}")
    return int(round(value))


def _parse_value(text):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_space(items):
    """``["depths=18,34", "five_by_five=plain", "modules_per_stage=1;1,2;1"]`` -> hyper-model
    keyword arguments. Values are comma-separated choices; ";" separates the per-stage lists
    of ``modules_per_stage``; ``optimizer_params.adam_beta_1=0.9`` sets one entry of a dict
    argument."""
    space = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not value.strip():
            raise ValueError(f"`--space` must look like NAME=V1,V2 (e.g. depths=18,34). Received: --space={item!r}")
        if ";" in value:
            parsed = tuple(tuple(_parse_value(v) for v in part.split(",") if v.strip()) for part in value.split(";"))
        else:
            parsed = tuple(_parse_value(v) for v in value.split(",") if v.strip())
        outer, dot, inner = key.partition(".")
        if dot:  # e.g. optimizer_params.sgd_momentum=0.9
            if not inner or (outer in space and not isinstance(space[outer], dict)):
                raise ValueError(
                    f"`--space` nested names look like optimizer_params.NAME=V. Received: --space={item!r}"
                )
            space.setdefault(outer, {})[inner] = parsed
        else:
            space[key] = parsed
    return space


def register(subparsers):
    parser = subparsers.add_parser(
        "tune",
        help="keras-tuner search over a family's architectures (random/hyperband/bayesian/grid)",
        description=(
            "Search the architecture choices of a family with keras-tuner: Inception (module "
            "width, modules per stage, 5x5 as plain / two 3x3 / 1x5+5x1, 1x1 reduction ratio, "
            "auxiliary heads and their loss weight, label smoothing), ResNet (depth 18/34/50, "
            "block kind, width, weight decay) or VGG (blocks, convs per block, widths, dropout), "
            "plus optimiser and learning rate. Candidates over --max-macs/--max-params are "
            "rejected before training. Prints a line per trial and a results table; writes "
            "results.csv, results.txt and accuracy_vs_macs.png into DIR/PROJECT; evaluates, saves "
            "and exports the best model. Rerunning the same command resumes an interrupted search, or "
            "reports a finished one; another search in the same directory is refused. "
            "--distributed chief|worker runs keras-tuner's chief/worker protocol (the chief serves "
            "the oracle at --oracle-ip:--oracle-port; workers share one search)."
        ),
    )
    parser.add_argument("family", metavar="FAMILY", help="inception (or googlenet), resnet or vgg")
    parser.add_argument("--data", default="digits", help="digits, tfds:NAME or an image folder (default digits)")
    parser.add_argument("--tuner", default="random", help="random, hyperband, bayesian or grid (default random)")
    parser.add_argument("--max-trials", type=int, default=10, help="number of trials (default 10)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (Hyperband: at most) (default 2)")
    parser.add_argument("--dir", default="runs/tune", help="root of the search directories (default runs/tune)")
    parser.add_argument("--project-name", default=None, help="search directory name (default FAMILY_TUNER)")
    parser.add_argument("--max-macs", default=None, help="MAC budget per example, e.g. 5M (default: none)")
    parser.add_argument("--max-params", default=None, help="parameter budget, e.g. 100k (default: none)")
    parser.add_argument("--max-rejected", type=int, default=None, metavar="N",
                        help="stop after N candidates rejected over the budget (they do not count as trials; "
                             "default 50 per trial)")
    parser.add_argument("--image-size", default=None, type=image_size, metavar="SIZE",
                        help=f"input size, {IMAGE_SIZE_FORMS}; C must match --channels "
                             "(default 32 for digits, else the source's)")
    parser.add_argument("--channels", type=int, default=3, help="image channels, 1 or 3 (default 3)")
    parser.add_argument("--max-examples", type=int, default=None, help="use at most N examples per split")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--space", action="append", metavar="NAME=V1,V2",
                        help="narrow/widen a search-space choice of the hyper-model, e.g. depths=18,34, "
                             "width_multipliers=0.25,0.5, modules_per_stage='1;2,5;1' or "
                             "optimizer_params.sgd_momentum=0.9 (repeatable)")
    parser.add_argument("--no-export", action="store_true", help="do not export the best model")
    parser.add_argument("--export-dir", default="saved_models", help="export root (default saved_models)")
    parser.add_argument("--export-name", default=None, help="served model name (default FAMILY_tuned)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start the search over, removing the directory's previous search (default: resume the "
                        "same search, report a finished one, refuse another one)")
    parser.add_argument("--overwrite", action="store_true", help="the same as --no-resume")
    parser.add_argument("--floor", type=float, default=None, metavar="ACC",
                        help="validation accuracy the best trial must beat to be exported "
                        "(default: the majority-class rate of the validation split)")
    parser.add_argument("--export-below-floor", action="store_true",
                        help="export the best model even if it does not beat --floor")
    parser.add_argument("--distributed", choices=("chief", "worker"), default=None,
                        help="role in a distributed search (default: local, or keras-tuner's environment)")
    parser.add_argument("--oracle-ip", default=None,
                        help="chief's address (default $KERASTUNER_ORACLE_IP or 127.0.0.1)")
    parser.add_argument("--oracle-port", type=int, default=None,
                        help="chief's port (default $KERASTUNER_ORACLE_PORT or 8000)")
    parser.add_argument("--tuner-id", default=None,
                        help="this process's tuner id (default $KERASTUNER_TUNER_ID, 'chief', or worker-HOST-PID)")
    parser.add_argument("--verbose", type=int, choices=(0, 1), default=0,
                        help="1: keras-tuner's own per-trial display as well (default 0)")
    parser.add_argument("--fit-verbose", type=int, choices=(0, 1, 2), default=0,
                        help="model.fit verbosity within trials (default 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_engine_arguments(parser)  # --engine ray (keras_cnn/commands/_ray.py)
    parser.set_defaults(func=run)
    set_flag_names(parser, {"directory": "--dir", "search_space": "--space", "export": "--no-export",
                            "family": "FAMILY", "source": "--data", "name": "--export-name",
                            "resume": "--no-resume"})
    return parser


def _short(hps, limit=90):
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in hps.items()
                     if not k.startswith("tuner/"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_progress(record):
    from keras_cnn.tuning.report import format_count

    head = f"[trial {record.trial_id} | {record.tuner_id}]"
    if record.status == "RUNNING":
        print(f"{head} start: {_short(record.hyperparameters)}", flush=True)
        return
    took = "" if record.seconds is None else f" ({record.seconds:.1f} s)"
    cost = f"params={format_count(record.params)} MACs={format_count(record.macs)}"
    if record.status == "COMPLETED":
        print(f"{head} COMPLETED val_accuracy={record.val_accuracy:.4f} {cost}{took}", flush=True)
    else:
        print(f"{head} {record.status} {cost}{took}: {record.message or ''}".rstrip(": "), flush=True)


def run(args):
    from keras_cnn.tuning import TuneConfig, tune
    from keras_cnn.tuning.ray_search import tune_on_ray

    tune = engine_function(args, tune, tune_on_ray)  # --engine ray: chief and workers as Ray actors

    config = TuneConfig(
        family=args.family, data=args.data, tuner=args.tuner, max_trials=args.max_trials, epochs=args.epochs,
        directory=args.dir, project_name=args.project_name, max_macs=parse_count("--max-macs", args.max_macs),
        max_params=parse_count("--max-params", args.max_params), seed=args.seed, export=not args.no_export,
        export_dir=args.export_dir, export_name=args.export_name,
        image_size=check_image_channels(args.image_size, args.channels, "the search (--channels)"),
        channels=args.channels, max_examples=args.max_examples, batch_size=args.batch_size,
        resume=not (args.no_resume or args.overwrite), distributed=args.distributed, oracle_ip=args.oracle_ip,
        oracle_port=args.oracle_port, tuner_id=args.tuner_id, search_space=parse_space(args.space) or None,
        verbose=args.verbose, fit_verbose=args.fit_verbose, progress=None if args.json else _print_progress,
        floor=args.floor, export_below_floor=args.export_below_floor,
        max_rejected=args.max_rejected,
    )
    result = tune(config)
    if result.role == "worker":
        done = [r for r in result.trials if r.status != "RUNNING"]
        if args.json:
            print(json.dumps({"role": "worker", "tuner_id": result.tuner_id,
                              "trials": [r.to_dict() for r in done]}, indent=2))
        else:
            print(f"Worker {result.tuner_id}: ran {len(done)} trial(s); the chief writes the results.")
        return 0
    if args.json:
        print(json.dumps({
            "role": result.role,
            "project_dir": str(result.project_dir),
            "trials": [r.to_dict() for r in result.trials],
            "best": result.best.to_dict() if result.best else None,
            "test_accuracy": result.metrics.get("accuracy"),
            "export_path": None if result.export_path is None else str(result.export_path),
            "floor": result.floor,
            "below_floor": result.below_floor,
            "search": result.summary.to_dict() if result.summary else None,
            "report": {k: str(v) for k, v in result.report.items()},
        }, indent=2))
        return 0
    print()
    if result.status == "finished":
        print("stored result of the finished search (--no-resume searches again):")
    if result.summary is not None:
        print(f"Results in {result.project_dir}: {result.summary.describe()}")
    else:
        print(f"Results ({len(result.trials)} trials) in {result.project_dir}:")
    print(result.table)
    print()
    for key, label in (("csv", "CSV"), ("table", "Table"), ("plot", "Accuracy vs MACs")):
        if key in result.report:
            print(f"{label}: {result.report[key]}")
    if result.best is None:
        print("No trial completed: nothing to export.")
        return 1
    print(f"Best trial {result.best.trial_id}: val_accuracy={result.best.val_accuracy:.4f}, "
          f"{result.metrics.get('split', 'test')} accuracy={result.metrics.get('accuracy', float('nan')):.4f}")
    print(f"  {_short(result.best.hyperparameters, limit=400)}")
    print(f"Best model: {result.project_dir / 'best_model.keras'}")
    if result.below_floor:
        print(f"WARNING: the best trial's validation accuracy does not beat the floor {result.floor:.4f} "
              f"({'--floor' if args.floor is not None else 'the majority-class rate'}): "
              + ("exported anyway (--export-below-floor)." if result.export_path is not None
                 else "not exported (--export-below-floor exports it)." if not args.no_export else "not exported."))
    if result.export_path is not None:
        print(f"Exported to {result.export_path}")
    return 0
