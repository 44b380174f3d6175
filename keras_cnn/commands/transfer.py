"""`keras-cnn transfer`: fine-tune a pretrained network in one of the three regimes (a run directory
through the one run lifecycle: `keras_cnn.training.transfer.run_transfer`)."""

from __future__ import annotations

from keras_cnn.commands._args import IMAGE_SIZE_FORMS, image_size
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
            "layers with it (--fine-tune-epochs at the lower --fine-tune-lr). Rerunning the same "
            "command resumes an interrupted run, or reports a finished one; another run in the same "
            "--out is refused."
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
    parser.add_argument("--out", default=None, help="run directory (default runs/transfer_<base>_<regime>)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over, replacing the run directory's previous run (default: resume the same run, "
                        "report a finished one, refuse another one)")
    parser.add_argument("--overwrite", action="store_true", help="the same as --no-resume")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the per-epoch checkpoints once the run finished (default: removed)")
    parser.set_defaults(func=run)
    set_flag_names(parser, {"model_or_base": "BASE", "base": "BASE", "head_epochs": "--epochs", "head_lr": "--lr",
                            "source": "--data", "input_shape": "--image-size", "out_dir": "--out",
                            "resume": "--no-resume", "model_kwargs": "--model-arg"})
    return parser


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
        print(notice)
    return kwargs or None


def run(args):
    from keras_cnn.training.transfer import TransferConfig, run_transfer

    config = TransferConfig(
        base=args.base, data=args.data, regime=args.regime, weights=args.weights, model_kwargs=_model_args(args),
        freeze_until=args.freeze_until, trainable_blocks=args.trainable_blocks, head_epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs, head_lr=args.lr, fine_tune_lr=args.fine_tune_lr,
        batch_size=args.batch_size, dropout=args.dropout, image_size=args.image_size, precompute=args.precompute,
        max_examples=args.max_examples, seed=args.seed, out_dir=args.out,
        resume=not (args.no_resume or args.overwrite), keep_checkpoints=args.keep_checkpoints,
    )
    result = run_transfer(config)
    metrics = result.metrics
    if result.status == "finished":
        print("stored result of the finished run (--no-resume trains again):")
    print(f"transfer {args.base} -> {args.data} ({metrics['num_train']} training images), regime {result.regime}")
    print(f"{'phase':<10} {'epochs':>6} {'lr':>9} {'trainable units':>16} {'val acc':>8}")
    for p in result.phases:
        val = p.history.get("val_accuracy", [None])[-1] if p.history else None
        val_text = f"{val:.4f}" if val is not None else "-"
        print(f"{p.name:<10} {p.epochs:>6} {p.learning_rate:>9.2g} {len(p.plan.trainable):>16} {val_text:>8}")
    if "test_accuracy" in metrics:
        print(f"test accuracy {metrics['test_accuracy']:.4f}")
    print(f"run directory: {result.run_dir}")
    return 0
