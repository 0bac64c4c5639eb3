"""Training under tf.distribute.MirroredStrategy, on two CPU devices so that CI without GPUs runs it."""
import json
import math
import os
import re
import subprocess
import sys

from conftest import REPO

# TensorFlow's CPU must be split into two logical devices before anything else
# touches it, so the run happens in its own interpreter.
TWO_CPU_RUN = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {repo!r})
import cnn_run
cnn_run.main(sys.argv[1:])
"""


def test_mirrored_strategy_trains_on_two_replicas_with_a_doubled_global_batch(demo_dir, tmp_path):
    out = tmp_path / "run"
    args = [f"--data_dir={demo_dir}", f"--out_dir={out}", "--strategy=mirrored", "--epochs=2",
            "--batch_size=16", "--augment_dataset=False", "--learning_rate=1e-3"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", TWO_CPU_RUN.format(repo=REPO), *args], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 replicas (MirroredStrategy), global batch 32" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    steps = {int(s) for s in re.findall(r"^(\d+)/\1 - ", result.stdout, flags=re.M)}
    assert steps == {math.ceil(metrics["train"]["n"] / 32)}              # each step took 2 x 16 images
    assert metrics["epochs_run"] == 2 and (out / "model.keras").exists()
    assert metrics["val"]["accuracy"] > 1 / len(metrics["classes"])      # it learned something
