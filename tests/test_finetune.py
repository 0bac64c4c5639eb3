"""Your own classes from the shipped model (--experiment=finetune): a new head, then the whole network."""
import json
import os
import shutil

import numpy as np

from conftest import REPO, run_script


def test_the_shipped_model_is_fine_tuned_on_classes_of_its_own(fer2013_dir, tmp_path):
    """--experiment=finetune on a set whose classes the shipped model does not have (FER-2013's happy
    faces as "smiling", its sad and neutral ones as "not_smiling"): every layer but the head comes from
    the shipped model, a new two-class head is fitted first, and after one epoch the model is far
    better on PublicTest than the same network trained one epoch from random weights."""
    import keras
    import cnn_model
    for split, source, n in (("train", "train", 40), ("val", "train", 10), ("test", "test", 40)):
        for name, classes in (("smiling", ("happy",)), ("not_smiling", ("sad", "neutral"))):
            folder = tmp_path / "mine" / split / name
            folder.mkdir(parents=True)
            for c in classes:
                files = sorted(os.listdir(os.path.join(fer2013_dir, source, c)))
                chosen = files[-n // len(classes):] if split == "val" else files[:n // len(classes)]
                for f in chosen:
                    shutil.copy(os.path.join(fer2013_dir, source, c, f), folder / f"{c}_{f}")
    common = ["--experiment=finetune", f"--data_dir={tmp_path / 'mine'}", "--epochs=1"]
    tuned = run_script("cnn_run.py", *common, f"--out_dir={tmp_path / 'tuned'}", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    assert "but its head: its classes (angry, disgust, fear, happy, neutral, sad, surprise) are not this data's " \
           "(not_smiling, smiling); a new head for 2 classes, fitted first" in tuned.stdout
    assert "the new head, fitted alone for 30 passes" in tuned.stdout
    scratch = run_script("cnn_run.py", *common, "--init_model=", "--learning_rate=1e-3",
                         f"--out_dir={tmp_path / 'scratch'}", cwd=tmp_path)
    assert scratch.returncode == 0, scratch.stderr[-2000:]
    tuned_metrics, scratch_metrics = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("tuned", "scratch"))
    assert tuned_metrics["classes"] == ["not_smiling", "smiling"]
    assert tuned_metrics["test"]["accuracy"] >= 0.75
    assert tuned_metrics["test"]["accuracy"] >= scratch_metrics["test"]["accuracy"] + 0.15
    # The borrowed layers were adjusted, not overwritten: the first convolution is still the shipped one's, near enough.
    shipped, _, _ = cnn_model.load_model(os.path.join(REPO, "pretrained", "fer2013.keras"))
    model, _, _ = cnn_model.load_model(str(tmp_path / "tuned" / "model.keras"))
    first = lambda m: next(l for l in m.layers if isinstance(l, keras.layers.Conv2D)).get_weights()[0]
    assert np.linalg.norm(first(model) - first(shipped)) < 0.05 * np.linalg.norm(first(shipped))
