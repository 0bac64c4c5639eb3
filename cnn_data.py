"""From a folder of face images to tf.data pipelines that feed the network.

    data_dir/train/<class>/*   (required)
    data_dir/val/<class>/*     (optional; otherwise validation_split of train/ is held out)
    data_dir/test/<class>/*    (optional)

The story: list the files of each split, decode every file once to a grayscale
uint8 array of img_height x img_width (the in-memory cache: FER-2013 is 74 MB
decoded), hold out the validation split (its rules: cnn_split.py), balance the training classes
with augment_dataset, weigh them with class_weights, and wrap the arrays in a
tf.data pipeline that shuffles, augments on the fly, batches and prefetches
(or, on Keras's other backends, a keras.utils.PyDataset that does the same), every
random draw a function of (seed, epoch, batch), so that a resumed run is the run
that would have been.
A file that cannot be used is reported by path and reason, and skipped. One story from
files to batches, so one file; the split's rules, which models of other runs are checked
against, live in cnn_split.py.
"""
import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFile, ImageOps

import cnn_split

BLANK_STD = 1.0   # a decoded image whose pixel std is below this is "blank" (FER-2013 has 13)


class DataError(Exception):
    """A problem with the user's data folder, said in one line."""


# ------------------------------------------------------------------ decoding

def decode_image(path, height, width):
    """Read one image file as a (height, width) uint8 grayscale array.

    Any format Pillow reads: JPEG (progressive, CMYK), PNG (RGBA, palette,
    16-bit), BMP, GIF (first frame), ... Raises ValueError with the reason
    when the file is not a usable image. (Finding the face in a photo first
    is cnn_faces.py's work.)
    """
    img = to_grey(read_image(path, (width * 2, height * 2)))
    img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


# An image that declares more pixels than this is refused before it is decoded: a PNG of a few
# kilobytes can declare billions (a decompression bomb). Pillow's own limit, 89,478,485 pixels
# (about 9,459 x 9,459); --max_image_pixels raises it (from Python: set cnn_data.MAX_PIXELS).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


class TooLarge(ValueError):
    """An image that declares more pixels than MAX_PIXELS."""


def set_max_pixels(limit):
    """Raise (or lower) MAX_PIXELS; Pillow's own check is kept no lower, so it does not refuse first."""
    global MAX_PIXELS
    MAX_PIXELS = limit
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limit)


