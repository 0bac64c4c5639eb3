"""What a run keeps, written whole or not at all: a model file with its class names and parameters
inside it, and JSON files. The training callbacks and cnn_model both write through here, so
neither needs the other to save (cnn_model loads: a model file needs its layers to load).
"""
import json
import os
import tempfile
import zipfile

META_FILE = "fer_toolkit.json"   # class names and parameters, stored inside the .keras zip


def save_model(model, path, classes, params):
    """Write model.keras atomically, with the class names and parameters inside it.

    The model goes to a temporary file in the same folder, which is renamed
    over `path` only when complete: a crash never leaves a half-written model.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=folder)
    os.close(fd)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_FILE, json.dumps({"classes": list(classes), "params": params}, indent=1))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
