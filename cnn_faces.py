"""Every face in a picture: found, cut out as FER-2013's faces are, and scored. The Python API.

    import cnn_faces
    for face in cnn_faces.detect_emotions("group.jpg"):        # a path, a PIL image or a NumPy array
        print(face["box"], max(face["emotions"], key=face["emotions"].get))

detect_emotions returns one dict per face, largest first, as the `fer` package does:
{"box": [x, y, w, h] in the picture's pixels, "emotions": {class: probability}}; [] when
no face is found. The model (the fast model, pretrained/fer2013_int8.tflite, unless another is
named) and the detector are loaded on first use and kept, so a loop over video frames loads each
once; several threads may call the API at once. With the defaults, nothing here imports
TensorFlow: a .keras model (model="shipped") or the mtcnn detector brings it in.

The detectors (DETECTORS; docs/faces.md measures them on composed group photos):
- "yunet", the default: YuNet-n (pretrained/yunet/, Apache-2.0), a 76k-parameter network that
  OpenCV runs. It finds as many faces as MTCNN there, some 20 times faster.
- "mtcnn": the MTCNN cascade of the `mtcnn` package (weights inside its wheel; needs TensorFlow).
- "haar": OpenCV's Haar cascade, inside the opencv-python-headless 4.x wheel. It misses more
  (small faces, darker faces, tilted heads).
A new detector is one function here, named in DETECTORS.

video_emotions(path) gives the same, frame by frame, for a video or a camera. YuNet searches
every frame. MTCNN, slower, searches the whole frame every SEARCH_EVERY seconds of it and, in
the frames between, follows the faces it found (followed_faces; docs/scoring.md, "Following
faces in a video"). cnn_eval.py scores through score_picture, the same function both use.
"""
import os
import threading

import numpy as np
from PIL import Image

import cnn_data
import cnn_params
import cnn_people
import cnn_photos
import cnn_predict
import pretrained

SHIPPED, FAST, FASTEST, YUNET = pretrained.SHIPPED, pretrained.FAST, pretrained.FASTEST, pretrained.YUNET
MODELS = {"shipped": SHIPPED, "fast": FAST, "fastest": FASTEST}    # the names --model and the API take for these files
DEFAULT_MODEL = "fast"  # as accurate as the shipped model on PublicTest, runs without TensorFlow (docs/speed.md)
YUNET_SIDE = 1024       # pixels: a larger picture is shrunk to this longer side for YuNet. At 640, 40-pixel faces
                        # of a 2048x1536 photo came out at 12 pixels and 17 % of them were missed (docs/faces.md)
VIDEO_SIDE = 480        # pixels: the same for a video's frames, searched every one: a 640x480 frame is seen at
                        # 480x360, where a 24-pixel face is still 18 (docs/speed.md, "Video, end to end")
YUNET_SIZES = 4         # YuNet detectors kept, one per picture size (each some 2 MB)
YUNET_THRESHOLD = 0.7   # YuNet keeps a face it is this sure of: every face of bench/faces.py, no false one
DEFAULT_DETECTOR = "yunet"   # as many faces as MTCNN on bench/faces.py, some 20 times faster (docs/faces.md)
FACE_MARGIN = 0.1       # a found face is cut out with this share of its size on each side, as FER-2013's faces are
MIN_FACE = 24           # pixels: the smallest face looked for (a 40-pixel face is well above it)
THUMBNAIL = 96          # pixels: the shorter side of the second look, for faces that fill the picture
SMOOTH_SECONDS = cnn_people.SMOOTH_SECONDS   # each person's answer in a video: averaged over this many seconds
SEARCH_EVERY = 0.5      # seconds of video between MTCNN's searches of a whole frame (followed_faces)
ONET_THRESHOLD = 0.9    # MTCNN's last stage keeps a face it is this sure of (its own default, 0.8, let
                        # busy backgrounds through: docs/faces.md)


