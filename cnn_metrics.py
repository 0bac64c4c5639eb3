"""Scores of a model's probabilities against the true labels: loss, accuracy,
macro-F1, per-class precision, recall and F1, and the confusion matrix, computed
here in NumPy so that every figure can be checked by hand; and a warning for a
network that answers one class for almost every face.
"""
import numpy as np


def confusion_matrix(labels, predicted, n_classes):
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def score(probabilities, labels, classes):
    """Accuracy, categorical cross-entropy, macro-F1, per-class precision, recall,
    F1 and support, and the confusion matrix, of predictions against integer labels.

    A class never predicted has precision 0; macro-F1 averages the F1 of the
    classes present in the labels, so a class absent from a split does not count.
    """
    if len(labels) == 0:
        return {"loss": None, "accuracy": None, "n": 0}
    picked = probabilities[np.arange(len(labels)), labels]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), len(classes))
    hits, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros(len(classes)), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(len(classes)), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros(len(classes)), where=precision + recall > 0)
    return {"loss": float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))),
            "accuracy": float(hits.sum() / len(labels)),
            "n": int(len(labels)),
            "macro_f1": float(f1[support > 0].mean()),
            "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]),
                              "f1": float(f1[i]), "support": int(support[i])} for i, c in enumerate(classes)},
            "confusion_matrix": matrix.tolist()}


def stuck_on_one_class(result, classes, share=0.95):
    """A one-line warning when nearly every prediction is the same class, else "".

    That is a network that stopped learning: with no batch norm and a large
    learning rate its ReLUs can all die in the first epoch, and its loss then
    sits at ln(number of classes) for the rest of the run.
    """
    if not result.get("n"):
        return ""
    predicted = np.asarray(result["confusion_matrix"]).sum(axis=0)
    top = int(predicted.argmax())
    if predicted[top] < share * predicted.sum():
        return ""
    return (f"warning: the model predicts {classes[top]!r} for {predicted[top] / predicted.sum():.0%} of "
            f"these images: it has stopped learning; try a smaller --learning_rate (e.g. 1e-3) "
            f"or a preset with batch norm")
