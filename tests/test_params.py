"""cnn_params: plain values, overridden as --name=value, type-checked, unknown names refused."""
import os

import pytest

import cnn_params
from conftest import REPO, run_script


def test_defaults_hold_the_promised_names():
    p = cnn_params.get_params([])
    for name in ("data_dir", "out_dir", "preset", "epochs", "batch_size", "img_height",
                 "img_width", "learning_rate", "seed"):
        assert name in p
    assert p["preset"] in cnn_params.PRESETS


def test_overrides_are_parsed_to_the_default_type():
    p = cnn_params.get_params(["--epochs=7", "--learning_rate=1e-4", "--augment_dataset=False",
                               "--data_dir=/some/where", "--validation_split=0"])
    assert p["epochs"] == 7 and isinstance(p["epochs"], int)
    assert p["learning_rate"] == 1e-4
    assert p["augment_dataset"] is False
    assert p["data_dir"] == "/some/where"
    assert p["validation_split"] == 0.0 and isinstance(p["validation_split"], float)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        cnn_params.get_params(["--epoch=3"])
    assert "--epoch" in str(error.value) and "epochs" in str(error.value) and "batch_size" in str(error.value)


@pytest.mark.parametrize("arg", ["--epochs=ten", "--epochs=2.5", "--augment_dataset=maybe", "--learning_rate=fast"])
def test_wrong_type_is_refused(arg):
    with pytest.raises(ValueError, match="expected a"):
        cnn_params.get_params([arg])


def test_experiment_applies_before_the_command_line():
    p = cnn_params.get_params(["--experiment=conv3", "--epochs=2"])
    assert p["preset"] == "conv3" and p["shift_fraction"] == 0.25
    # The report names Adam and no rate for this network: Keras's default, never changed.
    assert p["optimizer"] == "adam" and p["learning_rate"] == 1e-3 and p["lr_schedule"] == "constant"
    assert p["epochs"] == 2
    with pytest.raises(ValueError, match="unknown experiment"):
        cnn_params.get_params(["--experiment=nope"])


