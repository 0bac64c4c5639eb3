"""Train a facial-expression CNN, plot how it learned, and evaluate it.

    python cnn_run.py                                   # cnn_params.py as it is (demo set if no data)
    python cnn_run.py --data_dir=/path/to/fer2013 --preset=conv3 --epochs=15
    python cnn_run.py --experiment=conv3 --data_dir=/path/to/fer2013

Everything goes into out_dir (default log/): model.keras, history.csv,
loss.png, accuracy.png, class_distribution.png and metrics.json.
Started again after a crash or Ctrl-C, the same command resumes the run.
--help lists every parameter with its default.

Keras, TensorFlow, Matplotlib and the modules that load them (cnn_model, cnn_device, cnn_teacher,
cnn_plots) are imported inside the functions that use them: a wrong option or folder is then said
in a second, before TensorFlow's start of several seconds, and where the scorer alone is
installed (no Keras, no Matplotlib) the run says in one line what to install.
"""
import errno
import hashlib
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep TensorFlow's start-up chatter out of the way

import numpy as np

import cnn_params
import cnn_data
import cnn_demo
import cnn_history
import cnn_metrics
import cnn_out_dir
import cnn_split
import cnn_storage
import pretrained


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__ + "\n" + cnn_params.usage())
        return
    p = cnn_params.params_or_exit(argv)
    cnn_data.set_max_pixels(p["max_image_pixels"])
    check_training_installed()
    started = time.time()
    # 0. What can be checked before minutes of decoding. Several processes (multi_worker) meet first:
    #    JAX's must before any computation, and each must know whether it is the chief that writes out_dir.
    placed = where_to_train(p) if p["strategy"] == "multi_worker" else None
    finished = check_before_decoding(p, argv)
    if finished is not None:                        # this very command, run to its end before: say so, train nothing
        print(f"{p['out_dir']} holds this command's finished run; its results (metrics.json, model.keras, plots):")
        print_results(finished, p)
        return

    # 1. The data: decode every image once, hold out validation, balance the training classes.
    data, (x_fit, y_fit), weights = training_set(p)
    classes = data["classes"]

    # 2. The model, from the layer table of the chosen preset. Keras is imported only now (unless
    #    several processes met above), so that a mistyped --name=value fails at once.
    scope, devices, process, processes = placed or where_to_train(p)
    import keras
    import cnn_device
    import cnn_model
    keras.utils.set_random_seed(p["seed"])
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()   # same seed, same machine: same weights
    y_fit, teacher_time = teach(y_fit, x_fit, data, p)
    # The compute policy: "auto" picks what is fast on this machine (bfloat16 only where it is native).
    p["precision"], note = cnn_device.compute_policy(p["precision"])
    if note:
        print(note)
    keras.mixed_precision.set_global_policy(p["precision"])
    # Several devices (--strategy): each takes batch_size images of every global batch, and
    # each process feeds its own devices' share of it.
    batch, shard = p["batch_size"] * devices, (process, processes)
    # With several processes the class weights ride in each batch's sample weights (cnn_data.array_batches).
    train_ds = training_batches(x_fit, y_fit, len(classes), batch, p, shard, weights if processes > 1 else None)
    x_val, y_val, _ = data["val"]
    val_ds = cnn_data.make_dataset(x_val, y_val, len(classes), batch, shard=shard) if len(y_val) else None
    with scope:
        model = cnn_model.build_model(cnn_params.PRESETS[p["preset"]], (p["img_height"], p["img_width"], p["channels"]),
                                      len(classes), p["dense_init"], name=p["preset"], vgg16_weights=p["vgg16_weights"])
        if p["init_model"]:
            start_from(model, p["init_model"], classes, x_fit, y_fit, weights)
        cnn_model.compile_model(model, p, weighted=processes > 1)
    model.summary()

    # 3. Train. The best epoch (by validation accuracy) is saved as model.keras; with no validation, the last.
    #    A full disk stops the run in one line; every file is written whole or not at all, so the
    #    last finished epoch's model.keras, metrics.json and backup stay readable.
    try:
        try:
            cnn_history.note_machine(p["out_dir"], cnn_device.machine())   # for a part-run's row in cnn_results
            steps = cnn_data.batches_per_epoch(len(y_fit), batch)
            shares = (steps * batch / len(y_fit), cnn_data.batches_per_epoch(len(y_val), batch) * batch / max(len(y_val), 1))
            history = cnn_model.train(model, train_ds, val_ds, p, classes, None if processes > 1 else weights, steps,
                                      shares if processes > 1 else None)
        except KeyboardInterrupt as signal_name:
            stopped = f"stopped by {signal_name}" if str(signal_name) == "SIGTERM" else "interrupted"
            sys.exit(f"\n{stopped}: the last finished epoch is saved in {os.path.join(p['out_dir'], 'backup')}; "
                     f"run the same command again to resume")
        cnn_device.local_distribution()         # what follows runs in each process on its own
        if processes > 1:
            print(f"process {process} of {processes}: trained weights {weights_digest(model)}")
            if process:                         # the chief scores the saved model and writes the rest
                return
        model_path = os.path.join(p["out_dir"], "model.keras")
        diverged = [i + 1 for i, row in enumerate(history) if cnn_history.diverged(row)]
        if diverged:
            sys.exit(cnn_out_dir.diverged_run(p, diverged[0]))
        if not os.path.exists(model_path):      # no epoch had a validation score
            cnn_storage.save_model(model, model_path, classes, p)
        import cnn_plots
        cnn_plots.plot_history(history, p["out_dir"])

        # 4. Evaluate the saved best model on every split, as the reports' tables do.
        #    The protocol is stated, never implied: splits.json lists every file of each split.
        metrics = evaluate(model_path, data, p, history, started, teacher_time)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        sys.exit(f"\nerror: no space left on the disk of {p['out_dir']}; its last finished epoch's files are kept "
                 f"as they were: free some space and run the same command again to resume")
    print_results(metrics, p)
    cnn_model.clear_backup(p["out_dir"])     # only now: a crash above reruns the evaluation, not the training
    print(f"saved {model_path} and plots in {p['out_dir']}/ ({metrics['wall_time_s']:.0f} s; "
          f"training {metrics['training_time_s']:.0f} s over {len(history)} epochs, counting any before a resume)")


