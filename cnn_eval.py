"""Score new face images, photos and videos with a saved model: every face in each.

    python cnn_eval.py                                  # log/model.keras (else the fast model) on test_images/
    python cnn_eval.py photo.jpg group.png clip.mp4     # every face in each, no training needed
    python cnn_eval.py --model=PATH --images=DIR        # DIR: class subfolders, or plain image files
    python cnn_eval.py my_photos/ photo.jpg             # a folder named on its own is read as --images reads it
    python cnn_eval.py --tta=flip                       # average each face with its mirror
    python cnn_eval.py --tta=crops                      # ten-crop: 4 corners and centre, each mirrored
    python cnn_eval.py --detect_faces=False photo.jpg   # the whole image is the face (default auto: found in photos)
    python cnn_eval.py --detector=mtcnn photo.jpg       # MTCNN (needs TensorFlow) or haar instead of YuNet
    python cnn_eval.py --annotate=DIR photo.jpg         # where the copies with boxes go (default annotated/)
    python cnn_eval.py --hide_faces=True group.jpg      # those copies with each face pixelated, to share them
    python cnn_eval.py --fps=5 clip.mp4                 # frames scored per second of video (default 2)
    python cnn_eval.py --camera=0                       # a webcam, live, until Ctrl-C
    python cnn_eval.py --smooth=1 clip.mp4              # each person's answer averaged over 1 s (default 0.5; 0: none)
    python cnn_eval.py --detector=mtcnn --search_every=0 clip.mp4   # MTCNN searches every frame (default:
                                                        # every 0.5 s, following its faces in between)
    python cnn_eval.py --model=a.keras,b.keras          # an ensemble: the models' probabilities averaged
    python cnn_eval.py --model=shipped photo.jpg        # the shipped network in Keras (needs TensorFlow)
    python cnn_eval.py --model=fastest clip.mp4         # a smaller network in int8: 3x faster again, 2 points less accurate
    python cnn_eval.py --max_image_pixels=200000000 big.png   # allow a larger image (default 89,478,485 pixels)

Without --model it scores log/model.keras after a training run, or else the fast model,
pretrained/fer2013_int8.tflite (--model=fast: the shipped network in int8, as accurate, several
times faster, run without TensorFlow). A model trained on the cartoon demo set scores
test_images/ alone; named photos and videos then get the fast model. A small image that is
itself a face (FER-2013's, test_images/) is scored whole; in a larger photo every face is found
(YuNet, or --detector=mtcnn or haar) and scored (cnn_faces.score_picture, the Python API's own path); and a copy with each box, class and confidence goes into annotated/ beside
eval.json. A video (any file OpenCV reads) is sampled --fps times a second; each face in it is
given a person number that stays with that person while they are in view (cnn_people.py), and
an answer smoothed over their last --smooth seconds. Its entry in eval.json has every frame's
faces and each person seen ("people"), a CSV beside it a row per face, and timeline.png the
probability of each class over time, a panel per person.

A subfolder named after a class of the model is scored against that class (a file's
largest face); any other subfolder, and loose files, are predicted only. It prints
one row per face, then accuracy and loss over the labelled files, and writes
eval.json beside the model, the first of an ensemble (the shipped model's: in the
current folder; or to --out=PATH), and eval.png: each file's face as the network
saw it, with its top-3 classes.
"""
import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import cnn_data
import cnn_faces
import cnn_metrics
import cnn_out_dir
import cnn_people
import cnn_storage
import cnn_params
import cnn_photos

SHIPPED = cnn_faces.SHIPPED
OPTIONS = {"model": "", "images": "test_images", "out": "", "tta": "none", "detect_faces": "auto",
           "detector": cnn_faces.DEFAULT_DETECTOR, "annotate": "", "hide_faces": "False", "fps": "2", "camera": "",
           "search_every": str(cnn_faces.SEARCH_EVERY), "smooth": str(cnn_faces.SMOOTH_SECONDS),
           "max_image_pixels": str(cnn_data.MAX_PIXELS)}
SHEET_MAX = 64    # faces drawn on eval.png


