"""`keras-cnn transfer`: fine-tune a pretrained network in one of the three regimes."""

from __future__ import annotations

import os

from keras_cnn.commands._args import IMAGE_SIZE_FORMS, check_image_channels, image_size
from keras_cnn.commands._errors import set_flag_names


def register(subparsers):
    parser = subparsers.add_parser(
        "transfer",
        help="transfer a pretrained network to a dataset (regimes small / medium / large)",
        description=(
            "Transfer learning as in the lectures: 'small' freezes the whole base and trains a new "
            "softmax; 'medium' freezes up to --freeze-until (or all but the last --trainable-blocks "
            "units) and fine-tunes the rest; 'large' trains everything from the pretrained "
            "initialisation. Two phases: the head first (--epochs at --lr), then the regime's "
            "layers with it (--fine-tune-epochs at the lower --fine-tune-lr)."
        ),
    )
    parser.add_argument("base", metavar="BASE", help="registry name (keras-cnn list) or a .keras model file")
    parser.add_argument("--weights", default=None,
                        help="for a registry name: 'imagenet' (the default weights of the layout built), a weights "
                        "name (keras-cnn list --pretrained, e.g. timm:resnet50.tv_in1k: the builder arguments it "
                        "needs are added, with a notice) or a weights file")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="builder argument for a registry name, e.g. --model-arg keras_layout=false for a timm "
                        "ResNet-50 safetensors file (repeatable)")
    parser.add_argument("--data", default="digits", help="'digits', 'tfds:NAME' or an image folder (default digits)")
    parser.add_argument("--regime", choices=("small", "medium", "large"), default="small",
                        help="small: new head only; medium: also the last layers; large: everything")
    parser.add_argument("--freeze-until", default=None,
                        help="medium: freeze through this stage or layer (e.g. conv4, conv4_block6_out)")
    parser.add_argument("--trainable-blocks", type=int, default=None,
                        help="medium: train the last N weighted units of the base")
    parser.add_argument("--epochs", type=int, default=5, help="head epochs, phase 1 (default 5)")
    parser.add_argument("--fine-tune-epochs", type=int, default=5,
                        help="phase 2 epochs for medium / large (default 5)")
    parser.add_argument("--lr", type=float, default=1e-3, help="head learning rate (default 1e-3)")
    parser.add_argument("--fine-tune-lr", type=float, default=None, help="phase 2 learning rate (default lr / 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout before the new softmax (default 0.2)")
    parser.add_argument("--image-size", default=None, type=image_size, metavar="SIZE",
                        help=f"input size for a registry base, {IMAGE_SIZE_FORMS} (default: the network's)")
    parser.add_argument("--precompute", action="store_true", help="phase 1 on features computed once")
    parser.add_argument("--max-examples", type=int, default=None, help="read at most N examples per split")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default=None, help="output directory (default runs/transfer_<base>_<regime>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"model_or_base": "BASE", "head_epochs": "--epochs", "head_lr": "--lr",
                            "source": "--data", "input_shape": "--image-size",
                            "model_kwargs": "--model-arg"})
    return parser


def _input_shape(args):
    """-> (base, input_shape or None, image_size, channels)."""

    from keras_cnn.models.registry import get_model_entry, list_models
    from keras_cnn.training.evaluate import parse_image_size

    size = parse_image_size(args.image_size[:2]) if args.image_size else None
    if args.base in list_models():
        entry = get_model_entry(args.base)
        check_image_channels(args.image_size, entry.channels, args.base)
        size = size or (entry.default_size, entry.default_size)
        return args.base, (*size, entry.channels), size, entry.channels
    if not os.path.isfile(args.base):
        raise ValueError(
            f"`BASE` must be a registry name or a .keras model file. Received: BASE={args.base!r}. "
            f"Known names: {list_models()}"
        )
    if args.weights is not None:
        raise ValueError(f"`--weights` applies to a registry name; {args.base!r} brings its own. "
                         f"Received: --weights={args.weights!r}")
    from keras_cnn.transfer import feature_model

    from keras_cnn._io import load_keras_model

    model = feature_model(load_keras_model(args.base, arg="BASE"))  # its softmax removed
    height, width, channels = model.input_shape[1:]
    check_image_channels(args.image_size, channels, repr(args.base))
    if height is None or width is None:
        if size is None:
            raise ValueError(f"{args.base!r} takes any input size; pass --image-size. Received: --image-size=None")
    elif size is not None and tuple(size) != (height, width):
        raise ValueError(
            f"{args.base!r} takes {height}x{width} inputs. Received: --image-size={','.join(map(str, args.image_size))}"
        )
    return model, None, size or (height, width), channels