def check_training_installed():
    """Exit in one line when Keras, its backend or Matplotlib (the training plots) is missing (`pip
    install .` installs the scorer alone), found without importing them: TensorFlow's start takes seconds."""
    import importlib.util
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    missing = [m for m in ("keras", backend if backend in ("tensorflow", "jax", "torch") else "tensorflow", "matplotlib")
               if importlib.util.find_spec(m) is None]
    if missing:
        named = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        sys.exit(f"error: training needs {named}, which the scorer alone does not install: "
                 f'pip install ".[train]" in the toolkit\'s folder (or pip install -r requirements.txt)')


def where_to_train(p):
    """The devices of --strategy (cnn_device.distribution), said in the run's first lines. In a run
    of several processes only process 0, the chief, writes out_dir; the others keep their files in a
    folder of their own, which starts from the chief's backup, so that all resume from one epoch."""
    import cnn_device
    try:
        scope, devices, process, processes = cnn_device.distribution(p["strategy"])
    except ValueError as error:
        sys.exit(f"error: {error}")
    batch = p["batch_size"] * devices
    if processes > 1:
        print(f"training on {devices} devices of {processes} processes (keras.distribution.DataParallel), global "
              f"batch {batch} = batch_size {p['batch_size']} x {devices} devices; this is process {process}, "
              f"which feeds {batch // processes} faces of each")
    elif devices > 1:
        import keras
        how = "MirroredStrategy" if keras.backend.backend() == "tensorflow" else "keras.distribution.DataParallel"
        print(f"training on {devices} replicas ({how}), global batch {batch}")
    if process:
        p["out_dir"] = worker_folder(p["out_dir"], process)
    return scope, devices, process, processes


