"""Metrics on planted confusion cases, computed by hand, and flip test-time augmentation."""
import numpy as np
import pytest
import keras

import cnn_metrics
import cnn_model


def _one_hot(predicted, n):
    return np.eye(n)[predicted] * 0.9 + 0.1 / n


def test_planted_confusions_give_hand_computed_metrics():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 0])      # class c is never predicted
    m = cnn_metrics.score(_one_hot(predicted, 3), labels, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    a, b, c = m["per_class"]["a"], m["per_class"]["b"], m["per_class"]["c"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(2 / 4), pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert (b["precision"], b["recall"], b["f1"]) == (pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 1)
    assert m["macro_f1"] == pytest.approx((4 / 7 + 0.5 + 0.0) / 3)


def test_a_class_absent_from_the_labels_does_not_count_in_macro_f1():
    labels = np.array([0, 0, 1, 1])
    m = cnn_metrics.score(_one_hot(np.array([0, 0, 1, 1]), 3), labels, ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["c"]["support"] == 0


def test_loss_is_cross_entropy_of_the_true_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
    m = cnn_metrics.score(probs, np.array([0, 1, 1, 0]), ["a", "b", "c"])
    assert m["accuracy"] == 0.5 and m["n"] == 4
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.25, 0.2])))


def _left_right_model(size=4):
    """A model that answers class 0 for a bright left half and class 1 for a bright right half."""
    inputs = keras.Input((size, size, 1))
    outputs = keras.layers.Dense(2, activation="softmax", use_bias=False)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    left = np.tile([1.0] * (size // 2) + [0.0] * (size // 2), size)
    model.layers[-1].set_weights([np.stack([left, 1 - left], axis=1) * 0.05])
    return model


def test_flip_tta_averages_an_image_and_its_mirror():
    model = _left_right_model()
    image = np.zeros((1, 4, 4, 1), np.float32)
    image[:, :, :2] = 200                                    # bright left half
    plain = cnn_model.predict(model, image)
    mirrored = cnn_model.predict(model, image[:, :, ::-1])
    assert plain.argmax() == 0 and mirrored.argmax() == 1    # the answer changes under a flip
    with_tta = cnn_model.predict(model, image, tta="flip")
    np.testing.assert_allclose(with_tta, (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(with_tta, [[0.5, 0.5]], atol=1e-6)
    with pytest.raises(ValueError, match="unknown tta"):
        cnn_model.predict(model, image, tta="mirror")


def test_ten_crops_are_the_four_corners_and_the_centre_each_mirrored():
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10, 1)
    crops = cnn_model.ten_crops(image, fraction=0.8)              # 8x8 crops of a 10x10 image
    assert len(crops) == 10 and all(c.shape == (1, 8, 8, 1) for c in crops)
    for crop, (y, x) in zip(crops[:5], [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]):
        np.testing.assert_array_equal(crop[0, :, :, 0], image[0, y:y + 8, x:x + 8, 0])
    for crop, mirror in zip(crops[:5], crops[5:]):
        np.testing.assert_array_equal(mirror, crop[:, :, ::-1])


def test_crops_tta_averages_the_ten_views():
    model = _left_right_model(20)
    image = np.zeros((1, 20, 20, 1), np.float32)
    image[:, :, :10] = 200                                   # bright left half
    views = [np.asarray(keras.ops.image.resize(c, (20, 20))) for c in cnn_model.ten_crops(image)]
    assert not np.allclose(views[0], views[1]) and not np.allclose(views[0], image)
    expected = np.mean([cnn_model.predict(model, v) for v in views], axis=0)
    with_tta = cnn_model.predict(model, image, tta="crops")
    np.testing.assert_allclose(with_tta, expected, atol=1e-6)
    # the five crops lean left, their five mirrors lean right: the average is even
    np.testing.assert_allclose(with_tta, [[0.5, 0.5]], atol=1e-6)


def test_a_model_stuck_on_one_class_is_called_out():
    classes = ["angry", "happy", "sad"]
    labels = np.array([0, 1, 2, 1, 0, 2] * 10)
    stuck = np.tile([0.2, 0.6, 0.2], (60, 1))                    # "happy" for every face
    warning = cnn_metrics.stuck_on_one_class(cnn_metrics.score(stuck, labels, classes), classes)
    assert "'happy' for 100%" in warning and "learning_rate" in warning
    learning = np.eye(3)[labels] * 0.5 + 0.25                    # right on every face
    assert cnn_metrics.stuck_on_one_class(cnn_metrics.score(learning, labels, classes), classes) == ""