class FaceError(ValueError):
    """A picture or an option the API cannot use, said in one line that names it."""


class DetectorError(FaceError):
    """A detector that cannot run at all (its model file missing or broken): no picture can be scored."""


# ------------------------------------------------------------------ reading a picture

def read_picture(image):
    """Any picture the API takes, as an RGB PIL image at its own size: a path (any format Pillow
    reads), a PIL image, or a NumPy array (HxWx3 RGB or HxWx4 RGBA uint8, or HxW grey uint8).
    Raises FaceError naming the file or saying what is wrong with the array."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            return cnn_data.to_rgb(cnn_data.read_image(path))
        except (ValueError, OSError) as error:
            raise FaceError(f"{path}: {error}") from None
    if isinstance(image, Image.Image):
        return cnn_data.to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise FaceError(f"the array: pixels of type {image.dtype}; expected uint8 (0..255)")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
            raise FaceError(f"the array: shape {image.shape}; expected HxWx3 RGB, HxWx4 RGBA or HxW grey")
        if min(image.shape[:2]) == 0:
            raise FaceError(f"the array: shape {image.shape}; an empty picture")
        return cnn_data.to_rgb(Image.fromarray(image))
    raise FaceError(f"a picture of type {type(image).__name__}; expected a path, a PIL image or a NumPy array")


# ------------------------------------------------------------------ finding faces

DETECTORS = ("yunet", "mtcnn", "haar")
_LOADED_DETECTORS = {}
_LOCKS = {}                     # one per loaded detector or model: none of them may run in two threads at once
_DETECTOR_LOADING = threading.Lock()    # two threads finding faces for the first time load the detector once


def check_detector(name):
    """The detector's name, or FaceError naming the choices."""
    if name not in DETECTORS:
        raise FaceError(f"detector {name!r}: expected one of {', '.join(DETECTORS)}")
    return name


def find_faces(rgb, detector=None, video=False):
    """The faces in an RGB uint8 array (HxWx3), largest first, each as (x, y, w, h) in its pixels.
    video: the picture is a video's frame (YuNet then looks at it at VIDEO_SIDE, not YUNET_SIDE)."""
    name = check_detector(detector or DEFAULT_DETECTOR)
    if min(rgb.shape[:2]) < MIN_FACE:
        return []
    if name == "yunet":
        return _largest_first(_yunet_faces(rgb, VIDEO_SIDE if video else YUNET_SIDE))
    return _largest_first({"mtcnn": _mtcnn_faces, "haar": _haar_faces}[name](rgb))


def _largest_first(boxes):
    kept = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        # A "face" lying mostly within a larger one is a nose or an eye of it: left out.
        if box[2] > 0 and box[3] > 0 and not any(_overlap(box, other) > 0.3 for other in kept):
            kept.append(box)
    return kept


def _yunet_faces(rgb, side):
    """YuNet's faces in the whole picture, seen at most `side` pixels on its longer side."""
    cv2 = cnn_data.opencv()
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    with _LOCKS.setdefault("yunet", threading.Lock()):
        _, found = _yunet(size).detect(bgr)
    boxes = []
    for x, y, w, h in ([] if found is None else found[:, :4] / scale):
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + w, width), min(y + h, height)
        if right - left >= MIN_FACE / 2 and bottom - top >= MIN_FACE / 2:
            boxes.append((int(round(left)), int(round(top)), int(round(right - left)), int(round(bottom - top))))
    return boxes