@pytest.mark.parametrize("args, words", [
    (["--epochs=ten"], "expected a int"),
    (["--bogus=1"], "valid names"),
    (["--preset=resnet999"], "unknown preset"),
    (["--teacher_weight=1.5"], "--teacher_weight=1.5: a share, from 0"),
    (["--validation_split=1.0"], "--validation_split=1.0: a share of train/, from 0"),
    (["--teacher=no/such.keras"], "--teacher: no/such.keras: no such file"),
    (["--data_dir=/no/such/folder"], "/no/such/folder: no such folder"),
])
def test_bad_command_line_is_one_line_without_traceback(args, words, tmp_path):
    result = run_script("cnn_run.py", *args, f"--out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert words in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_data_dir_without_train_folder(tmp_path):
    (tmp_path / "photos" / "test").mkdir(parents=True)
    result = run_script("cnn_run.py", f"--data_dir={tmp_path / 'photos'}", f"--out_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "has no train/ folder" in result.stderr


def test_help_lists_every_parameter_and_runs_nothing(tmp_path):
    """--help (or -h) prints the usage and every parameter as cnn_params.py writes it, exits 0,
    and neither trains nor scores anything."""
    result = run_script("cnn_run.py", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Train a facial-expression CNN")
    for name in cnn_params.get_params([]):
        assert f"\n{name} = " in result.stdout, name       # each line as the file writes it, with its default
    assert '\nlr_schedule = "plateau"     # "plateau" (the FER-2013 report\'s "best" network)' in result.stdout    # and its comment
    assert "presets (--preset=NAME): " + ", ".join(cnn_params.PRESETS) in result.stdout
    assert "fer_sota_narrow_distilled" in result.stdout                   # the experiments too
    scored = run_script("cnn_eval.py", "-h", cwd=tmp_path)
    assert scored.returncode == 0 and scored.stdout.startswith("Score new face images"), scored.stderr
    for script, first in (("bench/bench.py", "Speed figures"), ("bench/compare.py", "Accuracy of saved models"),
                          ("bench/tta.py", "Which test-time augmentation"), ("cnn_export.py", "usage: python cnn_export.py")):
        told = run_script(script, "--help", cwd=tmp_path)
        assert told.returncode == 0 and told.stdout.startswith(first), (script, told.stderr[-500:])
    assert list(tmp_path.iterdir()) == []                                 # no log/, no eval.json


def test_the_speed_bench_without_scipy_says_what_to_install(tmp_path):
    """bench/bench.py times Keras's ImageDataGenerator, which needs scipy: without it, one line
    that says what to install, before any timing (it used to end in a traceback mid-table).
    scipy is hidden from the bench's process (TensorFlow installs it, so it is always here)."""
    import subprocess
    import sys
    hidden = ("import runpy, sys; sys.modules['scipy'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", hidden, os.path.join(REPO, "bench", "bench.py"), "--presets=conv3"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: table 1 times Keras's ImageDataGenerator, "
                                                               "which needs scipy: pip install -r bench/requirements.txt")
    assert "decode and augment" not in result.stdout


def test_the_reports_experiments_have_the_reports_settings():
    get = lambda name: cnn_params.get_params([f"--experiment={name}"])
    for name in ("dense", "conv3", "conv3_balanced", "vgg16"):
        p = get(name)
        assert (p["optimizer"], p["learning_rate"], p["lr_schedule"], p["batch_size"]) == ("adam", 1e-3, "constant", 64)
    for name, batch in (("fer_best", 64), ("fer_best_balanced", 32)):
        p = get(name)
        assert (p["learning_rate"], p["lr_schedule"], p["lr_factor"], p["lr_patience"], p["min_learning_rate"]) == \
            (5e-3, "plateau", 0.1, 2, 1e-5)
        assert p["batch_size"] == batch and p["epochs"] == 50
    assert [get(n)["epochs"] for n in ("dense", "conv3", "vgg16", "conv3_balanced")] == [15, 15, 10, 15]
    for name in ("dense", "conv3", "fer_best", "vgg16", "conv3_balanced", "fer_best_balanced"):
        p = get(name)
        assert (p["rotation_degrees"], p["shift_fraction"], p["validation_split"], p["drop_blank"]) == (5.0, 0.25, 0.2, True)
        # Measured: the report's dense and 3-conv figures are those of runs without its augmentation.
        assert p["live_augment"] == (name in ("fer_best", "vgg16", "fer_best_balanced")), name
    for name in ("qider", "qider_nodrop"):
        p = get(name)
        assert (p["optimizer"], p["learning_rate"], p["lr_schedule"], p["batch_size"], p["epochs"]) == \
            ("rmsprop", 2.5e-3, "constant", 32, 50)
        assert (p["img_height"], p["augment_dataset"], p["class_weights"], p["live_augment"]) == (96, True, True, False)


def test_an_experiment_row_with_a_misspelt_or_mistyped_key_is_refused(monkeypatch):
    defaults = cnn_params.get_params([])
    for name, row in cnn_params.EXPERIMENTS.items():       # every row names known values, of their types
        for key, value in row.items():
            assert key in defaults and type(value) is type(defaults[key]), (name, key, value)
    monkeypatch.setitem(cnn_params.EXPERIMENTS, "typo", dict(cnn_params.EXPERIMENTS["conv3"], lr_patiense=2))
    with pytest.raises(ValueError, match="experiment 'typo': unknown parameter lr_patiense"):
        cnn_params.get_params(["--experiment=typo"])
    monkeypatch.setitem(cnn_params.EXPERIMENTS, "typo", dict(cnn_params.EXPERIMENTS["conv3"], epochs="15"))
    with pytest.raises(ValueError, match="experiment 'typo': epochs='15' should be a int"):
        cnn_params.get_params(["--experiment=typo"])