def parse_args(argv):
    """The --options above, plus image and video files named on their own."""
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        sys.exit(0)
    options, files = cnn_params.read_options(argv, OPTIONS, files=True)
    if options["tta"] not in cnn_params.CHOICES["tta"]:
        sys.exit(f"error: --tta={options['tta']}: expected one of: {', '.join(cnn_params.CHOICES['tta'])}")
    if options["detect_faces"] not in ("auto", "True", "False"):
        sys.exit(f"error: --detect_faces={options['detect_faces']}: expected auto, True or False")
    options["detect_faces"] = {"auto": "auto", "True": True, "False": False}[options["detect_faces"]]
    if options["detector"] not in cnn_faces.DETECTORS:
        sys.exit(f"error: --detector={options['detector']}: expected one of: {', '.join(cnn_faces.DETECTORS)}")
    if options["hide_faces"] not in ("True", "False"):
        sys.exit(f"error: --hide_faces={options['hide_faces']}: expected True or False")
    options["hide_faces"] = options["hide_faces"] == "True"
    for name, allowed, takes in (
            ("fps", lambda v: v > 0, "frames per second, a number above 0, like --fps=2"),
            ("search_every", lambda v: v >= 0, f"seconds, a number from 0 up, like --search_every="
                                                f"{cnn_faces.SEARCH_EVERY} (0: search every frame for faces)"),
            ("smooth", lambda v: 0 <= v < float("inf"), f"seconds, a number from 0 up, like --smooth="
                                                        f"{cnn_faces.SMOOTH_SECONDS} (0: each frame's answer alone)")):
        try:
            value = float(options[name])
            assert allowed(value)
        except (ValueError, AssertionError):
            sys.exit(f"error: --{name}={options[name]}: expected {takes}")
        options[name] = value
    if not options["max_image_pixels"].isdigit() or int(options["max_image_pixels"]) < 1:
        sys.exit(f"error: --max_image_pixels={options['max_image_pixels']}: expected a whole number of pixels, "
                 f"like --max_image_pixels={cnn_data.MAX_PIXELS}")
    cnn_data.set_max_pixels(int(options["max_image_pixels"]))
    if options["camera"] and not (options["camera"].isdigit() or os.path.isfile(options["camera"])):
        sys.exit(f"error: --camera={options['camera']}: expected a camera number, like --camera=0, "
                 f"or a video file to stand in for one")
    if options["out"] and os.path.isdir(options["out"]):
        sys.exit(f"error: --out={options['out']}: a folder; expected the JSON file to write, "
                 f"like --out={os.path.join(options['out'], 'eval.json')}")
    if options["out"] and not options["out"].lower().endswith(".json"):
        # eval.png, eval.jsonl and the frames files are named after it: another suffix could name a photo
        sys.exit(f"error: --out={options['out']}: expected the .json file to write, like --out=results.json")
    if options["camera"] and files:
        sys.exit(f"error: --camera={options['camera']} with files named too ({' '.join(files[:3])}): score the "
                 f"camera alone, or the files without --camera")
    return options, files


