"""What a run computes on: the devices, the distribution strategy over them, and the
compute policy (float32 or mixed precision) that is fast on this machine.

Nothing here changes what is learned, only where and how fast: cnn_run.py asks
it once, before building the network, and names the machine in metrics.json.
"""
import os

import keras

BF16_INSTRUCTIONS = ("amx_bf16", "avx512_bf16")   # the CPU flags of native bfloat16 arithmetic


def distribution(name):
    """Where a run trains: (the scope to build the network under, the number of devices that share
    each global batch, this process's index, the number of processes).

    On TensorFlow: "auto" mirrors over the GPUs when there are several (tf.distribute's
    MirroredStrategy) and otherwise uses the one default device; "mirrored" always
    mirrors, over the GPUs or, without any, over the CPU devices; "multi_worker" is
    refused (Keras 3's fit does not run under MultiWorkerMirroredStrategy,
    keras-team/keras#20585). On JAX, Keras's own keras.distribution: "mirrored" is
    DataParallel over this machine's GPUs, "multi_worker" DataParallel over every
    device of every process, started from Keras's KERAS_DISTRIBUTION_JOB_ADDRESSES,
    _NUM_PROCESSES and _PROCESS_ID (or what JAX finds by itself, as under SLURM),
    with gloo collectives between CPUs. Keras then splits each global batch between
    the devices and averages their gradients. Called before any computation: JAX's
    processes must meet before its first array exists.
    """
    import contextlib
    none = contextlib.nullcontext()
    if keras.backend.backend() == "jax":
        if name == "auto":
            return none, 1, 0, 1
        import jax
        if name == "multi_worker":
            # Between CPUs, gloo carries the gradients (GPUs have their own collectives; this leaves them be).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize()
            devices = keras.distribution.list_devices()
        else:
            devices = keras.distribution.list_devices("gpu") if _has_jax_gpu() else []
            if not devices:
                raise ValueError("--strategy=mirrored on JAX spreads a batch over this machine's GPUs, and it has none")
        data_parallel = keras.distribution.DataParallel(devices=devices)
        data_parallel.auto_shard_dataset = False      # each process feeds its own shard (cnn_data.make_dataset)
        keras.distribution.set_distribution(data_parallel)
        return none, len(devices), jax.process_index(), jax.process_count()
    if name == "multi_worker":
        raise ValueError("--strategy=multi_worker needs Keras's JAX backend: Keras 3's fit does not run under "
                         "TensorFlow's MultiWorkerMirroredStrategy (keras-team/keras#20585). Run KERAS_BACKEND=jax "
                         "python cnn_run.py --strategy=multi_worker on each machine (docs/distribution.md)")
    import tensorflow as tf
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto" and len(gpus) < 2:
        return none, 1, 0, 1
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    return strategy.scope(), strategy.num_replicas_in_sync, 0, 1


def _has_jax_gpu():
    """Whether JAX has a GPU backend here."""
    import jax
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def local_distribution():
    """Back to one process's own devices, for what comes after training (scoring the saved model)."""
    if keras.backend.backend() == "jax" and keras.distribution.distribution() is not None:
        keras.distribution.set_distribution(None)


def machine():
    """What a run computes on, for its metrics.json: e.g. "jax on NVIDIA H100 80GB HBM3"
    or "tensorflow on CPU (AMD EPYC, 2 cores, avx512_bf16)". Wall times mean little
    without it, and a time budget's epochs depend on it."""
    gpu = gpu_device()
    return f"{keras.backend.backend()} on {gpu['name'] if gpu else f'CPU ({cpu_name()})'}"


def gpu_device():
    """The first GPU the backend computes on, as {"name", "capability"} (CUDA compute
    capability as (major, minor), or None when the backend does not say), or None."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        capability = getattr(device, "compute_capability", None)       # "9.0" on CUDA
        return {"name": device.device_kind,
                "capability": tuple(int(part) for part in capability.split(".")) if capability else None}
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        return {"name": details.get("device_name", "GPU"), "capability": details.get("compute_capability")}
    if backend == "torch":
        import torch
        if not torch.cuda.is_available():
            return None
        return {"name": torch.cuda.get_device_name(0), "capability": torch.cuda.get_device_capability(0)}
    return None


def cpu_info():
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def bf16_instructions(info):
    """The bfloat16 instructions (AMX, AVX512-BF16) that a /proc/cpuinfo text names."""
    return [flag for flag in BF16_INSTRUCTIONS if f" {flag}" in info]


def cpu_name():
    """The processor's model name, its cores and its bfloat16 instructions (AMX or
    AVX512-BF16, which make mixed_bfloat16 pay), from /proc/cpuinfo where there is one."""
    info = cpu_info()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = " ".join(bf16_instructions(info))
    return ", ".join(part for part in (name, f"{os.cpu_count()} cores", flags) if part)


def compute_policy(precision):
    """The Keras dtype policy to train under for --precision, and a line to print about it ("" for none).

    "auto" picks what is fast where the run computes: mixed_bfloat16 on a CPU
    with bfloat16 instructions (AMX or AVX512-BF16: 1.4-1.9x float32's speed)
    and on a GPU that has bfloat16 (compute capability 8.0 on, as the H100
    of our GPU runs, docs/lab/gpu.md), mixed_float16 on an older GPU or one that does
    not report its capability, and float32 on any other CPU. Without those
    instructions a CPU emulates bfloat16: fer_sota trained at 9 images/s under
    mixed_bfloat16 against 94 in float32 on a 2-core AVX2 machine
    (bench/bench.py). Asked for by name there, it is kept, with a warning.
    """
    gpu = gpu_device()
    cpu_bf16 = bool(bf16_instructions(cpu_info()))
    if precision == "auto":
        if gpu:
            chosen = "mixed_bfloat16" if (gpu["capability"] or (0, 0)) >= (8, 0) else "mixed_float16"
            return chosen, f"precision: {chosen} (auto, on {gpu['name']})"
        if cpu_bf16:
            return "mixed_bfloat16", "precision: mixed_bfloat16 (auto: this CPU has bfloat16 instructions)"
        return "float32", "precision: float32 (auto: this CPU has no bfloat16 instructions, AMX or AVX512-BF16)"
    if precision == "mixed_bfloat16" and not gpu and not cpu_bf16:
        return precision, ("warning: --precision=mixed_bfloat16 on a CPU without bfloat16 instructions (AMX or "
                           "AVX512-BF16): it is emulated, and trained fer_sota 10x slower than float32 on such a CPU; "
                           "--precision=auto picks float32 here")
    return precision, ""
