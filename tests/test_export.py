"""Export round trips: the exported model gives Keras's answers on 20 real FER-2013 faces."""
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import cnn_data
import cnn_export
import cnn_model
from conftest import run_script


@pytest.fixture(scope="module")
def trained(fer_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    # Trained in bfloat16, as precision=auto does on a CPU with AMX: its TFLite file once needed Flex ops.
    result = run_script("cnn_run.py", f"--data_dir={fer_slice}", f"--out_dir={out}", "--preset=conv3",
                        "--epochs=2", "--live_augment=False", "--precision=mixed_bfloat16", cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    files, _ = cnn_data.list_split(os.path.join(fer_slice, "test"))
    faces = np.stack([cnn_data.decode_image(p, 48, 48) for p, _ in files[::5][:20]])[..., None].astype(np.float32)
    model, classes, _ = cnn_model.load_model(str(out / "model.keras"))
    assert {layer.dtype_policy.name for layer in model.layers} == {"mixed_bfloat16", "float32"}
    # Exports run the float32 network: Keras's answers are that network's.
    return out, faces, cnn_model.predict(cnn_export.float32_copy(model), faces), classes


def test_tflite_gives_the_same_top1_as_keras(trained):
    import tensorflow as tf
    out, faces, expected, classes = trained
    result = run_script("cnn_export.py", f"--model={out / 'model.keras'}", "--format=tflite", cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    interpreter = tf.lite.Interpreter(model_path=str(out / "model.tflite"))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    tflite = []
    for face in faces:
        interpreter.set_tensor(source["index"], face[None])
        interpreter.invoke()
        tflite.append(interpreter.get_tensor(target["index"])[0])
    assert len(faces) == 20
    assert np.array_equal(np.argmax(tflite, axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(tflite, expected, atol=1e-4)
    assert (out / "model.labels.txt").read_text().split() == classes


def test_int8_tflite_is_read_as_a_model_and_keeps_keras_top1(trained, tmp_path):
    """--format=tflite_int8 (the fast model's format): int8 weights, a quarter of the float32 file, read
    back by cnn_model.load_model with labels.txt beside it; without that file, a one-line error."""
    out, faces, expected, classes = trained
    result = run_script("cnn_export.py", f"--model={out / 'model.keras'}", "--format=tflite_int8", cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"wrote {out / 'model_int8.tflite'} and {out / 'model_int8.labels.txt'}" in result.stdout   # its own
    model, its_classes, _ = cnn_model.load_model(str(out / "model_int8.tflite"))
    assert its_classes == classes
    answers = cnn_model.predict(model, faces)
    assert answers.shape == expected.shape and np.mean(answers.argmax(axis=1) == expected.argmax(axis=1)) >= 0.9
    np.testing.assert_allclose(answers.sum(axis=1), 1.0, atol=1e-4)
    alone = tmp_path / "alone.tflite"
    alone.write_bytes((out / "model_int8.tflite").read_bytes())
    with pytest.raises(cnn_model.ModelError, match="alone.tflite: no alone.labels.txt or labels.txt beside it"):
        cnn_model.load_model(str(alone))
    (tmp_path / "labels.txt").write_text("one\ntwo\n")
    with pytest.raises(cnn_model.ModelError, match=f"alone.tflite: {len(classes)} outputs but 2 class names"):
        cnn_model.load_model(str(alone))
    (tmp_path / "junk.tflite").write_text("not a model")
    with pytest.raises(cnn_model.ModelError, match="junk.tflite: not a TFLite model LiteRT can run"):
        cnn_model.load_model(str(tmp_path / "junk.tflite"))


def test_saved_model_gives_the_same_answers(trained):
    import tensorflow as tf
    out, faces, expected, _ = trained
    written, _ = cnn_export.export(str(out / "model.keras"), "saved_model", str(out / "sm"))
    loaded = tf.saved_model.load(written)          # keep a reference: its variables live in it
    served = loaded.serve(faces).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_onnx_gives_the_same_top1_as_keras(trained):
    from conftest import require
    out, faces, expected, _ = trained
    onnxruntime = require("onnxruntime")
    require("tf2onnx")
    written, _ = cnn_export.export(str(out / "model.keras"), "onnx", str(out / "model.onnx"))
    session = onnxruntime.InferenceSession(written)
    answers = session.run(None, {session.get_inputs()[0].name: faces})[0]
    assert np.array_equal(answers.argmax(axis=1), expected.argmax(axis=1))


def test_unknown_format_and_missing_model_are_one_line_errors(tmp_path):
    for args, words in ((["--model=nope.keras", "--format=tflite"], "no such model file"),
                        (["--model=nope.keras", "--format=gif"], "expected one of")):
        result = run_script("cnn_export.py", *args, cwd=tmp_path)
        assert result.returncode != 0 and "Traceback" not in result.stderr and words in result.stderr


def test_float32_keras_copy_of_a_bfloat16_model(fer_tiny, tmp_path):
    out = tmp_path / "bf16"
    result = run_script("cnn_run.py", f"--data_dir={fer_tiny}", f"--out_dir={out}", "--preset=fer_sota",
                        "--epochs=1", "--precision=mixed_bfloat16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    written, _ = cnn_export.export(str(out / "model.keras"), "keras", str(tmp_path / "shipped.keras"))
    original, classes, _ = cnn_model.load_model(str(out / "model.keras"))
    shipped, shipped_classes, params = cnn_model.load_model(written)
    assert shipped_classes == classes and params["precision"] == "float32"
    assert {layer.dtype_policy.name for layer in shipped.layers} == {"float32"}
    assert os.path.getsize(written) < os.path.getsize(out / "model.keras") / 2     # no optimizer state
    faces = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(cnn_model.predict(shipped, faces), cnn_model.predict(original, faces), atol=2e-2)
    # Trained with our fused batch norm, shipped with Keras's: plain Keras loads it, without this toolkit.
    assert any(type(l).__name__ == "FusedBatchNormalization" for l in original.layers)
    plain_keras = ("import sys, keras; m = keras.models.load_model(sys.argv[1], safe_mode=True, compile=False); "
                   "print(sorted({type(l).__name__ for l in m.layers if 'Norm' in type(l).__name__}))")
    loaded = subprocess.run([sys.executable, "-c", plain_keras, written], cwd=tmp_path, capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split("\n")[-2] == "['BatchNormalization']"


def test_float16_weights_load_as_float32_in_half_the_file(trained, tmp_path):
    out, faces, expected, classes = trained
    full, _ = cnn_export.export(str(out / "model.keras"), "keras", str(tmp_path / "f32.keras"))
    result = run_script("cnn_export.py", f"--model={out / 'model.keras'}", "--format=keras_f16",
                        f"--out={tmp_path / 'f16.keras'}", cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    halved = tmp_path / "f16.keras"
    assert os.path.getsize(halved) < 0.6 * os.path.getsize(full)
    with zipfile.ZipFile(halved) as archive, archive.open("model.weights.h5") as f, h5py.File(f) as weights:
        stored = []
        weights.visititems(lambda name, item: stored.append(item.dtype) if isinstance(item, h5py.Dataset) else None)
    assert stored and set(stored) == {np.dtype(np.float16)}
    model, loaded_classes, _ = cnn_model.load_model(str(halved))
    assert loaded_classes == classes and {v.dtype for v in model.weights} == {"float32"}
    np.testing.assert_allclose(cnn_model.predict(model, faces), expected, atol=5e-3)