def worker_folder(out_dir, process):
    """A folder of a non-chief process's own, beside nothing of the chief's, holding a copy of the
    chief's backup and history (when there are any) so that it resumes from the same epoch."""
    folder = tempfile.mkdtemp(prefix=f"fer_process{process}_")
    for name in ("backup", "history.csv", "teacher.npz"):
        source = os.path.join(out_dir, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(folder, name))
        elif os.path.isfile(source):
            shutil.copy(source, folder)
    print(f"process {process} writes its own files in {folder}; {out_dir} is the chief's")
    return folder


def weights_digest(model):
    """A short fingerprint of a network's weights: equal in every process of one run."""
    digest = hashlib.sha1()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def check_before_decoding(p, argv):
    """Stop at once, in one line, on what would otherwise fail after minutes of decoding; draw the
    demo set or the stand-in for QIDER when the run is on one of them. Returns the metrics of
    out_dir's finished run when it is this command's (nothing to do), else None."""
    for path in filter(None, p["teacher"].split(",")):
        if not os.path.isfile(path):
            sys.exit(f"error: --teacher: {path}: no such file (a .keras model, or a teacher.npz of an earlier run)")
    if wants_demo_set(p, argv):
        print(f"no dataset at {p['data_dir']}; training on the built-in demo set in {p['demo_dir']} instead")
        p["data_dir"] = p["demo_dir"]
    if os.path.abspath(p["data_dir"]) == os.path.abspath(p["demo_dir"]):
        cnn_demo.make_demo_set(p["demo_dir"])            # drawn once, on first use
    if os.path.abspath(p["data_dir"]) == os.path.abspath(p["qider_dir"]):
        cnn_demo.make_qider_set(p["qider_dir"])          # likewise: --experiment=qider
    missing = cnn_data.missing_data(p["data_dir"])     # before what out_dir holds: a typo is the likelier mistake
    if missing:
        sys.exit(f"error: {missing}")
    # A model to fine-tune must exist, and must have held out this run's validation faces (its stored
    # parameters say). "shipped" names the shipped model, wherever the toolkit is installed.
    if p["init_model"] == "shipped":
        p["init_model"] = pretrained.SHIPPED
    if p["init_model"] and not os.path.isfile(p["init_model"]):
        sys.exit(f"error: --init_model={p['init_model']}: no such file (a .keras model saved by this toolkit, "
                 f"or shipped for the shipped model)")
    if p["init_model"] and not other_faces(p["init_model"], p["data_dir"]):
        stored = cnn_storage.stored_meta(p["init_model"]) or {"params": {}}
        said = cnn_split.split_mismatch(p["init_model"], "the model to fine-tune", stored["params"], p)
        if said:
            sys.exit(f"error: --init_model: {said}")
    # A preset's convolutions and poolings need room: a small image would fail when the model is built.
    if min(p["img_height"], p["img_width"]) < 48:
        import cnn_model
        try:
            cnn_model.build_model(cnn_params.PRESETS[p["preset"]], (p["img_height"], p["img_width"], p["channels"]), 2)
        except ValueError:
            sys.exit(f"error: --img_height={p['img_height']} --img_width={p['img_width']}: too small for the "
                     f"convolutions and poolings of --preset={p['preset']}; use larger images (48x48, as FER-2013)")
    # The plateau schedule watches val_loss: with nothing held out and no val/ folder it has nothing to watch.
    if p["lr_schedule"] == "plateau" and not cnn_split.has_validation(p):
        sys.exit("error: --validation_split=0 holds out no faces and there is no val/ folder, so the plateau "
                 "schedule has no val_loss to watch; use --lr_schedule=cosine")
    cnn_out_dir.check_resume(p)
    finished = cnn_out_dir.finished_run(p["out_dir"])
    if finished is not None and not p["fresh"]:
        return cnn_out_dir.same_finished_run(p, finished)
    moving = p["fresh"] and not cnn_out_dir.resumable(p)    # another run's files (finished or not), a scoring's
    if moving:
        present = cnn_out_dir.run_files(p["out_dir"]) if os.path.isdir(p["out_dir"]) else []   # what would move
        for option in ("init_model", "teacher"):                # this run's own inputs are not to be moved away
            for path in filter(None, p[option].split(",")):
                if (os.path.dirname(os.path.abspath(path)) == os.path.abspath(p["out_dir"])
                        and os.path.basename(path) in present):
                    sys.exit(f"error: --{option}={path}: --fresh=True would move it into {p['out_dir']}/earlier_"
                             f"<date-time>/ with the earlier run's files; copy it out of {p['out_dir']} first")
    cnn_out_dir.claim_out_dir(p["out_dir"])         # last: a run refused above leaves no out_dir behind
    if moving:
        cnn_out_dir.move_earlier_run(p["out_dir"])
    return None


