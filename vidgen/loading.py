"""Rebuild any predictor from a saved model alone, or name a baseline.

A saved model is a ``.ckpt`` written by vidgen-train, whose composed model config sits under
``checkpoint["vidgen"]["model"]`` (see ``VidgenTask.on_save_checkpoint``), or a folder
written by vidgen-export: ``model.safetensors`` and ``config.json``, no pickle at all.

Neither may run code. Checkpoints are read with ``weights_only=True``, which stops pickle,
but the stored config is handed to ``hydra.utils.instantiate``, which calls whatever its
``_target_`` names. So before anything is built, every node of the config is checked: a
``_target_`` must name, by its exact dotted name, a public class defined in a module of
``vidgen.tasks`` that is a LightningModule or of ``vidgen.models`` that is an nn.Module
(spelled by that module or re-exported by the package, ``vidgen.models.PredNet``), or a
``torch.optim`` optimizer or scheduler or vidgen's ``RunFractionLR`` (those only as
``_partial_``); the saved model itself must be such a LightningModule. The modules of those
two packages are found on their ``__path__``, so a model family added as new modules is
loadable with no registry, and nothing outside the packages is imported to check a name.
Hydra's other keys must hold plain values; interpolations (``${...}``) and unknown
``_keys_`` are refused. Arguments that name a weights file to read (``pretrained``)
are cleared, since the saved weights replace them anyway.

A model trained with ``compile: true`` loads eager (``compile`` is set false): compiling
renames no weight, and inference should not wait for a compiler.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pickle
import pkgutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytorch_lightning as pl
import safetensors.torch
import torch
from hydra.errors import InstantiationException
from omegaconf.errors import OmegaConfBaseException
from safetensors import SafetensorError
from torch import nn

from vidgen import __version__
from vidgen.errors import VidgenError
from vidgen.eval import BASELINES

EXPORT_FORMAT, EXPORT_FORMAT_VERSION = "vidgen-weights", 1
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})
CONVERT_MODES = frozenset({"none", "partial", "object", "all"})
FILE_ARGUMENTS = frozenset({"pretrained"})
MAX_DEPTH = 32  # real model configs nest 3 deep; a bound keeps the walk from recursing away
# A _target_ may name a class defined in a module of one of these packages that subclasses
# the package's base: a model family added as new modules there is allowed with no edit here.
VIDGEN_CLASSES = {"vidgen.tasks": pl.LightningModule, "vidgen.models": nn.Module}
ALLOWED = (
    "LightningModules of vidgen.tasks and nn.Modules of vidgen.models, and as _partial_ "
    "torch.optim optimizers and schedulers and vidgen.tasks.schedules.RunFractionLR"
)


@dataclass(frozen=True)
class SavedModel:
    """A checked model config and its finite weights, as read from a checkpoint or export."""

    config: dict
    state_dict: dict[str, torch.Tensor]


def _public_classes(module: object, base: type, names: list[str]) -> dict[str, type]:
    """``module.Name`` and the defining module's spelling of each public ``base`` subclass."""
    found = {}
    for name in names:
        obj = getattr(module, name)
        if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, base):
            found[f"{module.__name__}.{name}"] = obj
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


@functools.cache
def optim_partials() -> frozenset[str]:
    """Exact dotted names a saved config may instantiate as ``_partial_``: torch optimizers
    and schedulers, and vidgen's RunFractionLR."""
    from vidgen.tasks import schedules

    sched = torch.optim.lr_scheduler
    optim = _public_classes(torch.optim, torch.optim.Optimizer, dir(torch.optim))
    optim |= _public_classes(sched, sched.LRScheduler, dir(sched))
    optim |= _public_classes(schedules, sched.LRScheduler, ["RunFractionLR"])
    return frozenset(optim)


def package_modules(package: str) -> frozenset[str]:
    """``package`` and the dotted names of all its modules, listed from its ``__path__`` as
    it is now (so a family added to the package is seen); only subpackages are imported."""
    found = {package}
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
        found.add(info.name)
    return frozenset(found)