def _yunet(size):
    """A YuNet detector for pictures of this (width, height), made once and kept for the
    YUNET_SIZES sizes used last: a detector given a picture of another size sets its network up anew before
    it searches, and a folder of photos mixes sizes."""
    cv2 = cnn_data.opencv()
    kept = _LOADED_DETECTORS.setdefault("yunet", {})
    if size not in kept:
        if not os.path.isfile(YUNET):
            raise DetectorError(f"{YUNET}: the yunet detector's model file is missing; reinstall the toolkit "
                                f"(or use --detector=haar)")
        try:
            kept[size] = cv2.FaceDetectorYN.create(YUNET, "", size, YUNET_THRESHOLD, 0.3, 5000)
        except cv2.error as error:
            raise DetectorError(f"{YUNET}: not a face detector OpenCV can load ({str(error).strip().splitlines()[-1]}); "
                                f"reinstall the toolkit (or use --detector=haar)") from None
        while len(kept) > YUNET_SIZES:
            del kept[next(iter(kept))]          # the size used longest ago
    kept[size] = kept.pop(size)                 # now the size used last
    return kept[size]


def _mtcnn():
    """MTCNN (P-, R- and O-Net), its weights inside the mtcnn wheel, loaded on first use."""
    with _DETECTOR_LOADING:
        if "mtcnn" not in _LOADED_DETECTORS:
            try:                        # imported on first use: yunet and haar work without it and TensorFlow
                from mtcnn import MTCNN
            except ImportError:
                raise ImportError('the mtcnn detector needs TensorFlow and the mtcnn package, which the scorer alone '
                                  'does not install: pip install ".[train]" in the toolkit\'s folder (or pip install '
                                  '-r requirements.txt), or use --detector=yunet') from None
            _LOCKS["mtcnn"] = threading.Lock()
            _LOADED_DETECTORS["mtcnn"] = MTCNN()
    return _LOADED_DETECTORS["mtcnn"]


def _mtcnn_faces(rgb):
    """MTCNN's faces in the whole picture."""
    cv2 = cnn_data.opencv()
    detector = _mtcnn()
    # mtcnn 1.0's image pyramid is only right for its smallest face, 12 pixels: asked for larger
    # ones, its last scale can shrink a picture below P-Net's 12 pixels, and P-Net fails (a 640x480
    # frame did). So the picture is shrunk here by 12 / MIN_FACE, and the boxes grown back.
    # Its pyramid also stops with the picture's shorter side at about 24 pixels, so a face larger
    # than half the picture is never seen (a tight face photo): a second look, at a thumbnail
    # padded with its own border, finds those. find_faces drops the faces both looks find.
    height, width = rgb.shape[:2]
    boxes = []
    for scale, pad in ((12 / MIN_FACE, 0), (THUMBNAIL / min(height, width), THUMBNAIL // 2)):
        scale = min(scale, 1.0)
        small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        if min(small.shape[:2]) < 24:          # no pyramid scale fits: nothing P-Net could see
            continue
        with _LOCKS["mtcnn"]:
            found = detector.detect_faces(np.ascontiguousarray(small), min_face_size=12,
                                          threshold_onet=ONET_THRESHOLD)
        for face in found:
            x, y, w, h = face["box"]
            left, top = max((x - pad) / scale, 0), max((y - pad) / scale, 0)
            right, bottom = min((x + w - pad) / scale, width), min((y + h - pad) / scale, height)
            boxes.append((int(round(left)), int(round(top)), int(round(right - left)), int(round(bottom - top))))
    return boxes


def followed_faces(frames, detector=None, search_every=SEARCH_EVERY):
    """The faces of each frame of a stream of (time_s, RGB array): a generator of (time_s, rgb,
    boxes), boxes as find_faces gives them. MTCNN searches a whole frame every search_every
    seconds; in the frames between, each face found is followed: MTCNN's last stage (O-Net) looks
    again at a square about its last box, moves the box onto the face and keeps it while it is
    sure of a face. A face it loses starts a new search at once; a face that comes into view is
    found at the next search. search_every=0, or yunet or haar (fast enough), searches every frame."""
    name = check_detector(detector or DEFAULT_DETECTOR)
    boxes, searched = [], None
    for time_s, rgb in frames:
        if name == "mtcnn" and searched is not None and time_s - searched < search_every:
            kept = _largest_first(_onet_refined(rgb, boxes))
            boxes, lost = kept, len(kept) < len(boxes)
        else:
            lost = True
        if lost:
            boxes, searched = find_faces(rgb, name, video=True), time_s
        yield time_s, rgb, boxes


def _onet_refined(rgb, boxes, side=48):
    """Each box moved onto the face near it by MTCNN's O-Net, dropped where O-Net is not sure of a
    face: O-Net sees a square about the box (grey beyond the picture) at its 48 pixels, as MTCNN's
    own last stage does, and gives the face's edges as shares of that square."""
    if not boxes:
        return []
    cv2 = cnn_data.opencv()
    height, width = rgb.shape[:2]
    patches, squares = [], []
    for x, y, w, h in boxes:
        size = max(w, h)
        left, top = int(round(x + w / 2 - size / 2)), int(round(y + h / 2 - size / 2))
        patch = np.full((size, size, 3), 127.5, np.float32)
        a, b, c, d = max(left, 0), max(top, 0), min(left + size, width), min(top + size, height)
        if c > a and d > b:
            patch[b - top:d - top, a - left:c - left] = rgb[b:d, a:c]
        patches.append(cv2.resize(patch, (side, side), interpolation=cv2.INTER_LINEAR))
        squares.append((left, top, size))
    onet = _mtcnn().stages[2].model
    if "onet" not in _LOADED_DETECTORS:    # compiled once: a plain call costs more than the network
        import tensorflow as tf
        _LOADED_DETECTORS["onet"] = tf.function(lambda x: onet(x, training=False), reduce_retracing=True)
    with _LOCKS["mtcnn"]:
        offsets, _, sure = (np.asarray(t) for t in _LOADED_DETECTORS["onet"]((np.stack(patches) - 127.5) / 128))
    moved = []
    for (left, top, size), (dx1, dy1, dx2, dy2), (_, face) in zip(squares, offsets, sure):
        if face < ONET_THRESHOLD:
            continue
        x1, y1 = max(left + dx1 * (size + 1), 0), max(top + dy1 * (size + 1), 0)
        x2, y2 = min(left + size + dx2 * (size + 1), width), min(top + size + dy2 * (size + 1), height)
        if x2 - x1 >= MIN_FACE / 2 and y2 - y1 >= MIN_FACE / 2:
            moved.append((int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))))
    return moved