def check_pixels(width, height):
    """TooLarge, in words for the user, when width x height is over MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise TooLarge(f"declares {width}x{height} = {width * height:,} pixels, over the limit of {MAX_PIXELS:,} "
                       f"(a possible decompression bomb); if the image is genuine, raise the limit with "
                       f"--max_image_pixels={width * height}")


def read_image(path, draft_size=None):
    """The image in a file as a Pillow image (a big JPEG decoded at reduced scale towards
    draft_size, when given; a phone photo turned upright). Raises ValueError with the
    reason when the file is not a usable image, and TooLarge, before decoding anything,
    when it declares more than MAX_PIXELS pixels, whichever decoder would read it."""
    problem = file_problem(path)
    if problem:
        raise ValueError(problem)
    with open(path, "rb") as f:
        head = f.read(26)
    declared = _declared_size(head)
    if declared:
        check_pixels(*declared)
    try:
        return _open_with_pillow(path, draft_size)
    except TooLarge:
        raise
    except Image.DecompressionBombError:
        raise TooLarge(f"declares more pixels than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} allows "
                       f"(a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = _plain_reason(error)
    # Pillow refuses a PNG whose metadata chunk (a colour profile, say) has a bad checksum. Read
    # again leniently, its ancillary chunks' checksums unchecked (the pixels' still are); failing
    # that, through TensorFlow's decoders where TensorFlow is installed. A file that none can
    # read is reported with Pillow's reason; a truncated one is not read again at all.
    if reason == TRUNCATED or not _names_an_image_format(head):
        raise ValueError(reason)
    img = _open_leniently(path, draft_size) or _open_with_tensorflow(path)
    if img is None:
        raise ValueError(reason)
    return img


def file_problem(path, what="an image file"):
    """Why a path cannot be `what` (an image file, a video file), in words, or None: missing, a
    symbolic link that leads nowhere or in a loop, a folder, a special file (a FIFO would block its
    reader forever), unreadable, empty."""
    try:
        stat_result = os.stat(path)
    except OSError as error:
        if error.errno == errno.ENOENT and not os.path.islink(path):
            return "no such file"
        if error.errno == errno.ELOOP:
            return "a symbolic link in a loop (it leads back to itself)"
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return f"cannot be read ({error.strerror})"
    if stat.S_ISDIR(stat_result.st_mode):
        return f"a folder where {what} is expected"
    kind = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device",
            stat.S_ISBLK: "a device"}
    for test, name in kind.items():
        if test(stat_result.st_mode):
            return f"{name}, not {what}"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    if stat_result.st_size == 0:
        with open(path, "rb") as f:     # /proc's files say 0 bytes and hold text: those are read, and refused as such
            if not f.read(1):
                return "empty file (0 bytes)"
    return None


def frame_count(path):
    """How many frames an image file holds (an animated GIF, WebP or PNG: several), read from its header."""
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 1


def to_grey(img):
    """A Pillow image as one grey channel ("L"): 16-bit scaled, not clipped; transparency white."""
    return _flattened(img).convert("L")


def to_rgb(img):
    """A Pillow image in RGB (for finding faces and drawing on), flattened as to_grey flattens it."""
    return _flattened(img).convert("RGB")


def _flattened(img):
    """16-bit grey scaled down to 8 bits, transparent parts white, CMYK as RGB; other modes as they are."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit grayscale: scale 0..65535 down to 0..255 instead of clipping.
        pixels = np.asarray(img, dtype=np.float32) / 257.0
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent parts become white, not whatever colour hides under alpha 0.
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    if img.mode == "CMYK":
        return img.convert("RGB")
    return img


def opencv():
    """OpenCV (cv2), a regular dependency (requirements.txt), or one line saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise SystemExit('error: finding faces and reading videos needs OpenCV: '
                         'pip install "opencv-python-headless>=4.8,<5"') from None
    return cv2


TRUNCATED = "truncated or corrupt image data"


def _plain_reason(error):
    """Pillow's error, in words for the user."""
    text = str(error)
    if "cannot identify image file" in text:
        return "not an image file (cannot identify image file format)"
    if "truncated" in text.lower():
        return TRUNCATED
    return text.split(" '")[0] or type(error).__name__


def _open_with_pillow(path, draft_size):
    with Image.open(path) as img:
        check_pixels(*img.size)
        if draft_size:
            img.draft("L", draft_size)            # a big JPEG decodes at reduced scale: much faster
        img.load()                                # decode now, so a truncated file fails here
        return ImageOps.exif_transpose(img)       # phone photos: honour the camera's rotation


def _open_leniently(path, draft_size):
    """Pillow again, with the checksums of ancillary chunks (colour profiles, text) unchecked:
    Pillow checks a PNG's pixel data either way. None when it still cannot read the file."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True      # in PngImagePlugin, this is what skips those checksums
    try:
        return _open_with_pillow(path, draft_size)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):   # TooLarge was raised before
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _names_an_image_format(head):
    """Whether a file's first bytes name a format the decoders know (not a text file, say)."""
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")) or (head[:4], head[8:12]) == (b"RIFF", b"WEBP")


def _declared_size(head):
    """(width, height) as a PNG, GIF or BMP header (a file's first 26 bytes) declares them, read
    without decoding (so that no decoder, Pillow's or TensorFlow's, is asked to decode a bomb);
    None for other formats, which Pillow's own header check covers."""
    if head.startswith(b"\x89PNG") and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith(b"GIF8") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"BM") and len(head) >= 26:
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(int.from_bytes(head[22:26], "little", signed=True))
    return None


