"""Ray drivers for tests/test_ray_cluster.py, each run as its own process (Ray reads the cluster's
token when it is imported): ``python tests/ray_drivers.py train|tune ADDRESS DIR RECORD``.

Each records, as JSON lines in RECORD, what the workers did (epoch begin/end, trial start/end,
with the worker's PID, which the test kills), and prints the result as one JSON line. The
recorders are defined in ``__main__`` so that Ray pickles them by value to the workers.
"""

import json
import os
import sys
import time


def epoch_recorder(path):
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        def _write(self, event, epoch):
            task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
            line = json.dumps({"task": f"{task.get('type')}:{task.get('index')}", "pid": os.getpid(),
                               "event": event, "epoch": epoch, "time": time.time()})
            with open(path, "a") as handle:
                handle.write(line + "\n")

        def on_epoch_begin(self, epoch, logs=None):
            self._write("begin", epoch)

        def on_epoch_end(self, epoch, logs=None):
            self._write("end", epoch)

    return EpochRecorder()


def trial_recorder(path):
    def record(trial):
        with open(path, "a") as handle:
            handle.write(json.dumps({"tuner_id": trial.tuner_id, "trial_id": trial.trial_id, "status": trial.status,
                                     "pid": os.getpid(), "time": time.time()}) + "\n")

    return record


def train(address, out, record):
    from keras_cnn.training import RunConfig
    from keras_cnn.training.ray_engine import RayOptions, run_on_ray

    cfg = RunConfig(model="lenet5", data="digits", epochs=4, out_dir=out, export=False, verbose=0,
                    callbacks=[epoch_recorder(record)])
    result = run_on_ray(cfg, RayOptions(workers=2, address=address, max_failures=2, cluster_timeout=240))
    return {"status": result.status, "epochs": result.metrics["epochs"], "accuracy": result.metrics["accuracy"]}


SPACE = {"blocks": (1,), "convs_per_block": (1,), "base_widths": (4, 8), "fc_units": (8,), "dropout": (0.0,),
         "batch_norm": (False,), "optimizers": ("adam",)}


def tune(address, directory, record):
    from keras_cnn.training.ray_engine import RayOptions
    from keras_cnn.tuning.ray_search import tune_on_ray

    result = tune_on_ray(
        "vgg", "digits", tuner="random", max_trials=3, epochs=1, image_size=8, channels=1, max_examples=200,
        directory=directory, export=False, verbose=0, progress=trial_recorder(record), search_space=SPACE,
        ray=RayOptions(workers=2, address=address, max_failures=1, cluster_timeout=240))
    return {"completed": sorted(r.trial_id for r in result.trials if r.status == "COMPLETED")}


if __name__ == "__main__":
    what, address, *arguments = sys.argv[1:]
    address = None if address == "local" else address  # "local": a local cluster for the run
    print(json.dumps({"train": train, "tune": tune}[what](address, *arguments)), flush=True)