def vidgen_class(target: str) -> type | None:
    """The class ``target`` names, if it is a public subclass of its package's base in
    ``VIDGEN_CLASSES`` defined in one of that package's modules and named by that module or
    by the package itself (``vidgen.models.PredNet``); else None. Only the package and the
    one of its modules that ``target`` names are imported."""
    module_name, _, name = target.rpartition(".")
    for package, base in VIDGEN_CLASSES.items():
        if module_name != package and not module_name.startswith(f"{package}."):
            continue
        modules = package_modules(package)
        if module_name not in modules or not name.isidentifier() or name.startswith("_"):
            return None
        try:
            found = getattr(importlib.import_module(module_name), name, None)
        except ImportError:  # a module needing an optional extra that is not installed
            return None
        if not isinstance(found, type) or found.__qualname__ != name:
            return None
        spelled = found.__module__ == module_name or module_name == package
        if spelled and found.__module__ in modules and issubclass(found, base):
            return found
        return None
    return None


def check_config(config: object, source: Path) -> dict:
    """A plain copy of a saved model config once every node passes (see the module
    docstring); ``source`` names the file in the one-line refusal."""
    checked = _checked(config, source, "model", 0)
    target = checked.get("_target_") if isinstance(checked, dict) else None
    task = vidgen_class(target) if isinstance(target, str) else None
    if task is None or not issubclass(task, pl.LightningModule):
        raise _refuse(source, "model._target_", "is not a vidgen task")
    if checked.get("_partial_"):
        raise _refuse(source, "model._partial_", "is true for the task itself")
    return checked


def _refuse(source: Path, where: str, what: str) -> VidgenError:
    return VidgenError(
        f"{source} is refused: {where} {what}; a saved model may name only {ALLOWED}."
    )


