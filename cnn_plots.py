"""Every picture the toolkit draws with Matplotlib, each into a PNG file.

A training run (cnn_run.py) draws loss.png and accuracy.png (both reports' curves), the class
counts of each split, a sample of augmented faces, and for each scored split a confusion matrix
and per-class recall and precision. Scoring draws nothing here: its pictures (eval.png, a video's
timeline) are drawn with Pillow in cnn_photos.py, so that the scorer installs without Matplotlib.
"""
import os

import matplotlib
matplotlib.use("Agg")                                # plots go to files; no screen needed
import matplotlib.pyplot as plt
import numpy as np

import cnn_history


def plot_history(history, out_dir):
    """loss.png and accuracy.png: train and validation curves per epoch, as in both reports."""
    epochs = [int(r["epoch"]) + 1 for r in history]
    for metric in ("loss", "accuracy"):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(epochs, [float(r[metric]) for r in history], "o-", label="train")
        if history and cnn_history.validated(history[0]):           # not with validation_split 0
            ax.plot(epochs, [float(r["val_" + metric]) for r in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per epoch")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"{metric}.png"), dpi=100)
        plt.close(fig)


def plot_class_distribution(data, classes, path):
    """Bar charts of the class counts of each split, like the FER-2013 report's graphs 1 and 2."""
    splits = [s for s in ("train", "val", "test") if s in data]
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4))
    for ax, split in zip(np.atleast_1d(axes), splits):
        counts = np.bincount(data[split][1], minlength=len(classes))
        ax.bar(classes, counts, color="tab:blue")
        ax.set_title(f"{split} ({counts.sum():,} images)")
        ax.tick_params(axis="x", rotation=45)
        for i, n in enumerate(counts):
            ax.text(i, n, str(n), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_augmented(images, augmenter, path, seed, n_faces=6, n_versions=6):
    """What the network sees: each row is one training face, then random augmented versions of it."""
    picks = np.random.default_rng(seed).choice(len(images), size=min(n_faces, len(images)), replace=False)
    fig, axes = plt.subplots(len(picks), n_versions + 1, figsize=(1.3 * (n_versions + 1), 1.3 * len(picks)),
                             squeeze=False)
    for row, i in zip(axes, picks):
        face = images[i].astype(np.float32)
        # float32: under mixed_bfloat16 the augmenter hands out bfloat16, which Matplotlib draws black.
        versions = [face] + [np.asarray(augmenter(face[None], training=True)).astype(np.float32)[0]
                             for _ in range(n_versions)]
        for ax, version in zip(row, versions):
            ax.imshow(version[..., 0], cmap="gray", vmin=0, vmax=255)
            ax.axis("off")
    axes[0][0].set_title("original", fontsize=8)
    axes[0][1].set_title("augmented ->", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(m, classes, title, path):
    """The matrix normalised per row (each true class sums to 1), with the counts written in."""
    counts = np.array(m["confusion_matrix"])
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 2, 1.0 * len(classes) + 1))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix, {title}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(m, classes, title, path):
    """Recall and precision per class as bars: a class the model never predicts stands out."""
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [m["per_class"][c]["recall"] for c in classes], 0.4, label="recall")
    ax.bar(x + 0.2, [m["per_class"][c]["precision"] for c in classes], 0.4, label="precision")
    ax.set_xticks(x, classes, rotation=45)
    ax.set_ylim(0, 1)
    ax.set_title(f"per class, {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