def _open_with_tensorflow(path):
    """The pixels as a Pillow image through TensorFlow's decoders, or None if it cannot read them."""
    try:
        import tensorflow as tf
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(b"\xff\xd8\xff"):      # a JPEG's size, read from its header before decoding it
            height, width = tf.io.extract_jpeg_shape(data).numpy()[:2]
            check_pixels(int(width), int(height))
        elif _declared_size(data[:26]) is None:    # a size no header told: not decoded at all
            return None
        pixels = tf.io.decode_image(data, expand_animations=False).numpy()
    except TooLarge:
        raise
    except Exception:      # no TensorFlow (JAX-only machine) or not an image: either way, no pixels
        return None
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def list_split(split_dir, class_names=None):
    """The (path, class name) pairs of a split folder, and its class folder names, sorted.

    Each class folder is read with its subfolders (train/happy/session1/*.jpg is a happy
    face), as Keras's image_dataset_from_directory reads them. Hidden folders and files
    (a leading dot: .git, .DS_Store) are left out, and that is said once per split.
    """
    if os.path.isfile(split_dir):
        raise DataError(f"{split_dir}: a file where a folder of class folders is expected")
    if not os.path.isdir(split_dir):
        raise DataError(f"{split_dir}: no such folder")
    found = sorted(d for d in os.listdir(split_dir)
                   if os.path.isdir(os.path.join(split_dir, d)) and not d.startswith("."))
    files, hidden = [], 0
    for name in found:
        for folder, subfolders, names in os.walk(os.path.join(split_dir, name)):
            hidden += sum(d.startswith(".") for d in subfolders) + sum(f.startswith(".") for f in names)
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            files += [(os.path.join(folder, f), name) for f in sorted(names) if not f.startswith(".")]
    hidden += sum(d.startswith(".") for d in os.listdir(split_dir))
    if hidden:
        print(f"note: {split_dir}: {hidden} hidden file{'s' if hidden > 1 else ''} or folder{'s' if hidden > 1 else ''} "
              f"(a name starting with '.') left out")
    return files, found


def load_images(files, height, width, drop_blank=False, split="train"):
    """Decode every (path, class) pair once, in parallel threads.

    Returns the images as a (n, height, width, 1) uint8 array, their class
    names, their paths, and the list of (path, reason) of the files skipped.
    A file that fails to decode is always skipped; a blank one only with drop_blank.
    """
    def decode(path):
        try:
            return decode_image(path, height, width), None
        except ValueError as error:
            return None, str(error)

    images, names, paths, skipped = [], [], [], []
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for (path, name), (pixels, reason) in zip(files, pool.map(decode, [p for p, _ in files])):
            if reason is None and pixels.std() < BLANK_STD:
                reason = f"blank image (pixel std {pixels.std():.2f})"
                if not drop_blank:
                    print(f"warning: {path}: {reason}; kept (--drop_blank=True leaves it out)")
                    reason = None
            if reason is not None:
                print(f"skipped {path}: {reason}")
                skipped.append((path, reason))
                continue
            images.append(pixels)
            names.append(name)
            paths.append(path)
    print(f"{split}: using {len(images):,} of {len(files):,} files ({len(skipped)} skipped)")
    images = np.stack(images)[..., None] if images else np.zeros((0, height, width, 1), np.uint8)
    return images, names, paths, skipped


def missing_data(data_dir):
    """The one line for a data_dir that does not exist at all (a folder, or the Kaggle fer2013.csv), or
    None: said before anything else about a run, since a mistyped path is the likeliest mistake."""
    if os.path.exists(data_dir):
        return None
    if data_dir.endswith(".csv"):
        return f"{data_dir}: no such file; expected the Kaggle fer2013.csv (emotion,pixels,Usage)"
    return f"{data_dir}: no such folder; give --data_dir=FOLDER with train/<class>/ inside"