def training_set(p):
    """The decoded splits, the training faces after augment_dataset, and the class weights
    computed from them (None when class_weights is off)."""
    try:
        data = cnn_data.load_dataset(p)
    except cnn_data.DataError as error:
        sys.exit(f"error: {error}")
    classes = data["classes"]
    x_train, y_train, _ = data["train"]
    if not len(y_train):
        sys.exit(f"error: {p['data_dir']}: none of its training files could be read as an image (each is named "
                 "above); nothing to train on")
    print(f"classes: {', '.join(classes)}")
    if not len(data["val"][1]):
        if p["lr_schedule"] == "plateau":               # a val/ folder with none of train's classes
            sys.exit(f"error: {os.path.join(p['data_dir'], 'val')}: no faces of the training classes, so the "
                     "plateau schedule has no val_loss to watch; use --lr_schedule=cosine")
        print("no validation faces: every training face is trained on, and model.keras is the last epoch, "
              "chosen by nothing")
    os.makedirs(p["out_dir"], exist_ok=True)
    import cnn_plots
    cnn_plots.plot_class_distribution(data, classes, os.path.join(p["out_dir"], "class_distribution.png"))
    x_fit, y_fit = x_train, y_train
    if p["augment_dataset"]:
        x_fit, y_fit = cnn_data.augment_dataset(x_train, y_train, classes, p["noise_std"], p["seed"])
    weights = cnn_data.class_weights(y_fit, len(classes)) if p["class_weights"] else None
    if weights:
        print("class_weights: " + ", ".join(f"{c} {weights[i]:.2f}" for i, c in enumerate(classes)))
    return data, (x_fit, y_fit), weights


def teach(y_fit, x_fit, data, p):
    """Distillation: with --teacher, each training face's target becomes part teacher, part label
    (cnn_teacher.py). The teacher labels every training face once, before the first epoch; its
    probabilities are kept in out_dir/teacher.npz: a resumed run reads them back, and
    --teacher=that/teacher.npz hands them to another student. Returns the targets and the seconds taken."""
    if not p["teacher"]:
        return y_fit, 0.0
    import cnn_model
    import cnn_teacher
    clock, classes = time.time(), data["classes"]
    kept = os.path.join(p["out_dir"], cnn_teacher.TEACHER_FILE)
    teacher = p["teacher"].split(",")
    if cnn_teacher.teacher_of(kept) == p["teacher"]:     # a resumed run: its own labels
        teacher = [kept]
    from_file = cnn_teacher.is_teacher_file(teacher)
    try:
        targets, teacher_says = cnn_teacher.teacher_targets(teacher, x_fit, y_fit, data["train"][2], classes, p)
    except cnn_model.ModelError as error:
        sys.exit(f"error: {error}")
    if not from_file:
        cnn_teacher.save_teacher_file(kept, teacher_says, data["train"][2], classes, p)
    seconds = round(time.time() - clock, 1)
    source = f" (labels of {cnn_teacher.teacher_of(teacher[0])})" if from_file else ""
    print(f"teacher {', '.join(teacher)}{source}: {len(y_fit):,} training faces labelled in {seconds:.0f} s; "
          f"its class is the label on {np.mean(teacher_says.argmax(1) == y_fit):.1%} of them")
    return targets, seconds