def _haar_faces(rgb):
    """OpenCV's Haar cascade. The picture is padded with its own border first: a photo that is
    already a tight face crop leaves the cascade no margin, and it then latches onto the nose."""
    cv2 = cnn_data.opencv()
    with _DETECTOR_LOADING:
        if "haar" not in _LOADED_DETECTORS:
            _LOCKS["haar"] = threading.Lock()
            _LOADED_DETECTORS["haar"] = cv2.CascadeClassifier(
                os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_alt2.xml"))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    pad = max(height, width) // 4
    padded = cv2.copyMakeBorder(cv2.equalizeHist(grey), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    with _LOCKS["haar"]:
        found = _LOADED_DETECTORS["haar"].detectMultiScale(padded, scaleFactor=1.1, minNeighbors=5,
                                                           minSize=(max(MIN_FACE, min(height, width) // 40),) * 2)
    boxes = []
    for x, y, w, h in found:
        # Back in the picture's own pixels, clipped to it: the padding is not the photo.
        left, top = max(int(x) - pad, 0), max(int(y) - pad, 0)
        right, bottom = min(int(x + w) - pad, width), min(int(y + h) - pad, height)
        boxes.append((left, top, right - left, bottom - top))
    return boxes


def _overlap(box, other):
    """The share of box's area that other covers."""
    (x, y, w, h), (u, v, s, t) = box, other
    across = max(0, min(x + w, u + s) - max(x, u)) * max(0, min(y + h, v + t) - max(y, v))
    return across / (w * h)


def crop_face(img, box, margin=FACE_MARGIN):
    """The face at box (x, y, w, h) of a Pillow image as FER-2013 frames a face: a square about
    the box's centre, its side the box's longer side plus margin of it on each side, kept inside
    the image."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return img.crop((max(int(cx - side / 2), 0), max(int(cy - side / 2), 0),
                     min(int(cx + side / 2), img.width), min(int(cy + side / 2), img.height)))


def is_face_crop(size, input_shape):
    """Whether a picture of this (width, height) is a face already: no side over twice the network's input."""
    return max(size) <= 2 * max(input_shape)


def faces_in(colour, input_shape, detect=True, detector=None, boxes=None):
    """The faces of one RGB picture, largest first, as (box, pixels): box = [x, y, w, h] in the
    picture's pixels, pixels = the grey crop at input_shape (height, width), as the network takes it.

    detect: True (find faces), False (the whole picture is the face) or "auto" (find them
    unless the picture is itself a face crop). boxes: the boxes to score, found already
    (followed_faces, or boxes_to_score in another thread). None found: []."""
    height, width = input_shape
    if boxes is None:
        boxes = boxes_to_score(colour, input_shape, detect, detector)
    grey = colour.convert("L")
    return [(list(box), _resized(crop_face(grey, box), width, height)) for box in boxes]


def boxes_to_score(colour, input_shape, detect=True, detector=None):
    """The boxes faces_in scores in a picture: the faces found, or the whole picture when detect is
    False, or "auto" and the picture is a face crop already (crop_face then cuts the whole of it)."""
    if detect is False or (detect == "auto" and is_face_crop(colour.size, input_shape)):
        return [(0, 0, colour.width, colour.height)]
    return find_faces(np.asarray(colour), detector)


def _resized(img, width, height):
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


# ------------------------------------------------------------------ scoring

_LOADED_MODELS = {}
_LOADING = threading.Lock()     # two threads asking for the same model at once load it once


def model_paths(model):
    """The model files that `model` names: None (DEFAULT_MODEL), a path or a name of MODELS,
    or several (a list, or one string with commas)."""
    names = [os.fspath(m) for m in model] if isinstance(model, (list, tuple)) else os.fspath(model or DEFAULT_MODEL).split(",")
    return [MODELS.get(name, name) for name in names]


def load_scorer(model=None):
    """The model(s) to score with, loaded once and kept: (models, class names). model: None (the
    fast model), "fast", "fastest", "shipped", a .keras or .tflite path, or several (a list, or one
    string with commas), whose probabilities are averaged. TensorFlow is imported only for a .keras
    file. Raises FaceError naming a file that cannot be used, or saying what to install."""
    paths = model_paths(model)
    key = tuple(os.path.abspath(p) for p in paths)
    with _LOADING:
        if key not in _LOADED_MODELS:
            load_keras = None
            if any(cnn_predict.is_keras_file(p) and os.path.exists(p) for p in paths):
                try:
                    import cnn_model
                    load_keras = cnn_model.load_model
                except ImportError:
                    pass                # load_models names the file and says what to install
            try:
                models, classes, _ = cnn_predict.load_models(list(paths), load_keras)
            except cnn_predict.ModelError as error:
                raise FaceError(str(error)) from None
            _LOADED_MODELS[key] = (models, classes)
    return _LOADED_MODELS[key]


def score_faces(scorer, pixels, tta="none"):
    """Class probabilities of a list of (h, w) grey face crops: each model's, averaged."""
    models, classes = scorer
    if not pixels:
        return np.zeros((0, len(classes)), np.float32)
    batch = np.stack(pixels)[..., None]
    return np.mean([cnn_predict.predict(m, batch, tta=tta) for m in models], axis=0)


def score_picture(colour, scorer, detector=None, detect=True, tta="none", boxes=None):
    """Every face of an RGB picture, largest first, found, cut out and scored: dicts of box,
    emotions ({class: probability}) and pixels (the crop the network saw). detect and boxes as in faces_in."""
    models, classes = scorer
    found = faces_in(colour, models[0].input_shape[1:3], detect, detector, boxes)
    probabilities = score_faces(scorer, [pixels for _, pixels in found], tta)
    return [{"box": [int(v) for v in box], "emotions": {c: float(q) for c, q in zip(classes, row)}, "pixels": pixels}
            for (box, pixels), row in zip(found, probabilities)]


def detect_emotions(image, model=None, detector=None, tta="none"):
    """Every face in a picture and its class probabilities, largest first:
    [{"box": [x, y, w, h], "emotions": {class: probability}}, ...], [] when there is none.

    image: a path, a PIL image, or a NumPy array (HxWx3 RGB uint8, or HxW grey uint8).
    model: None or "fast" (the shipped network in int8, run by LiteRT), "shipped" (the same network
    in Keras; needs TensorFlow), "fastest" (a smaller network in int8, some 2 points less
    accurate), a .keras or .tflite path, or several (averaged).
    detector: one of DETECTORS (default DEFAULT_DETECTOR). tta: "none", "flip" or "crops".
    Raises FaceError (a ValueError) naming the file, the array or the option that is wrong."""
    if tta not in cnn_params.CHOICES["tta"]:
        raise FaceError(f"tta {tta!r}: expected one of {', '.join(cnn_params.CHOICES['tta'])}")
    check_detector(detector or DEFAULT_DETECTOR)
    return _answers(score_picture(read_picture(image), load_scorer(model), detector, True, tta))


def video_emotions(source, fps=None, model=None, detector=None, tta="none", search_every=SEARCH_EVERY,
                   smooth=SMOOTH_SECONDS):
    """Every face of each frame of a video, frame by frame as it is read, never the whole video in
    memory: a generator of (time_s, faces), faces as detect_emotions gives them, each also with
    "person" (a number that stays with the same person while they are in view, never given twice
    in one video) and "smoothed" (that person's emotions averaged over their last `smooth` seconds).

    source: a video file, or a camera's number (read live: the newest frame each time, until the
    camera stops). fps: frames looked at a second of video (None: every frame). model: as for
    detect_emotions; by default the fast model. search_every: with detector="mtcnn", seconds
    between searches of a whole frame, the faces followed in between (followed_faces); 0 searches
    every frame. Raises FaceError for a source or an option it cannot use."""
    if isinstance(source, bool) or not isinstance(source, (int, str, os.PathLike)):
        raise FaceError(f"a video source of type {type(source).__name__}; expected a path or a camera's number")
    if isinstance(source, int) and source < 0:
        raise FaceError(f"camera {source}: expected a camera's number from 0 up")
    if not isinstance(source, int):
        source = os.fspath(source)
    for name, value in (("fps", fps), ("search_every", search_every), ("smooth", smooth)):
        if value is not None and not (isinstance(value, (int, float)) and value >= 0 and value == value):
            raise FaceError(f"{name} {value!r}: expected a number from 0 up")
    if fps == 0:
        raise FaceError("fps 0: expected frames a second above 0, or None for every frame")
    check_detector(detector or DEFAULT_DETECTOR)
    scorer = load_scorer(model)
    try:
        _, frames = (cnn_photos.live_frames(source) if isinstance(source, int) else
                     cnn_photos.video_frames(source, fps or float("inf")))
    except ValueError as error:
        raise FaceError(f"{source}: {error}") from None
    people = cnn_people.People(smooth_seconds=smooth)
    found = followed_faces(frames, detector, search_every)
    for time_s, rgb, boxes in (found if isinstance(source, int) else cnn_photos.ahead(found)):
        faces = people.follow(time_s, _answers(score_picture(Image.fromarray(rgb), scorer, detector, True, tta, boxes)), rgb)
        yield time_s, faces


def _answers(faces):
    """score_picture's faces as the API gives them: box and emotions (not the crops)."""
    return [{"box": f["box"], "emotions": f["emotions"]} for f in faces]