def load_dataset(p):
    """Read data_dir (a folder, or the original fer2013.csv) as parameters p say.

    Returns a dict with the class names and, per split present (train, val,
    test, and private_test from the CSV), a tuple of images, integer labels and
    where each image came from (a file path, or the CSV row).
    """
    data_dir, size = p["data_dir"], (p["img_height"], p["img_width"])
    if data_dir.endswith(".csv"):
        splits, classes = read_fer2013_csv(data_dir, *size, drop_blank=p["drop_blank"])
        train = splits.pop("train", None)
        if train is None:
            raise DataError(f"{data_dir}: has no Training rows")
    else:
        classes, train = _load_train_folder(data_dir, size, p["drop_blank"])
        splits = {}
        for split in ("val", "test"):
            if os.path.isdir(os.path.join(data_dir, split)):
                # Blank test images are kept: the test set is never changed.
                splits[split] = _load_other_split(data_dir, split, classes, size,
                                                  drop_blank=p["drop_blank"] and split == "val")
    if p["balance_count"]:
        train, kept = balance_classes(*train, classes, p["balance_count"], p["seed"])
        splits = {split: keep_classes(data, classes, kept) for split, data in splits.items()}
        classes = kept

    data = {"classes": classes}
    if "val" in splits:
        data["train"] = train
    else:
        images, labels, paths = train
        if p["split_order"] == "name":
            fit, held_out = cnn_split.name_order_split(labels, p["validation_split"])
        else:
            fit, held_out = cnn_split.stratified_split(labels, p["validation_split"], p["seed"])
        data["train"] = (images[fit], labels[fit], [paths[i] for i in fit])
        data["val"] = (images[held_out], labels[held_out], [paths[i] for i in held_out])
    data.update(splits)
    return data


def _load_train_folder(data_dir, size, drop_blank):
    """The class names (non-empty folders of train/, sorted) and the decoded training split."""
    if os.path.isfile(data_dir):
        raise DataError(f"{data_dir}: a file where a folder is expected; give --data_dir=FOLDER with train/<class>/ "
                        "inside, or Kaggle's fer2013.csv")
    missing = missing_data(data_dir)
    if missing:
        raise DataError(missing)
    if not os.path.isdir(os.path.join(data_dir, "train")):
        parent = os.path.dirname(os.path.abspath(data_dir))
        if os.path.basename(os.path.normpath(data_dir)) in ("train", "test", "val"):     # the split named, not its parent
            raise DataError(f"{data_dir}: has no train/ folder; it looks like a split itself: give its parent, "
                            f"--data_dir={parent}")
        raise DataError(f"{data_dir}: has no train/ folder; expected train/<class>/*.jpg (and test/<class>/)")
    files, class_names = list_split(os.path.join(data_dir, "train"))
    counts = {c: sum(1 for _, n in files if n == c) for c in class_names}
    for c in [c for c in class_names if counts[c] == 0]:
        print(f"warning: {os.path.join(data_dir, 'train', c)} is empty; the class {c!r} is left out")
        class_names.remove(c)
    if len(class_names) < 2:
        raise DataError(f"{os.path.join(data_dir, 'train')}: needs at least 2 non-empty class folders, found {class_names}")
    images, names, paths, _ = load_images(files, *size, drop_blank=drop_blank, split="train")
    labels = np.array([class_names.index(n) for n in names], dtype=np.int32)
    return class_names, (images, labels, paths)


def _load_other_split(data_dir, split, class_names, size, drop_blank):
    """val/ or test/, labelled with the training classes; other folders are reported, not guessed at."""
    files, found = list_split(os.path.join(data_dir, split))
    for c in sorted(set(found) - set(class_names)):
        print(f"warning: {os.path.join(data_dir, split, c)} is not a class of train/ "
              f"({', '.join(class_names)}); its images are left out")
    for c in sorted(set(class_names) - set(found)):
        print(f"note: {os.path.join(data_dir, split)} has no {c}/ folder; that class is not scored there")
    files = [(path, name) for path, name in files if name in class_names]
    images, names, paths, _ = load_images(files, *size, drop_blank=drop_blank, split=split)
    return images, np.array([class_names.index(n) for n in names], dtype=np.int32), paths


# ------------------------------------------------------------------ the original fer2013.csv

# The CSV's emotion codes. Classes are then sorted by name, as the folders are,
# so a model trained from the CSV and one trained from the folders agree.
FER2013_CSV_CODES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
CSV_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}