def _checked(node: object, source: Path, where: str, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise _refuse(source, where, f"nests deeper than {MAX_DEPTH} levels")
    if node is None or isinstance(node, bool | int | float):
        return node
    if isinstance(node, str):
        if "${" in node:
            raise _refuse(source, where, "holds an interpolation (${...})")
        return node
    if isinstance(node, list | tuple):
        return [_checked(v, source, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
    if not isinstance(node, Mapping):
        raise _refuse(source, where, f"holds a {type(node).__name__}, not a plain value")
    for key in node:
        if not isinstance(key, str) or "${" in key:
            raise _refuse(source, where, f"has the key {key!r}")
        if key.startswith("_") and key.endswith("_") and key not in HYDRA_KEYS:
            raise _refuse(source, f"{where}.{key}", "is not a key a model config may use")
    _check_hydra_keys(node, source, where)
    return {
        key: None if key in FILE_ARGUMENTS else _checked(value, source, f"{where}.{key}", depth + 1)
        for key, value in node.items()
    }


def _check_hydra_keys(node: Mapping, source: Path, where: str) -> None:
    """``_target_`` by exact name from the allow-list; the other Hydra keys plain values."""
    partial = node.get("_partial_", False)
    if not isinstance(partial, bool):
        raise _refuse(source, f"{where}._partial_", "is not true or false")
    if not isinstance(node.get("_recursive_", True), bool):
        raise _refuse(source, f"{where}._recursive_", "is not true or false")
    convert = node.get("_convert_", "none")
    if not isinstance(convert, str) or convert not in CONVERT_MODES:
        raise _refuse(source, f"{where}._convert_", f"is not one of {sorted(CONVERT_MODES)}")
    if not isinstance(node.get("_args_", []), list | tuple):
        raise _refuse(source, f"{where}._args_", "is not a list")
    if "_target_" not in node:
        return
    target = node["_target_"]
    if not isinstance(target, str):
        raise _refuse(source, f"{where}._target_", f"is a {type(target).__name__}, not a name")
    if not (vidgen_class(target) or (partial and target in optim_partials())):
        raise _refuse(source, f"{where}._target_", f"names {target!r}")


def check_finite(state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """Refuse weights a diverged run left behind: every float entry must be finite."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise VidgenError(
                f"{source} holds non-finite weights ({name} has NaN or Inf); use a checkpoint "
                "saved before training diverged."
            )


def _read_checkpoint(path: Path) -> tuple[object, object]:
    # torch.save writes a zip archive: a text or truncated file is refused here, before
    # torch's unpickler, whose errors on such files are many and not all of one type.
    if not zipfile.is_zipfile(path):
        raise VidgenError(f"{path} is not a vidgen checkpoint (not a complete PyTorch file).")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError):
        raise VidgenError(f"{path} is not a vidgen checkpoint (not a PyTorch file).") from None
    except OSError as err:
        raise VidgenError(f"cannot read {path}: {err.strerror or err}.") from None
    if not isinstance(saved, Mapping):
        return None, None
    vidgen_part = saved.get("vidgen")
    config = vidgen_part.get("model") if isinstance(vidgen_part, Mapping) else None
    return config, saved.get("state_dict")


def _read_export(folder: Path) -> tuple[object, object]:
    config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise VidgenError(
            f"{folder} is a folder but not a vidgen export (it needs {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}); vidgen-export writes one."
        )
    try:
        described = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise VidgenError(f"{config_file} is not readable JSON; export the model again.") from None
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        raise VidgenError(f"{config_file} does not describe a {EXPORT_FORMAT} export.")
    if described.get("format_version") != EXPORT_FORMAT_VERSION:
        raise VidgenError(
            f"{config_file} has format_version {described.get('format_version')!r}; this "
            f"vidgen reads version {EXPORT_FORMAT_VERSION}, so upgrade vidgen."
        )
    try:
        state_dict = safetensors.torch.load_file(weights_file, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise VidgenError(f"{weights_file} is not a readable safetensors file ({first}).") from None
    return described.get("model"), state_dict


def read_saved(checkpoint: str | os.PathLike) -> SavedModel:
    """The checked config and finite weights of a ``.ckpt`` or an export folder; nothing is
    instantiated."""
    path = Path(checkpoint)
    if path.is_dir():
        config, state_dict = _read_export(path)
    elif path.is_file():
        config, state_dict = _read_checkpoint(path)
    else:
        raise VidgenError(f"checkpoint {path} does not exist.")
    if config is None or not isinstance(state_dict, Mapping):
        raise VidgenError(
            f"{path} is not a vidgen checkpoint (it stores no model config); "
            "checkpoints written by vidgen-train do."
        )
    checked = check_config(config, path)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise VidgenError(f"{path} is not a vidgen checkpoint (its state_dict is not tensors).")
    check_finite(state_dict, path)
    return SavedModel(checked, dict(state_dict))


def _instantiate(config: dict, source: Path) -> nn.Module:
    try:
        return hydra.utils.instantiate(config)
    except (InstantiationException, OmegaConfBaseException) as err:
        first = str(err).splitlines()[0]
        raise VidgenError(
            f"{source} holds a model config this vidgen cannot build ({first})."
        ) from None


def build(saved: SavedModel, source: Path) -> nn.Module:
    """The task ``saved.config`` describes, holding ``saved.state_dict``. The config is first
    built on the meta device (no memory) and its tensor shapes compared with the saved
    weights, so a config naming a huge model is refused before anything is allocated. The
    task is built eager (``compile`` false)."""
    config = {**saved.config, "compile": False} if "compile" in saved.config else saved.config
    with torch.device("meta"):
        probe = _instantiate(config, source)
    expected = {name: tuple(t.shape) for name, t in probe.state_dict().items()}
    if expected != {name: tuple(t.shape) for name, t in saved.state_dict.items()}:
        raise VidgenError(f"{source} holds weights that do not fit its own model config.")
    task = _instantiate(config, source)
    task.load_state_dict(saved.state_dict)
    task.config = config
    return task


def save_export(saved: SavedModel, folder: Path) -> None:
    """Write ``saved`` into ``folder`` as an export: weights in safetensors, config in JSON."""
    # safetensors wants each tensor contiguous and alone in its storage: tied or viewed
    # weights are stored as copies, which load_state_dict copies back into place.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in saved.state_dict.items()}
    # Written through bytes so the file gets the usual permissions (umask), not 0600.
    encoded = safetensors.torch.save(tensors, metadata={"format": "pt"})
    (folder / WEIGHTS_FILE).write_bytes(encoded)
    described = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "vidgen_version": __version__,
        "model": saved.config,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")


def load(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """A ready predictor (``.rollout(frames, horizon, actions=None)``) in eval mode.

    ``checkpoint`` is a ``.ckpt`` written by vidgen-train, a folder written by vidgen-export,
    or a baseline name (``copy_last``). Its parameters are frozen, so rollouts build no
    autograd graph; call ``requires_grad_(True)`` on the result to fine-tune it.
    """
    if str(checkpoint) in BASELINES:
        return BASELINES[str(checkpoint)]().to(device).eval()
    path = Path(checkpoint)
    if not path.exists():
        choices = ", ".join(BASELINES)
        raise VidgenError(f"checkpoint {path} does not exist (nor is it a baseline: {choices}).")
    task = build(read_saved(path), path)
    return task.requires_grad_(False).to(device).eval()