def shown(path):
    """A path as a user would type it from here: relative when it lies below this folder."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def choose_model(options, images_named):
    """The model files to score with, saying which when none was named: log/model.keras after a
    training run, else the fast model (the shipped network in int8, run without TensorFlow). A
    model trained on the cartoon demo set is the default only for test_images/: photos and videos
    named on the command line are then scored by the fast model, and the choice is said."""
    if options["model"]:
        paths = cnn_faces.model_paths(options["model"])
        if not all(paths):
            sys.exit(f"error: --model={options['model']}: an empty name in the list; expected PATH or PATH,PATH,... "
                     f"or one of {', '.join(cnn_faces.MODELS)}")
        return paths
    trained = os.path.join("log", "model.keras")
    if os.path.exists(trained):
        stored = (cnn_storage.stored_meta(trained) or {"params": {}})["params"]
        trained_on = os.path.normpath(stored.get("data_dir", "-"))
        cartoons = {os.path.normpath(stored.get("demo_dir", "data/demo")): "the built-in cartoon demo set",
                    os.path.normpath(stored.get("qider_dir", "data/qider")): "the cartoon stand-in for QIDER"}
        if trained_on not in cartoons or not images_named:
            return [trained]
        print(f"note: {trained} was trained on {cartoons[trained_on]}, not on real faces: scoring with the "
              f"fast model instead (--model={trained} to use it anyway)")
    else:
        print(f"no log/model.keras here: scoring with the fast model {shown(cnn_faces.FAST)} (the shipped network "
              f"in int8, no training needed; --model=shipped for its Keras original)")
    return [cnn_faces.FAST]


def check_outputs(out, annotate, sources):
    """Exit in one line when an output would land on an input: the annotated copies in the very
    folder of the photos they copy, or a file where their folder should be."""
    if not annotate:
        return
    if os.path.isfile(annotate):
        sys.exit(f"error: --annotate={annotate}: a file; expected the folder for the annotated copies")
    here = os.path.realpath(annotate)
    for path, _ in sources:
        if os.path.exists(path) and os.path.realpath(os.path.dirname(path)) == here:
            sys.exit(f"error: --annotate={annotate}: the folder of {path}, which is being scored; its annotated "
                     f"copy would replace it. Give another folder, like --annotate=annotated_copies")


def own_names(sources):
    """Each source's name for what is written about it (annotated copy, frames file, CSV, timeline):
    its file name without the suffix, with its folder's name before it where two sources share one
    (photos/a.jpg and more/a.jpg), and a number after where that is not enough."""
    stem = lambda path: os.path.splitext(os.path.basename(str(path)))[0].replace(" ", "_")
    counts = {}
    for path, _ in sources:
        counts[stem(path)] = counts.get(stem(path), 0) + 1
    names, given = {}, set()
    for path, _ in sources:
        name = stem(path)
        if counts[name] > 1:
            name = f"{os.path.basename(os.path.dirname(os.path.abspath(str(path))))}_{name}"
        unique, k = name, 2
        while unique in given:
            unique, k = f"{name}_{k}", k + 1
        given.add(unique)
        names[path] = unique
    return names


def gather(images_dir, files, classes):
    """The (path, true class or None) pairs to score: the files named on their own (a folder among them
    is read as --images reads one), else the folder --images names."""
    if files:
        pairs = []
        for f in files:
            pairs += read_folder(f, classes) if os.path.isdir(f) else [(f, None)]
        return pairs
    if os.path.isfile(images_dir):
        sys.exit(f"error: --images={images_dir}: a file where a folder is expected; to score one file, name it on "
                 f"its own: python cnn_eval.py {images_dir}")
    if not os.path.isdir(images_dir):
        sys.exit(f"error: {images_dir}: no such folder; give --images=DIR or image files")
    return read_folder(images_dir, classes)


def read_folder(images_dir, classes):
    """A folder's loose images (no true class) and its class subfolders' images; a class folder the
    model does not know is reported, and its images are scored without a true class."""
    pairs = []
    for entry in sorted(os.listdir(images_dir)):
        path = os.path.join(images_dir, entry)
        if os.path.isfile(path):
            pairs.append((path, None))
        elif os.path.isdir(path) and not entry.startswith("."):
            known = entry in classes
            if not known:
                print(f"warning: {path}: {entry!r} is not a class of this model ({', '.join(classes)}); "
                      f"its images are predicted but left out of the accuracy")
            pairs += [(os.path.join(path, f), entry if known else None) for f in sorted(os.listdir(path))
                      if os.path.isfile(os.path.join(path, f))]
    return pairs


PREDICTIONS_IN_JSON = 1000   # files whose entries eval.json holds; more, and eval.jsonl alone holds them
FRAMES_IN_JSON = 2000        # frames a video's entry holds; more, and its frames file alone holds them


def main(argv):
    options, files = parse_args(argv)
    named = bool(files or options["camera"]) or os.path.abspath(options["images"]) != os.path.abspath("test_images")
    paths = choose_model(options, named)
    try:
        scorer = cnn_faces.load_scorer(paths)
    except cnn_faces.FaceError as error:
        sys.exit(f"error: {error}")
    classes = scorer[1]

    # eval.json goes beside the model; for the shipped model, into the current folder (pretrained/ is part
    # of the toolkit, not a place for one person's results).
    beside = "." if os.path.abspath(paths[0]) in cnn_faces.MODELS.values() else os.path.dirname(os.path.abspath(paths[0]))
    out = os.path.normpath(options["out"] or os.path.join(beside, "eval.json"))
    annotate = "" if options["annotate"] == "False" else (options["annotate"] or
                                                             os.path.join(os.path.dirname(out), "annotated"))
    if options["camera"]:
        sources = [(options["camera"] if not options["camera"].isdigit() else f"camera {options['camera']}", None)]
    else:
        sources = gather(options["images"], files, classes)
        if not sources:
            sys.exit(f"error: {' '.join(files[:3]) if files else options['images']}: no files in it to score")
    check_outputs(out, annotate, sources)
    cnn_out_dir.make_folder(os.path.dirname(os.path.abspath(out)), f"--out={out}")
    # One scoring run per eval.json: two would each say they wrote it, and keep only one's entries.
    lock = os.path.splitext(out)[0] + ".lock"
    cnn_out_dir.claim(lock, out, "--out")
    made = False
    try:
        made = annotate and cnn_out_dir.make_folder(annotate, f"--annotate={annotate}")   # checked before any work
        score_all(sources, options, scorer, paths, out, annotate)
    finally:
        cnn_out_dir.release(lock)
        if made and not os.listdir(annotate):       # nothing annotated (faces alone, videos without faces)
            os.rmdir(annotate)


def score_all(sources, options, scorer, paths, out, annotate):
    """Score every source, print its rows, and write eval.json, eval.jsonl and eval.png."""
    classes = scorer[1]
    names = own_names(sources)

    # 1. Each file in turn: every face found (or the whole image when it is a face already, or when no
    #    face is found), scored, printed and drawn. Its entry goes to eval.jsonl at once, so a run
    #    that is killed keeps what it scored, and the same command carries on after it.
    settings = {"model": ",".join(paths), "detector": options["detector"], "tta": options["tta"],
                "detect_faces": options["detect_faces"], "fps": options["fps"], "search_every": options["search_every"],
                "smooth": options["smooth"], "hide_faces": options["hide_faces"]}
    log_path = os.path.splitext(out)[0] + ".jsonl"
    kept = carried_on(log_path, settings)
    log = open(log_path, "a" if kept else "w")
    if not kept:
        print(json.dumps({"settings": settings}), file=log, flush=True)
    print(f"\n{'file':<48}{'true':>10}{'predicted':>11}{'confidence':>12}  face")
    predictions, sheet_faces, n_scored, n_faces = [], [], 0, 0
    scored_probabilities, labels = [], []
    try:
        for entry, face_pixels in score_each(sources, kept, options, scorer, out, annotate, log, names):
            n_scored += 1
            n_faces += entry["n_faces"] if "frames_file" in entry else len(entry["faces"])
            row = [entry["probabilities"].get(c, 0.0) for c in classes]     # {} for a video with no face
            if entry["true"] is not None:
                scored_probabilities.append(row)
                labels.append(classes.index(entry["true"]))
            if len(predictions) <= PREDICTIONS_IN_JSON:      # one past the limit says "too many"
                predictions.append(entry)
            if face_pixels is not None and len(sheet_faces) < SHEET_MAX:
                sheet_faces.append((face_pixels, entry["path"], entry["true"], row))
    except KeyboardInterrupt:
        log.close()
        sys.exit(f"stopped (Ctrl-C): the {n_scored} files scored so far are kept in {log_path}; "
                 f"the same command carries on after them")
    if not n_scored:
        log.close()
        sys.exit(f"error: no image could be read from {' '.join(str(p) for p, _ in sources[:3]) or options['images']}")

    # 2. Accuracy over the labelled files, eval.json, and eval.png of the photos' largest faces.
    result = cnn_metrics.score(np.array(scored_probabilities).reshape(-1, len(classes)),
                               np.array(labels, dtype=np.int64), classes)
    report = {"model": ",".join(paths), "classes": classes, "tta": options["tta"], "detector": options["detector"],
              "n_scored": n_scored, "n_faces": n_faces, "accuracy": result["accuracy"], "loss": result["loss"],
              "n_labelled": result["n"], "per_class": result.get("per_class", {})}
    if len(predictions) <= PREDICTIONS_IN_JSON:
        report["predictions"] = [with_frames(e) for e in predictions]
    else:
        report["predictions_file"] = log_path
    cnn_storage.write_json(out, report)
    print(json.dumps({"finished": out}), file=log, flush=True)
    log.close()
    sheet = os.path.splitext(out)[0] + ".png"
    if sheet_faces:
        # A sheet of thousands of faces would take minutes and gigabytes to draw; the
        # first SHEET_MAX show what the network saw, eval.json holds every prediction.
        cnn_photos.contact_sheet(sheet_faces, classes, sheet)
    n_photos = sum(1 for e in predictions if "frames_file" not in e)
    shown = "" if n_photos <= SHEET_MAX else f" (the sheet shows the first {SHEET_MAX})"
    print(f"\nwrote {out}" + (f" and {sheet}{shown}" if sheet_faces else "") +
          (f"; every entry, as it was scored, in {log_path}" if "predictions_file" in report else "") +
          (f"; the faces drawn on copies in {annotate}/" if annotate and os.path.isdir(annotate) else ""))
    if result["n"]:
        correct = int(round(result["accuracy"] * result["n"]))
        print(f"loss: {result['loss']:.4f}")
        print(f"accuracy: {result['accuracy']:.4f} ({correct}/{result['n']})")


def score_each(sources, kept, options, scorer, out, annotate, log, names):
    """Each (path, true class) in turn, scored: its entry and, for a photo, its largest face's
    pixels (None for a video, or an entry kept from an earlier run), the entry written to the log
    at once. A file that cannot be read is named and skipped. The next photo is decoded and its
    faces found in a second thread while this one's are scored, drawn and written: decoding,
    finding faces and writing a copy all let go of Python's lock."""
    n_videos = sum(1 for path, _ in sources if options["camera"] or cnn_photos.is_video(path))
    is_photo = lambda path: not (options["camera"] or cnn_photos.is_video(path)) and path not in kept
    input_shape = scorer[0][0].input_shape[1:3]

    def read_and_search(path):
        colour = cnn_faces.read_picture(path)
        return colour, cnn_faces.boxes_to_score(colour, input_shape, options["detect_faces"], options["detector"])
    with ThreadPoolExecutor(1) as reader:
        prepared = {}           # k: the future (picture, boxes) of the k-th source, a photo

        def prepare(k):
            if k < len(sources) and is_photo(sources[k][0]) and k not in prepared:
                prepared[k] = reader.submit(read_and_search, sources[k][0])
        for k, (path, true) in enumerate(sources):
            prepare(k)
            prepare(k + 1)
            face_pixels = None
            try:
                if path in kept:
                    entry = kept[path]
                elif options["camera"] or cnn_photos.is_video(path):
                    entry = score_video(path, options, scorer, out, annotate, names[path], several=n_videos > 1)
                else:
                    entry, face_pixels = score_photo(path, true, options, scorer, annotate, *prepared.pop(k).result(),
                                                     names[path])
            except cnn_faces.DetectorError as error:     # no file can be scored: said once
                sys.exit(f"error: {error}")
            except ValueError as error:          # cnn_faces.FaceError names the file; a video's error does not
                print(f"skipped {error}" if isinstance(error, cnn_faces.FaceError) else f"skipped {path}: {error}")
                continue
            except ImportError as error:         # the detector's package is not installed
                sys.exit(f"error: {error}")
            if "frames_file" in entry:
                print_row(path, true, entry)
            else:
                for face in entry["faces"]:
                    print_row(path, true, face)
            if path not in kept:
                print(json.dumps({"entry": entry}), file=log, flush=True)
            yield entry, face_pixels