def _model_args(args):
    """``--model-arg`` completed with the builder arguments ``--weights`` need -> dict or None.

    One rule for names (`keras_cnn.models.specs.merge_weights_build_args`): what the weights'
    record needs is added, with a notice line, and a contradiction is an error naming both flags.
    A timm safetensors *file* has no record: the arguments timm's files of the network need
    (`keras_cnn.models.specs.source_build_args`) must be passed, and the error says which.
    """
    import json

    from keras_cnn.commands.train import parse_key_values
    from keras_cnn.models.registry import list_models
    from keras_cnn.models.specs import (
        merge_weights_build_args,
        source_build_args,
        weights_name,
    )

    given = parse_key_values("--model-arg", args.model_arg)
    if args.base not in list_models():
        if given:
            raise ValueError(f"`--model-arg` applies to a registry name; {args.base!r} is built already. "
                             f"Received: --model-arg {' '.join(args.model_arg)}")
        return None
    kwargs, notice = merge_weights_build_args(args.base, args.weights, given)
    if args.weights is not None and weights_name(args.weights) is None:
        from keras_cnn.weights import is_safetensors_file

        if is_safetensors_file(args.weights):
            wrong = {k: v for k, v in source_build_args(args.base, "timm").items() if k not in kwargs or kwargs[k] != v}
            if wrong:
                need = " ".join(f"--model-arg {k}={json.dumps(v)}" for k, v in wrong.items())
                said = ", ".join(f"{k}={kwargs[k]!r}" for k in wrong if k in kwargs)
                raise ValueError(
                    f"`--weights` {args.weights!r} is a timm safetensors file; timm's {args.base} weights are "
                    f"built with {', '.join(f'{k}={v!r}' for k, v in wrong.items())}: pass {need}. "
                    f"Received: --weights={args.weights!r}" + (f", --model-arg {said}" if said else "")
                )
    if notice:
        from keras_cnn.training.pipeline import notice as say

        say(notice)
    return kwargs or None


def _history_by_epoch(history):
    """Both phases' history, one row per epoch (the learning curves' input)."""
    rows = len(next(iter(history.values()), []))
    return {"epoch": list(range(rows)), **history}


def run(args):
    from keras_cnn import transfer
    from keras_cnn._io import atomic_dir, atomic_write_json
    from keras_cnn.data import load_data

    base, input_shape, image_size, channels = _input_shape(args)
    model_args = _model_args(args)  # before the data is read
    bundle = load_data(
        args.data, image_size=image_size, channels=channels, batch_size=args.batch_size, seed=args.seed,
        max_examples=args.max_examples,
    )
    from keras_cnn.training import pipeline

    pipeline.check_bundle(bundle, args.data)  # the run pipeline's data checks (classes, skipped files)
    name = os.path.splitext(os.path.basename(args.base))[0]
    out = args.out or os.path.join("runs", f"transfer_{name}_{args.regime}")
    if os.path.exists(out) and not args.overwrite:  # before training, not after it
        raise FileExistsError(f"`--out` {out!r} already exists; pass --overwrite to replace it. Received: --out={out!r}")
    result = transfer.fine_tune(
        base,
        bundle,
        args.regime,
        head_epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        head_lr=args.lr,
        fine_tune_lr=args.fine_tune_lr,
        batch_size=args.batch_size,
        freeze_until=args.freeze_until,
        trainable_blocks=args.trainable_blocks,
        dropout=args.dropout,
        precompute=args.precompute,
        weights=args.weights,
        input_shape=input_shape,
        seed=args.seed,
        model_kwargs=model_args,
    )
    summary = {
        "base": args.base,
        "weights": args.weights,
        "model_args": model_args or {},
        "data": args.data,
        "regime": result.regime,
        "image_size": list(image_size),
        "num_train": bundle.num_train,
        "phases": [
            {
                "name": p.name,
                "epochs": p.epochs,
                "learning_rate": p.learning_rate,
                "precomputed": p.precomputed,
                "frozen_units": p.plan.frozen,
                "trainable_units": p.plan.trainable,
                "freeze_bn": p.plan.freeze_bn,
                "history": p.history,
            }
            for p in result.phases
        ],
        **result.metrics,
    }
    # The held-out metrics and the saved outputs of the run pipeline's finish step.
    from keras_cnn.training.evaluate import compute_metrics

    split, held_out = ("test", bundle.test) if bundle.test is not None else ("val", bundle.val)
    if held_out is not None:
        held = compute_metrics(result.model, held_out, result.class_names)
        held["split"] = split
        summary.update(per_class_accuracy=held["per_class_accuracy"], confusion_matrix=held["confusion_matrix"],
                       split=split)
    with atomic_dir(out, overwrite=args.overwrite) as tmp:
        if held_out is not None:
            pipeline.save_outputs(tmp, result.model, class_names=result.class_names, metrics=held,
                                  history=_history_by_epoch(result.history), name=f"transfer {name}", data=args.data)
        else:
            pipeline.save_keras_model(result.model, os.path.join(tmp, "model.keras"))
            atomic_write_json(os.path.join(tmp, "class_names.json"), result.class_names)
        atomic_write_json(os.path.join(tmp, "metrics.json"), summary)
        pipeline.rundir.write_readme(tmp, title=f"keras-cnn transfer: {args.base} -> {args.data}, regime {result.regime}")
    # --- explain hook: report.html (a failure is a logged warning; the run stays finished) ---
    from keras_cnn.explain import write_report_or_warn

    write_report_or_warn(out, model=result.model, data=bundle)
    # --- end of explain hook ---

    print(f"transfer {args.base} -> {args.data} ({bundle.num_train} training images), regime {result.regime}")
    print(f"{'phase':<10} {'epochs':>6} {'lr':>9} {'trainable units':>16} {'val acc':>8}")
    for p in result.phases:
        val = p.history.get("val_accuracy", [None])[-1] if p.history else None
        val_text = f"{val:.4f}" if val is not None else "-"
        print(f"{p.name:<10} {p.epochs:>6} {p.learning_rate:>9.2g} {len(p.plan.trainable):>16} {val_text:>8}")
    if "test_accuracy" in result.metrics:
        print(f"test accuracy {result.metrics['test_accuracy']:.4f}")
    print(f"saved {out}")
    return 0
