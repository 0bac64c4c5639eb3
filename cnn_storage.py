"""What a run keeps, written whole or not at all: a model file with its class names and parameters
inside it, and JSON files. The training callbacks and cnn_model both write through here, so
neither needs the other to save (cnn_model loads: a model file needs its layers to load).
"""
import errno
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

META_FILE = "fer_toolkit.json"   # class names and parameters, stored inside the .keras zip


def save_model(model, path, classes, params):
    """Write model.keras atomically, with the class names and parameters inside it (staged: a full
    disk is one OSError, ENOSPC, and leaves no half-written file)."""
    def save(staged):
        model.save(staged)
        with zipfile.ZipFile(staged, "a") as archive:
            archive.writestr(META_FILE, json.dumps({"classes": list(classes), "params": params}, indent=1))
    staged_write(save, path, ".keras", model)


def staged_write(save, path, suffix, model):
    """save(a path): a Keras save, made first in a scratch folder with room for it (memory, /dev/shm,
    where there is one), then copied to path whole or not at all (write_bytes). h5py cut off by a
    full disk mid-write leaves objects that complain as they are freed and can crash the interpreter
    at exit; staged, it never meets the full disk, and a full disk is a plain OSError (ENOSPC)."""
    need = sum(int(np.prod(w.shape)) * 4 for w in model.variables) * 1.2 + 1_000_000
    for scratch in ("/dev/shm", tempfile.gettempdir()):
        if os.path.isdir(scratch) and os.access(scratch, os.W_OK) and shutil.disk_usage(scratch).free > need:
            break
    else:
        raise OSError(errno.ENOSPC, f"no space left to stage {os.path.basename(path)}")
    with tempfile.TemporaryDirectory(dir=scratch, prefix="fer_toolkit_") as folder:
        staged = os.path.join(folder, "staged" + suffix)
        save(staged)
        with open(staged, "rb") as f:
            write_bytes(path, f.read())


def write_bytes(path, data):
    """Write a file atomically (temporary file beside it, then rename): whole or not at all."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):          # a failed write (a full disk) leaves no half file behind
            os.remove(tmp)


def write_json(path, obj):
    """Write a JSON file atomically."""
    write_bytes(path, json.dumps(obj, indent=1).encode())


def read_json(path):
    """A JSON file's content; None when there is no such file or it is not whole JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stored_meta(path):
    """The class names and parameters that save_model stored in a .keras file, read
    without loading the network; None for a file that holds none (or no such zip
    file: load_model says what is wrong with it)."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if META_FILE in archive.namelist():
            return json.loads(archive.read(META_FILE))
    return None