def carried_on(log_path, settings):
    """The entries, by path, of an earlier run into the same eval.jsonl that stopped before its end
    with these settings, said in a line; {} when there is none (that file is then started afresh)."""
    if not os.path.isfile(log_path):
        return {}
    lines = []
    with open(log_path) as f:
        for line in f:
            try:
                lines.append(json.loads(line))
            except ValueError:           # the line a kill cut short
                break
    if not lines or lines[0].get("settings") != settings or any("finished" in line for line in lines):
        return {}
    kept = {line["entry"]["path"]: line["entry"] for line in lines[1:] if "entry" in line}
    if kept:
        print(f"note: {log_path} holds {len(kept)} files scored by an earlier run with these settings that "
              f"stopped before its end: carrying on after them (delete it to score them again)")
    return kept


def with_frames(entry):
    """A video's entry with its frames read back from its frames file, when there are few enough."""
    if "frames_file" not in entry or entry["n_frames"] > FRAMES_IN_JSON or not os.path.isfile(entry["frames_file"]):
        return entry
    with open(entry["frames_file"]) as f:
        return dict(entry, frames=[json.loads(line) for line in f])


def score_photo(path, true, options, scorer, annotate, colour, boxes, name):
    """One photo's entry in eval.json (every face, its own answer its largest face's), its rows
    printed, its annotated copy written (as `name`, own_names' for it); and the largest face's
    pixels, for the contact sheet. colour: the photo, read by cnn_faces.read_picture; boxes: its
    faces, as cnn_faces.boxes_to_score gives them."""
    input_shape = scorer[0][0].input_shape[1:3]
    frames = cnn_data.frame_count(path)
    if frames > 1:
        print(f"note: {path}: an animation of {frames} frames; only its first is scored")
    if min(colour.size) < 16:
        print(f"note: {path}: {colour.width}x{colour.height} pixels, too small to show a face; scored whole anyway")
    faces = cnn_faces.score_picture(colour, scorer, options["detector"], options["detect_faces"], options["tta"], boxes)
    found = bool(faces)
    if not faces:               # the command line falls back to the whole picture (the API returns [])
        print(f"note: {path}: no face found; using the whole image")
        faces = cnn_faces.score_picture(colour, scorer, options["detector"], False, options["tta"])
    entry = {"path": path, "true": true, "faces": [face_entry(f["box"], f["emotions"]) for f in faces]}
    if not found and options["detect_faces"] is not False:
        entry["no_face_found"] = True       # its one "face" is the whole picture
    entry.update(predicted=entry["faces"][0]["predicted"], probabilities=entry["faces"][0]["probabilities"])
    if annotate and options["detect_faces"] is not False and not cnn_faces.is_face_crop(colour.size, input_shape):
        os.makedirs(annotate, exist_ok=True)
        copy = os.path.join(annotate, name + os.path.splitext(path)[1])
        draw_copy(colour, entry["faces"], options["hide_faces"], copy)
    return entry, faces[0]["pixels"]