def read_fer2013_csv(path, height, width, drop_blank=False):
    """The Kaggle challenge file: rows of emotion,pixels,Usage (2,304 grey levels per 48x48 face).

    Returns ({split: (images, labels, sources)}, class names). A row that cannot
    be read is reported by its line number and skipped.
    """
    import csv
    if os.path.isdir(path):
        raise DataError(f"{path}: a folder where a file is expected (the Kaggle fer2013.csv); a folder of "
                        "images needs a name that does not end in .csv")
    missing = missing_data(path)
    if missing:
        raise DataError(missing)
    classes = sorted(FER2013_CSV_CODES)
    rows = {split: ([], [], []) for split in CSV_SPLITS.values()}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames or []):
            raise DataError(f"{path}: expected the columns emotion,pixels,Usage; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            source = f"{path}:{line}"
            try:
                split = CSV_SPLITS[row["Usage"]]
                label = classes.index(FER2013_CSV_CODES[int(row["emotion"])])
                pixels = np.array(row["pixels"].split(), dtype=np.float32)
                if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                    raise ValueError(f"expected 2304 grey levels 0-255, got {pixels.size} values")
            except (KeyError, IndexError, ValueError) as error:
                print(f"skipped {source}: {error}")
                continue
            face = Image.fromarray(pixels.reshape(48, 48).astype(np.uint8))
            face = np.asarray(face.resize((width, height), Image.Resampling.BILINEAR))
            if drop_blank and split == "train" and face.std() < BLANK_STD:
                print(f"skipped {source}: blank image (pixel std {face.std():.2f})")
                continue
            for column, value in zip(rows[split], (face, label, source)):
                column.append(value)
    splits = {}
    for split, (images, labels, sources) in rows.items():
        if images:
            splits[split] = (np.stack(images)[..., None], np.array(labels, dtype=np.int32), sources)
            print(f"{split}: {len(images):,} rows of {path}")
    return splits, classes


# ------------------------------------------------------------------ the balanced variant (FER-2013 report)

def balance_classes(images, labels, paths, classes, count, seed):
    """Drop the classes with fewer than half of `count` images (disgust, in FER-2013)
    and undersample the others to at most `count` each, chosen by the seed."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=len(classes))
    kept = [c for c in range(len(classes)) if counts[c] >= count / 2]
    if len(kept) < 2:
        second = int(np.sort(counts)[-2]) if len(counts) > 1 else 0
        raise DataError(f"--balance_count={count}: keeps {len(kept)} class{'es' if len(kept) != 1 else ''} (a class "
                        f"needs at least half of it, {count / 2:g} faces); give --balance_count={2 * second} or "
                        f"less, so that the two largest classes stay")
    chosen = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:count] for c in kept]))
    new_label = {old: new for new, old in enumerate(kept)}
    print(f"{'class':<12}{'before':>8}{'after':>8}   (balanced to {count})")
    for c, name in enumerate(classes):
        after = min(counts[c], count) if c in new_label else 0
        print(f"{name:<12}{counts[c]:>8}{after:>8}{'   dropped' if c not in new_label else ''}")
    return ((images[chosen], np.array([new_label[l] for l in labels[chosen]], dtype=np.int32),
             [paths[i] for i in chosen]), [classes[c] for c in kept])


def keep_classes(split, classes, kept):
    """A val or test split without the classes dropped from training, labels renumbered."""
    images, labels, paths = split
    new_label = {classes.index(name): i for i, name in enumerate(kept)}
    mask = np.array([l in new_label for l in labels], dtype=bool)
    return (images[mask], np.array([new_label[l] for l in labels[mask]], dtype=np.int32),
            [p for p, m in zip(paths, mask) if m])


# ------------------------------------------------------------------ balancing (the 8-class report)

def augment_dataset(images, labels, class_names, noise_std=50.0, seed=0):
    """Balance the classes towards the largest one, as the 8-class report's code does.

    A class short of the largest gets at most one horizontally mirrored copy of
    each image, then, while still short, at most one copy with Gaussian noise
    (noise_std grey levels) of each original and then of each mirror, and never
    more copies than it needs: a class of n images ends with min(4n, largest).
    A small class therefore stays short (the report's neutral, 115 -> 460 of
    1,618), and class_weights make up the rest. Prints the class distribution
    before (A) and after (D) in the layout of the report's Table 1.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=len(class_names))
    target = counts.max()
    new_images, new_labels = [images], [labels]
    for c, n in enumerate(counts):
        members = np.flatnonzero(labels == c)
        need = target - n
        if need == 0 or n == 0:
            continue
        flipped = images[rng.permutation(members)[:need], :, ::-1]
        # Noise on the originals first, then on their mirrors: each at most once.
        sources = np.concatenate([images[members], flipped])[:need - len(flipped)].astype(np.float32)
        noisy = np.clip(np.round(sources + rng.normal(0, noise_std, size=sources.shape)), 0, 255).astype(np.uint8)
        new_images += [flipped, noisy]
        new_labels.append(np.full(len(flipped) + len(noisy), c, dtype=labels.dtype))
    out_images, out_labels = np.concatenate(new_images), np.concatenate(new_labels)
    after = np.bincount(out_labels, minlength=len(class_names))
    print("augment_dataset: the class distribution before (A) and after (D), as the 8-class report's Table 1")
    width = max(6, *(len(name) + 1 for name in class_names))
    print("  " + "".join(f"{name:>{width}}" for name in class_names) + f"{'total':>{width}}")
    for row, values in (("A", counts), ("D", after)):
        print(f"{row:<2}" + "".join(f"{v:>{width}}" for v in values) + f"{values.sum():>{width}}")
    return out_images, out_labels


def class_weights(labels, n_classes):
    """The 8-class report's weights, 2 - (n_c - min) / (max - min): rarest class 2, largest 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    low, high = counts.min(), counts.max()
    if high == low:
        return {c: 1.0 for c in range(n_classes)}
    return {c: float(2 - (counts[c] - low) / (high - low)) for c in range(n_classes)}


# ------------------------------------------------------------------ tf.data

def live_augmenter(p, seed):
    """The FER-2013 report's ImageDataGenerator settings, as Keras preprocessing layers:
    horizontal flip, rotation of rotation_degrees, width and height shift of shift_fraction;
    then, when zoom_fraction > 0, a zoom in or out by up to that fraction, and, when
    random_erasing > 0, a noise patch on that share of the faces."""
    import keras
    # One seed per layer: layers given the same seed draw the same numbers, which
    # turned every mirrored face one way, and moved it up or down with the flip.
    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(p["rotation_degrees"] / 360.0, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomTranslation(p["shift_fraction"], p["shift_fraction"], fill_mode="nearest", seed=seed + 2),
    ]
    if p["zoom_fraction"] > 0:
        # Ten-crop TTA looks at zoomed-in faces; a network trained on one scale gains 2 points from it.
        zoom = (-p["zoom_fraction"], p["zoom_fraction"])
        layers.append(keras.layers.RandomZoom(zoom, zoom, fill_mode="nearest", seed=seed + 4))
    if p["random_erasing"] > 0:
        # factor as (x, x): a fixed chance per face (a single float would draw the chance itself).
        chance = (p["random_erasing"], p["random_erasing"])
        layers.append(keras.layers.RandomErasing(factor=chance, value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(layers, name="live_augment")


def mix_faces(x, y, share):
    """mixup: face i of the batch blended with the face at the mirror position
    (the batch is already shuffled, so that is a random partner), share[i] of
    itself and 1 - share[i] of the other; the one-hot labels are blended alike.
    Plain arithmetic, so it works on TensorFlow tensors and NumPy arrays."""
    s = share[:, None, None, None]
    return s * x + (1 - s) * x[::-1], share[:, None] * y + (1 - share[:, None]) * y[::-1]


def batches_per_epoch(n_images, batch_size):
    """Steps an epoch: every face once, the last batch short (with several processes, filled up
    with faces weighted 0: array_batches)."""
    return -(-n_images // batch_size)


def seeded_augmenter(augmenter, input_shape):
    """augment(x, step): the augmenter on one batch, its random draws a function of the
    batch's number in the whole run (step = epoch * batches per epoch + batch).

    Each random layer's seed state is [its seed, a counter]; here the counter starts at
    16 * step for every batch (a layer draws fewer than 16 numbers a batch) instead of
    running on from call to call. A counter that ran on would begin again when a killed run
    is restarted; this one gives batch `step` the same flips and shifts in either run, and
    lets the tf.data map augment batches in parallel in any order.
    """
    import keras
    if not augmenter.built:
        augmenter.build((None,) + tuple(input_shape))
    variables = augmenter.non_trainable_variables        # the random layers' seed states
    seeds = [int(keras.ops.convert_to_numpy(v.value)[0]) for v in variables]

    def augment(x, step):
        states = [keras.ops.stack([keras.ops.cast(seed, v.dtype), keras.ops.cast(step * 16, v.dtype)])
                  for seed, v in zip(seeds, variables)]
        return augmenter.stateless_call([], states, x, training=True)[0]

    return augment


def make_dataset(images, labels, n_classes, batch_size, training=False, augmenter=None, seed=0, mixup=0.0,
                 shard=(0, 1), epochs=(0, 1), class_weight=None):
    """A tf.data pipeline over in-memory arrays: shuffle, batch, augment, prefetch.

    Pixels stay 0..255 here; the model's first layer rescales them to 0..1,
    so a saved model takes plain pixel values. Labels (class indices) become one-hot
    vectors for categorical cross-entropy; with mixup > 0, blends of two of them.
    Labels given as one row of probabilities per face (a teacher's targets) stay as they are.

    Training batches come as one stream over the epochs epochs[0] .. epochs[1] - 1, to fit
    with steps_per_epoch=batches_per_epoch(...). Each epoch's order of faces is drawn from
    (seed, epoch), and each batch's augmentation and mixup from (seed, its step in the run):
    nothing comes from a random stream that a restart would begin again, so a run resumed at
    epoch e (epochs=(e, ...)) sees the very batches the unbroken run saw from epoch e on.

    shard=(i, n), n > 1: process i of n takes its n-th of each global batch of batch_size (every
    process draws the same order, so the global batches are the same in each): array_batches,
    which also takes the class weights (class_weight) into each batch's sample weights.
    """
    import keras
    if keras.backend.backend() != "tensorflow" or shard[1] > 1:
        # Keras on JAX (a GPU machine without TensorFlow; several processes run on JAX only):
        # its augmenter's seeds live in JAX arrays, which a tf.data map cannot take.
        return array_batches(images, labels, n_classes, batch_size, training, augmenter, seed, mixup, shard, epochs,
                             class_weight)
    import tensorflow as tf
    steps = batches_per_epoch(len(images), batch_size)
    all_faces, all_labels, seed64 = tf.constant(images), tf.constant(labels), tf.constant(seed, tf.int64)

    def one_epoch(epoch):
        order = tf.range(len(images), dtype=tf.int64)
        if training:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([seed64, epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        return tf.data.Dataset.zip(batches, tf.data.Dataset.range(epoch * steps, (epoch + 1) * steps))

    def faces_of(index, step):
        y = tf.gather(all_labels, index)
        return tf.cast(tf.gather(all_faces, index), tf.float32), (y if labels.ndim == 2 else tf.one_hot(y, n_classes)), step

    first, last = epochs if training else (0, 1)
    ds = tf.data.Dataset.range(first, last).flat_map(one_epoch).map(faces_of, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:
        # On CPU, augment in the dataset map, so it runs alongside training.
        augment = seeded_augmenter(augmenter, images.shape[1:])
        ds = ds.map(lambda x, y, step: (augment(x, step), y, step), num_parallel_calls=tf.data.AUTOTUNE)
    if mixup > 0:
        # Beta(a, a) as g1 / (g1 + g2) of two Gamma(a) draws, seeded by the batch's step in the run.
        def mix(x, y, step):
            x = tf.cast(x, tf.float32)                     # bfloat16 from the augmenter under mixed_bfloat16
            g1 = tf.random.stateless_gamma(tf.shape(x)[:1], tf.stack([seed64, 2 * step]), alpha=mixup)
            g2 = tf.random.stateless_gamma(tf.shape(x)[:1], tf.stack([seed64, 2 * step + 1]), alpha=mixup)
            return mix_faces(x, y, g1 / (g1 + g2)) + (step,)
        ds = ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    # The number of batches, which flat_map hides: without it Keras reads the end of each
    # validation pass as data running out, and says "Your input ran out of data".
    ds = ds.map(lambda x, y, step: (x, y)).apply(tf.data.experimental.assert_cardinality((last - first) * steps))
    # tf.data's autotuner off, its parallelism kept (AUTOTUNE then means one call per core).
    # Keras makes a new iterator every epoch for the validation set, and the old one's autotune
    # thread could hold the next epoch back while it slept out its period. On a 2-core Xeon with
    # mixup, 12 of 27 fer_sota epochs waited about 40 s each, 27 % of the run (bench.py's table 6).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def array_batches(images, labels, n_classes, batch_size, training=False, augmenter=None, seed=0, mixup=0.0,
                  shard=(0, 1), epochs=(0, 1), class_weight=None):
    """The batches of make_dataset without TensorFlow: a keras.utils.PyDataset
    over the same in-memory arrays, so Keras trains on any backend (JAX on a GPU).

    As there, training batches run over the epochs epochs[0] .. epochs[1] - 1 (fit with
    steps_per_epoch), each epoch's order drawn from (seed, epoch) and each batch's
    augmentation and mixup from (seed, step); the augmenter runs on each batch as it is
    drawn, on whatever device the backend computes on.

    Several processes (shard=(i, n), n > 1) each take their n-th of every global batch, so
    every global batch must be whole: the last, short one is filled up with its own faces again,
    weighted 0, and each batch comes as (faces, labels, sample weights). Every face is then
    trained and validated once an epoch, as with one process, on data of any size. Keras takes
    no class_weight beside sample weights, so a class's weight goes into its faces' own.
    """
    import keras
    process, processes = shard
    share = batch_size // processes
    steps = batches_per_epoch(len(images), batch_size)
    first, last = epochs if training else (0, 1)
    augment = seeded_augmenter(augmenter, images.shape[1:]) if augmenter is not None else None
    if augment is not None and keras.backend.backend() == "jax":
        # One compiled function: called eagerly, its dozens of small ops made a fer_sota
        # training step take 52-56 ms on an H100 instead of 5-6.
        import jax
        augment = jax.jit(augment)

    class ArrayBatches(keras.utils.PyDataset):
        def __len__(self):
            return steps * (last - first)

        def order(self, epoch):
            if not training:
                return np.arange(len(images))
            if getattr(self, "epoch", None) != epoch:        # drawn once an epoch
                self.epoch, self.epoch_order = epoch, np.random.default_rng((seed, epoch)).permutation(len(images))
            return self.epoch_order

        def __getitem__(self, i):
            step = first * steps + i
            b = step % steps
            index = self.order(step // steps)[b * batch_size:(b + 1) * batch_size]
            if processes > 1:                                # this process's share of the global batch
                weight = (np.arange(batch_size) < len(index)).astype(np.float32)   # 0: a face again, to fill up
                index = np.resize(index, batch_size)[process * share:(process + 1) * share]
                weight = weight[process * share:(process + 1) * share]
            x = images[index].astype(np.float32)
            if augment is not None:
                x = augment(x, step)
            y = labels[index] if labels.ndim == 2 else np.eye(n_classes, dtype=np.float32)[labels[index]]
            if mixup > 0:
                x = keras.ops.cast(x, "float32")      # bfloat16 from the augmenter under mixed_bfloat16
                x, y = mix_faces(x, y, np.random.default_rng((seed, step)).beta(mixup, mixup, len(index)).astype(np.float32))
            if processes == 1:
                return x, y
            if class_weight:                                 # each face's class: its label's largest share (before mixup)
                faces_classes = np.argmax(labels[index], axis=1) if labels.ndim == 2 else labels[index]
                weight = weight * np.array([class_weight[c] for c in faces_classes], np.float32)
            return x, y, weight

    return ArrayBatches()