def evaluate(model_path, data, p, history, started, teacher_time):
    """Score the saved model on every split (and with TTA on the held-out ones), write
    metrics.json, splits.json and the plots of the scored split; returns the metrics."""
    import cnn_device
    import cnn_model
    best, _, _ = cnn_model.load_model(model_path)
    classes = data["classes"]
    metrics = {"classes": classes, "preset": p["preset"], "experiment": p["experiment"],
               "data_dir": p["data_dir"], "epochs_run": len(history), "tta": p["tta"], "machine": cnn_device.machine(),
               "precision": p["precision"],
               "wall_time_s": round(time.time() - started, 1), "training_time_s": training_time(history),
               "teacher": p["teacher"], "teacher_time_s": teacher_time,
               "protocol": describe_splits(data, p)}
    cnn_storage.write_json(os.path.join(p["out_dir"], "splits.json"),
                         {split: data[split][2] for split in ("train", "val", "test", "private_test") if split in data})
    for split in ("train", "val", "test", "private_test"):
        if split not in data or not len(data[split][1]):
            continue
        images, labels = data[split][:2]
        metrics[split] = cnn_metrics.score(cnn_model.predict(best, images), labels, classes)
        # TTA on the held-out splits only: on the training faces it tells nothing and
        # costs most of the evaluation (ten-crop: 10 passes over 23,000 FER-2013 faces).
        if p["tta"] != "none" and split != "train":
            with_tta = cnn_metrics.score(cnn_model.predict(best, images, p["tta"]), labels, classes)
            metrics[split]["tta_" + p["tta"]] = {k: with_tta[k] for k in ("loss", "accuracy", "macro_f1")}
    if p["live_augment"] and "val" in metrics:
        metrics["val"]["augmented"] = score_augmented(best, *data["val"][:2], classes, p)
    cnn_storage.write_json(os.path.join(p["out_dir"], "metrics.json"), metrics)
    shown = next(split for split in ("test", "val", "train") if split in metrics)
    import cnn_plots
    cnn_plots.plot_confusion_matrix(metrics[shown], classes, f"{shown} split", os.path.join(p["out_dir"], "confusion_matrix.png"))
    cnn_plots.plot_per_class(metrics[shown], classes, f"{shown} split", os.path.join(p["out_dir"], "per_class.png"))
    return metrics


def print_results(metrics, p):
    """Where each split came from, then one row per split, as the reports' tables."""
    for line in metrics["protocol"].values():
        print(line)
    tta_column = f"  tta={p['tta']}" if p["tta"] != "none" else ""
    print(f"\n{'split':<8}{'images':>8}{'loss':>9}{'accuracy':>10}{'macro-F1':>10}{tta_column}")
    for split in ("train", "val", "test", "private_test"):
        if split not in metrics:
            continue
        m = metrics[split]
        tta = m.get("tta_" + p["tta"])     # scored for the held-out splits only
        extra = f"{tta['accuracy']:>12.4f}" if tta else ""
        print(f"{split:<8}{m['n']:>8}{m['loss']:>9.4f}{m['accuracy']:>10.4f}{m['macro_f1']:>10.4f}{extra}")
    if "augmented" in metrics.get("val", {}):
        print(f"val, augmented as in training (the FER-2013 report's val_accuracy): "
              f"{metrics['val']['augmented']['accuracy']:.4f}")
    watched = "val" if "val" in metrics else "train"
    warning = cnn_metrics.stuck_on_one_class(metrics[watched], metrics["classes"])
    if warning:
        print(warning.replace("these images", "the validation images" if watched == "val" else "the training images"))