def draw_copy(colour, faces, hide, copy):
    """The annotated copy of a photo, drawn and written; a copy that cannot be written (a full disk, a
    read-only folder) is said in one line, and the scores stand."""
    try:
        cnn_photos.draw_faces(colour, faces, hide).save(copy)
    except (OSError, ValueError) as error:
        print(f"warning: {copy}: the annotated copy could not be written ({error})")


def face_entry(box, emotions):
    """One face of eval.json, as the `fer` package writes it: its box in the image's pixels."""
    return {"box": [int(v) for v in box], "predicted": max(emotions, key=emotions.get),
            "probabilities": {c: round(float(q), 5) for c, q in emotions.items()}}


def print_row(path, true, face):
    shown = path if len(path) <= 47 else "..." + path[-44:]
    n_people = len(face.get("people", []))
    where = (f"{face['n_frames']} frames, {n_people} {'person' if n_people == 1 else 'people'}" if "frames_file" in face else
             ",".join(map(str, face["box"])))
    if face["predicted"] is None:               # a video in which no face was found
        print(f"{shown:<48}{true or '-':>10}{'no face':>11}{'-':>12}  {where}")
        return
    confidence = max(face["probabilities"].values())
    print(f"{shown:<48}{true or '-':>10}{face['predicted']:>11}{confidence:>12.3f}  {where}")


