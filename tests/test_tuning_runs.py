"""`keras-cnn tune` reruns like `keras-cnn train`: a finished search prints its stored result and
trains nothing; another search (other data, other settings) in the same directory is refused naming
the fields; a directory of a search without its config.json is refused. (An interrupted search
resuming: tests/test_tuning_resume.py.)"""


import numpy as np
import pytest
from PIL import Image

from keras_cnn.cli import main

TINY = ["--image-size", "8", "--channels", "1", "--max-examples", "200", "--tuner", "random", "--max-trials", "1",
        "--epochs", "1", "--no-export", "--space", "blocks=1", "--space", "convs_per_block=1",
        "--space", "base_widths=4", "--space", "fc_units=8", "--space", "batch_norm=false"]


@pytest.mark.slow
def test_a_finished_search_is_reported_and_another_one_refused(tmp_path, capsys):
    argv = ["tune", "vgg", *TINY, "--dir", str(tmp_path / "runs")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "[trial 0 | tuner0] start" in first
    project = tmp_path / "runs" / "vgg_random"
    best = (project / "best.json").read_text()
    assert main(argv) == 0
    printed = capsys.readouterr()
    out = printed.out + printed.err
    assert "finished before; nothing was trained" in out and "stored result of the finished search" in out
    assert "start" not in printed.out  # no trial ran
    assert "Best trial 0" in printed.out and (project / "best.json").read_text() == best

    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 210)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(level + rng.integers(-20, 20, size=(8, 8)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    assert main([*argv, "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-cnn tune: error: `--project-name` holds a different run: data.")
    assert "data.source" in err and "--no-resume" in err
    assert (project / "best.json").read_text() == best  # nothing changed

    (project / "config.json").unlink()  # a search's files without its config: never searched over silently
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds files (" in err and "best.json" in err and "but no config.json" in err
    assert (project / "best.json").read_text() == best