def training_batches(images, labels, n_classes, batch, p, shard=(0, 1), class_weight=None):
    """The shuffled, live-augmented training batches of the epochs still to train, and a
    picture of the augmentation in out_dir.

    They start at the first epoch not backed up, and every batch is drawn from (seed,
    epoch, batch), so a resumed run sees what the unbroken run saw. A fine-tune (init_model)
    keeps the base run's seed (it keeps the split), and draws its batches from one moved off it.
    """
    import cnn_model
    seed = p["seed"] + (500 if p["init_model"] else 0)
    augmenter = cnn_data.live_augmenter(p, seed) if p["live_augment"] else None
    if augmenter is not None:
        import cnn_plots
        cnn_plots.plot_augmented(images, augmenter, os.path.join(p["out_dir"], "augmented_examples.png"), p["seed"])
    return cnn_data.make_dataset(images, labels, n_classes, batch, training=True, augmenter=augmenter, seed=seed,
                                 mixup=p["mixup"], shard=shard, epochs=(cnn_model.finished_epochs(p["out_dir"]), p["epochs"]),
                                 class_weight=class_weight)


def score_augmented(model, images, labels, classes, p):
    """Accuracy and loss on the validation faces augmented once as the training faces are (seeded):
    Keras's ImageDataGenerator(validation_split=...) augments its validation subset too, so this is
    the metric the FER-2013 report's val_accuracy figures are, beside our clean one."""
    import keras
    import cnn_model
    augmenter = cnn_data.live_augmenter(p, p["seed"] + 7)
    faces = np.concatenate([keras.ops.convert_to_numpy(keras.ops.cast(augmenter(images[i:i + 512].astype(np.float32),
                                                                               training=True), "float32"))
                            for i in range(0, len(images), 512)])
    result = cnn_metrics.score(cnn_model.predict(model, faces), labels, classes)
    return {k: result[k] for k in ("loss", "accuracy", "macro_f1")}


def training_time(history):
    """Seconds spent in the run's epochs, across resumes (blank for epochs logged before this was kept)."""
    return round(sum(float(row.get("seconds") or 0) for row in history), 1)


def describe_splits(data, p):
    """One line per split: where its images came from and how many there are."""
    from_csv = p["data_dir"].endswith(".csv")
    source = f"{p['data_dir']} (Training rows)" if from_csv else os.path.join(p["data_dir"], "train")
    val_dir = os.path.join(p["data_dir"], "val")
    if not from_csv and os.path.isdir(val_dir):
        lines = {"train": f"train: {len(data['train'][1]):,} images of {source}",
                 "val": f"val: {len(data['val'][1]):,} images of {val_dir}"}
    elif not len(data["val"][1]):
        lines = {"train": f"train: {len(data['train'][1]):,} images of {source}, all of them",
                 "val": "val: none held out (validation_split 0): model.keras is the last epoch"}
    else:
        lines = {"train": f"train: {len(data['train'][1]):,} images of {source}, less the validation split",
                 "val": f"val: {len(data['val'][1]):,} images held out of {source} "
                        f"(validation_split {p['validation_split']}, stratified, seed {p['seed']})"}
    for split, usage in (("test", "PublicTest"), ("private_test", "PrivateTest")):
        if split in data:
            where = f"{p['data_dir']} ({usage} rows)" if from_csv else os.path.join(p["data_dir"], split)
            lines[split] = f"{split}: {len(data[split][1]):,} images of {where}"
    if p["balance_count"]:
        lines["balanced"] = (f"balanced: classes with under {p['balance_count'] // 2} training images dropped "
                             f"from every split, the others undersampled to {p['balance_count']}")
    return lines


def other_faces(path, data_dir):
    """Whether a saved model was trained on other faces than data_dir's: some class of data_dir's train/
    is not among its classes (a set of your own, fine-tuned from the shipped model). Then it cannot
    have trained on this run's validation faces. A subset of its classes may be its own faces."""
    theirs = (cnn_storage.stored_meta(path) or {}).get("classes", [])
    train = os.path.join(data_dir, "train")
    if not os.path.isdir(train):
        return False
    # Class folders as the loader reads them: hidden ones and empty ones are no classes.
    ours = [d for d in os.listdir(train) if not d.startswith(".") and os.path.isdir(os.path.join(train, d))
            and any(not f.startswith(".") for _, _, files in os.walk(os.path.join(train, d)) for f in files)]
    return bool(set(ours) - set(theirs))