def score_video(path, options, scorer, out, annotate, name, several):
    """A video's entry in eval.json, or a camera's, scored frame by frame as it is read. Each face is
    given its person's number and smoothed answer (cnn_people); each frame's faces go to a frames
    file (JSON lines) and a CSV beside eval.json as they come, and with annotate, the frame with its
    boxes drawn to the annotated video. The entry lists the people seen, and the timeline plots
    each of them (the MAX_PANELS seen longest); the video's own answer is the class of the highest
    mean over every face. A camera (--camera) runs live: the newest frame each time, a line printed
    per frame (or a window, where there is a screen), until Ctrl-C or the end of the file standing in."""
    from PIL import Image
    classes = scorer[1]
    live = bool(options["camera"])
    source = int(options["camera"]) if options["camera"].isdigit() else path
    rate, frames = cnn_photos.live_frames(source) if live else cnn_photos.video_frames(source, options["fps"])
    stem = os.path.splitext(out)[0]
    entry = {"path": str(path), "true": None, "frames_file": f"{stem}_{name}_frames.jsonl",
             "faces_csv": f"{stem}_{name}_faces.csv", "n_frames": 0, "n_faces": 0,
             "timeline": os.path.join(os.path.dirname(out), f"{name}_timeline.png" if several else "timeline.png")}
    if annotate:
        os.makedirs(annotate, exist_ok=True)
        entry["annotated"] = os.path.join(annotate, name + ".mp4")
    drawn = cnn_photos.VideoOut(entry.get("annotated"), rate) if annotate else None
    window = cnn_photos.live_window() if live else None
    people = cnn_people.People(smooth_seconds=options["smooth"])
    series = {}                 # person: (times, probabilities), for the timeline
    total = np.zeros(len(classes))
    with open(entry["frames_file"], "w") as frames_log, open(entry["faces_csv"], "w", newline="") as table:
        rows = csv.writer(table)
        rows.writerow(["time_s", "person", "x", "y", "w", "h", "predicted", *classes])
        try:
            found = cnn_faces.followed_faces(frames, options["detector"], options["search_every"])
            for time_s, rgb, boxes in (found if live else cnn_photos.ahead(found)):
                colour = Image.fromarray(rgb)
                faces = people.follow(time_s, cnn_faces.score_picture(colour, scorer, options["detector"], True,
                                                                      options["tta"], boxes), rgb)
                said = [dict(face_entry(f["box"], f["emotions"]), person=f["person"],
                             smoothed={c: round(float(q), 5) for c, q in f["smoothed"].items()}) for f in faces]
                frame = {"time_s": round(time_s, 4), "faces": said}
                print(json.dumps(frame), file=frames_log, flush=True)
                for face in said:
                    rows.writerow([frame["time_s"], face["person"], *face["box"], face["predicted"],
                                   *(face["probabilities"][c] for c in classes)])
                    times, probabilities = series.setdefault(face["person"], ([], []))
                    times.append(time_s)
                    probabilities.append([face["probabilities"][c] for c in classes])
                    total += probabilities[-1]
                table.flush()
                entry["n_frames"] += 1
                entry["n_faces"] += len(faces)
                if live and window is None:
                    print(f"{path} at {time_s:.1f} s: " + ("; ".join(
                        f"person {f['person']}: {max(f['smoothed'], key=f['smoothed'].get)} "
                        f"{max(f['smoothed'].values()):.2f} at {','.join(map(str, f['box']))}"
                        for f in said) or "no face"), flush=True)
                if drawn or window:
                    picture = np.asarray(cnn_photos.draw_faces(colour, said, options["hide_faces"]))
                    if drawn:
                        drawn.write(picture, time_s)
                    if window:
                        window(picture)
        except KeyboardInterrupt:      # Ctrl-C (or q in the window) ends a live run, which keeps what it saw
            if not live:
                raise
        finally:
            if drawn:
                drawn.close()
    if not entry["n_frames"]:
        raise ValueError("a video without a readable frame")
    entry["people"] = people.summary()
    if entry["n_faces"]:
        mean = total / entry["n_faces"]
        entry.update(predicted=classes[int(np.argmax(mean))],
                     probabilities={c: round(float(q), 5) for c, q in zip(classes, mean)})
    else:                       # no face in any frame: no answer, rather than the first class at 0
        entry.update(predicted=None, probabilities={})
    longest = sorted(series.items(), key=lambda item: -len(item[1][0]))[:cnn_photos.MAX_PANELS]
    cnn_photos.draw_timeline([(f"person {person}", times, probabilities) for person, (times, probabilities)
                              in sorted(longest)] or [("no face", [], [])], classes, entry["timeline"],
                             f"{path}: each class over time" + (f" ({len(longest)} of {len(series)} people)"
                                                                if len(series) > len(longest) else ""))
    return entry


if __name__ == "__main__":
    main(sys.argv[1:])
