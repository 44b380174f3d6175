"""The ``--engine ray`` flags of `keras-cnn train` and `keras-cnn tune`, and their one dispatch."""

from __future__ import annotations

import functools

ENGINES = ("local", "ray")
ENGINE_FLAGS = ("workers", "ray_address", "cpus_per_worker", "gpus_per_worker", "storage", "max_failures")


def add_engine_arguments(parser, *, cluster_timeout=True):
    """``--engine`` and the Ray placement flags (``--cluster-timeout`` too unless the command has it)."""
    group = parser.add_argument_group("Ray cluster (--engine ray; needs the 'ray' extra)")
    group.add_argument("--engine", default="local", choices=ENGINES,
                       help="local (default: this process, or the processes you start) or ray (N workers placed "
                            "on a Ray cluster)")
    group.add_argument("--workers", type=int, default=None, metavar="N", help="Ray workers (default 2)")
    group.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                       help="the Ray cluster to join (default: start a local one for the run and stop it after)")
    group.add_argument("--cpus-per-worker", type=float, default=None, metavar="C", help="CPUs per worker (default 1)")
    group.add_argument("--gpus-per-worker", type=float, default=None, metavar="G", help="GPUs per worker (default 0)")
    group.add_argument("--storage", default=None, metavar="DIR_OR_URI",
                       help="Ray Train's storage path for its run records (default ~/ray_results)")
    group.add_argument("--max-failures", type=int, default=None, metavar="K",
                       help="worker failures survived by restarting the workers (default 2; -1: no limit)")
    if cluster_timeout:
        group.add_argument("--cluster-timeout", type=float, default=300.0, metavar="SECONDS",
                           help="seconds to wait for the workers' resources on the cluster (default 300)")


def engine_function(args, local, on_ray):
    """``local`` for ``--engine local``, else ``on_ray`` bound to the flags' `RayOptions`.

    Raises:
        ValueError: a Ray flag without ``--engine ray``, a bad value, or Ray not installed.
    """
    given = [name for name in ENGINE_FLAGS if getattr(args, name, None) is not None]
    if args.engine == "local":
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"`{flag}` places workers on a Ray cluster: it needs --engine ray. "
                             f"Received: {flag}={getattr(args, given[0])!r} with --engine local")
        return local
    from keras_cnn.training.ray_engine import RayOptions, check_options, require_ray

    defaults = RayOptions()
    options = check_options(RayOptions(
        workers=defaults.workers if args.workers is None else args.workers,
        address=args.ray_address,
        cpus_per_worker=defaults.cpus_per_worker if args.cpus_per_worker is None else args.cpus_per_worker,
        gpus_per_worker=defaults.gpus_per_worker if args.gpus_per_worker is None else args.gpus_per_worker,
        storage=args.storage,
        max_failures=defaults.max_failures if args.max_failures is None else args.max_failures,
        cluster_timeout=args.cluster_timeout,
    ))
    require_ray()
    return functools.partial(on_ray, ray=options)