def start_from(model, path, classes, x_fit, y_fit, class_weight):
    """Copy the weights of a saved model into the new one (fine-tuning); refuse a mismatch.
    (Its validation split was checked before the data was decoded.)

    A model of other classes (the shipped model, for your own set) gives every layer but its head,
    the last Dense: the head is new, for this data's classes, and is fitted first on the training
    faces as the borrowed layers see them (fit_head), before the whole network trains. A random head
    trained with the rest would send large, random gradients into layers that already see faces
    well (linear probing, then fine-tuning: Kumar et al., ICLR 2022)."""
    import cnn_model
    try:
        source, source_classes, _ = cnn_model.load_model(path)
        if source_classes == classes:
            model.set_weights(source.get_weights())
            print(f"starting from the weights of {path}")
            return
        if len(source.layers) != len(model.layers):
            raise ValueError(f"{len(source.layers)} layers there, {len(model.layers)} here")
        for mine, theirs in zip(model.layers[:-1], source.layers[:-1]):
            mine.set_weights(theirs.get_weights())
    except ValueError as error:
        stored = (cnn_storage.stored_meta(path) or {}).get("params", {})
        hint = f"; give --preset={stored['preset']}" if stored.get("preset") else ""
        sys.exit(f"error: --init_model={path}: a different network than the preset's "
                 f"({str(error).splitlines()[0]}){hint}")
    except cnn_model.ModelError as error:
        sys.exit(f"error: --init_model: {error}")
    print(f"starting from every layer of {path} but its head: its classes ({', '.join(source_classes)}) are not "
          f"this data's ({', '.join(classes)}); a new head for {len(classes)} classes, fitted first")
    fit_head(model, x_fit, y_fit, len(classes), class_weight)


HEAD_EPOCHS = 30        # passes of the new head over the training faces' features: it is one Dense layer
HEAD_LEARNING_RATE = 1e-3


def fit_head(model, x_fit, y_fit, n_classes, class_weight):
    """Fit the model's last Dense layer alone on what the layers before it make of the training faces
    (computed once, in inference mode: no dropout or augmentation), with the class weights."""
    import keras
    features = keras.Model(model.inputs, model.layers[-2].output).predict(x_fit, batch_size=256, verbose=0)
    head = keras.Sequential([keras.Input(features.shape[1:]),
                             keras.layers.Dense(n_classes, activation="softmax", dtype="float32")])
    soft = y_fit.ndim == 2                  # a teacher's probabilities (teach) rather than class numbers
    head.compile(optimizer=keras.optimizers.Adam(HEAD_LEARNING_RATE),
                 loss="categorical_crossentropy" if soft else "sparse_categorical_crossentropy",
                 metrics=["categorical_accuracy" if soft else "accuracy"])
    fitted = head.fit(features.astype(np.float32), y_fit, epochs=HEAD_EPOCHS, batch_size=64, verbose=0,
                      class_weight=class_weight)
    model.layers[-1].set_weights(head.layers[-1].get_weights())
    print(f"the new head, fitted alone for {HEAD_EPOCHS} passes: training accuracy "
          f"{fitted.history['categorical_accuracy' if soft else 'accuracy'][-1]:.4f}; now the whole network trains")


def wants_demo_set(p, argv):
    """Fall back to the demo set only when data_dir is the untouched default and missing:
    a folder the user named (on the command line or in an experiment) must exist."""
    named = any(a.startswith("--data_dir=") for a in argv) or "data_dir" in cnn_params.EXPERIMENTS.get(p["experiment"], {})
    return not named and p["data_dir"] == cnn_params.data_dir and not os.path.isdir(p["data_dir"])


if __name__ == "__main__":
    main(sys.argv[1:])
