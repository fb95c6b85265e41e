"""`tenfold merge CONFIG.yaml`: merge Hugging Face model folders from a mergekit-style configuration file.

The file uses mergekit's keys (arcee-ai/mergekit config.py, `MergeConfiguration`): `merge_method`, `base_model`,
`models: [{model: PATH, parameters: {weight: ..., density: ...}}]`, top-level `parameters:` (defaults for every
model, and the method's shared settings), `dtype`, `out_dtype` and `tokenizer_source`. Every tensor is merged by
the functions of merges.py, with mergekit's parameter names and defaults mapped onto ours so that the result
equals mergekit's where mergekit has the method (linear, task_arithmetic, ties: checked in
tests/merging/test_merge_config.py). WUDI and TSVM, which mergekit lacks, take our own parameter names.

Implemented: `load_merge_config` (every check on the file, its values and the folders, before any tensor is read),
`run_merge_config` (tensor by tensor: each folder is read lazily through safetensors or a memory-mapped .bin, so
memory holds one tensor per model plus one output shard) and `load_state_dict`. Not implemented: mergekit's
slices, modules, per-layer gradients, filtered (conditional) parameters, tokenizer unions, LoRA inputs and Hub
names (paths must be local folders; no network is ever used). See docs/merge.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from tenfold.common.errors import UserError
from tenfold.merging.merges import DEFAULT_MAX_REL_DIST, DEFAULT_RANK_RTOL, MERGES, SOLVERS, check_same_base

# mergekit's merge_method -> our registry name. `linear` averages every input, base_model included (mergekit's rule).
METHODS = {
    "linear": "average",
    "task_arithmetic": "task_arithmetic",
    "ties": "ties",
    "dare_linear": "dare",
    "dare_ties": "dare",
    "wudi": "wudi",
    "tsvm": "tsvm",
}
PER_MODEL = ("weight", "density")  # may appear under models[i].parameters, and at top level as the default
# Top-level `parameters:` each method accepts (besides PER_MODEL), with mergekit's defaults where mergekit has it.
SHARED = {
    "linear": {"normalize": True, "check_base": True},
    "task_arithmetic": {"lambda": 1.0, "normalize": False, "int8_mask": False, "check_base": True},
    "ties": {"lambda": 1.0, "normalize": True, "int8_mask": False, "rescale": False, "check_base": True},
    "dare_linear": {"lambda": 1.0, "normalize": False, "int8_mask": False, "rescale": True, "seed": 0,
                    "check_base": True},
    "dare_ties": {"lambda": 1.0, "normalize": False, "int8_mask": False, "rescale": True, "seed": 0,
                  "check_base": True},
    "wudi": {"solver": "closed_form", "iters": 300, "lr": 1e-5, "rtol": None, "exclude_keys": [], "check_base": True},
    "tsvm": {"lambda": 1.0, "exclude_keys": [], "rank_rtol": DEFAULT_RANK_RTOL, "check_base": True},
}
WEIGHTED = {"linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"}  # mergekit requires `weight` for these
DENSITY = {"ties", "dare_linear", "dare_ties"}
TOP_KEYS = ("merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source")
REFUSED_KEYS = {
    "slices": "layer-range slices (frankenmerges) are not supported; list whole models under `models`",
    "modules": "per-module definitions are not supported; list whole models under `models`",
    "tokenizer": "mergekit's tokenizer block (vocabulary unions) is not supported; use tokenizer_source: base or a "
                 "model path",
    "chat_template": "chat_template is not supported; the tokenizer files (and their template) are copied from "
                     "tokenizer_source",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
SHARD_BYTES = 4 * 2**30  # output shard size limit
# Files copied into the output folder: the config from the base, the tokenizer from tokenizer_source.
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_GLOBS = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab*", "merges.txt", "*.model",
                   "chat_template*")
RECORD = "tenfold_merge.json"
_NO_LIMIT = 1e300  # check_same_base wants a finite limit; the streamed check applies the real one to the mean


# ------------------------------------------------------------------------------------------------ reading folders
def _weight_files(folder: Path) -> list[Path]:
    """The weight files of an HF model folder, safetensors first; [] when there are none."""
    for index, single in (("model.safetensors.index.json", "model.safetensors"),
                          ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / index).is_file():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (ValueError, KeyError) as e:
                raise UserError(f"Invalid model folder {str(folder)!r}: unreadable {index} ({e})") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise UserError(f"Invalid model folder {str(folder)!r}: {index} lists missing shards {missing[:3]}")
            return [folder / s for s in shards]
        if (folder / single).is_file():
            return [folder / single]
    return []


class _Folder:
    """Lazy tensor access to one HF model folder: key order, shapes and dtypes from the headers, tensors on demand."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        self._where: dict[str, Any] = {}  # key -> an open safetensors handle or a memory-mapped .bin dict
        self._meta: dict[str, tuple[tuple[int, ...], str]] = {}
        for f in _weight_files(path):
            if f.suffix == ".safetensors":
                handle = safe_open(str(f), framework="pt")
                for k in handle.keys():
                    sl = handle.get_slice(k)
                    self._where[k] = handle
                    self._meta[k] = (tuple(sl.get_shape()), sl.get_dtype())
            else:
                sd = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
                for k, t in sd.items():
                    self._where[k] = sd
                    self._meta[k] = (tuple(t.shape), str(t.dtype))

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._meta[key][0]

    def get(self, key: str) -> torch.Tensor:
        src = self._where[key]
        return src[key] if isinstance(src, dict) else src.get_tensor(key)


def load_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of an HF model folder (safetensors, sharded or not, or PyTorch .bin), in file order.

    Parameters
    ----------
    folder : path
        A folder holding model.safetensors, model.safetensors.index.json, pytorch_model.bin or its index.

    Returns
    -------
    dict of str to torch.Tensor
        The order `tenfold merge` visits the keys in (which fixes DARE's draws).
    """
    path = Path(folder)
    if not _weight_files(path):
        raise UserError(f"Invalid model folder {str(path)!r}: no model.safetensors, model.safetensors.index.json, "
                        "pytorch_model.bin or pytorch_model.bin.index.json")
    f = _Folder(path)
    return {k: f.get(k).clone() for k in f.keys()}


# ------------------------------------------------------------------------------------------------ the config
@dataclass(frozen=True)
class MergeSpec:
    """A checked merge configuration, ready to run.

    Attributes
    ----------
    merge_method : str
        As written in the file (mergekit's name).
    method : str
        Our `MERGES` name.
    base : Path
        The base model folder (for `linear` without base_model: the first model, used for checks only).
    experts : tuple of Path
        The folders merged into `base`, in order.
    kwargs : dict
        Keyword arguments of the merge function (weights, scale, density, ...), check_base and generator excluded.
    check_base : bool or float
        The same-base check (run once over every tensor, before merging).
    seed : int or None
        DARE's mask seed.
    dtype, out_dtype : str or None
        Cast every float tensor to `dtype` on reading; write in `out_dtype` (default: `dtype`, else the base's).
    tokenizer_source : Path
        Folder the tokenizer files are copied from.
    raw : dict
        The file's content, recorded in the output's tenfold_merge.json.
    """

    merge_method: str
    method: str
    base: Path
    experts: tuple[Path, ...]
    kwargs: dict[str, Any]
    check_base: bool | float
    seed: int | None
    dtype: str | None
    out_dtype: str | None
    tokenizer_source: Path
    raw: dict[str, Any] = field(repr=False)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _scalar(where: str, value: Any) -> Any:
    """Refuse mergekit's per-layer gradients (lists) and filtered values (mappings) with a message saying so."""
    if isinstance(value, list):
        raise UserError(f"Invalid {where}: {value!r}; per-layer gradients (a list of values) are not supported, "
                        "give one number")
    if isinstance(value, Mapping):
        raise UserError(f"Invalid {where}: {value!r}; conditional parameters (filter/value) are not supported, "
                        "give one value")
    return value


def _check_value(where: str, name: str, value: Any) -> Any:
    """Type and range of one parameter value; returns it (lists only for exclude_keys)."""
    if name == "exclude_keys":
        if not (isinstance(value, list) and all(isinstance(k, str) for k in value)):
            raise UserError(f"Invalid {where}: {value!r}; expected a list of tensor names")
        return list(value)
    value = _scalar(where, value)
    if name == "weight":
        ok = _is_number(value) and value >= 0
        expect = "a finite number >= 0 (negative weights are not supported)"
    elif name == "density":
        ok, expect = _is_number(value) and 0 < value <= 1, "a number in (0, 1]"
    elif name in ("lambda", "lr"):
        ok, expect = _is_number(value) and value > 0, "a finite number > 0"
    elif name in ("normalize", "int8_mask", "rescale"):
        ok, expect = isinstance(value, bool), "true or false"
    elif name in ("seed", "iters"):
        low = 0 if name == "seed" else 1
        ok, expect = isinstance(value, int) and not isinstance(value, bool) and value >= low, f"an integer >= {low}"
    elif name == "check_base":
        ok = isinstance(value, bool) or (_is_number(value) and value > 0)
        expect = f"true, false or the largest accepted relative distance (> 0; default {DEFAULT_MAX_REL_DIST})"
    elif name == "solver":
        ok, expect = value in SOLVERS, f"one of {', '.join(SOLVERS)}"
    elif name == "rtol":
        ok, expect = value is None or (_is_number(value) and value > 0), "null or a number > 0"
    elif name == "rank_rtol":
        ok, expect = _is_number(value) and 0 <= value < 1, "a number in [0, 1)"
    else:  # pragma: no cover - every accepted name is listed above
        raise AssertionError(name)
    if not ok:
        raise UserError(f"Invalid {where}: {value!r}; expected {expect}")
    return value


def _folder(where: str, value: Any, *, model: bool = True) -> Path:
    """A local HF model folder with a config.json and weights (just a folder when not `model`); relative paths start
    at the working directory, as mergekit resolves them."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"Invalid {where}: {value!r}; expected the path of a local model folder")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"Invalid {where}: {value!r} is not a folder (relative paths start at the working directory; "
                        "Hub names are not fetched: download the model first)")
    if not model:
        return path.resolve()
    if not (path / "config.json").is_file():
        raise UserError(f"Invalid {where}: {value!r} has no config.json (expected a Hugging Face model folder)")
    if not _weight_files(path):
        raise UserError(f"Invalid {where}: {value!r} has no model.safetensors, model.safetensors.index.json, "
                        "pytorch_model.bin or pytorch_model.bin.index.json")
    return path.resolve()


def _parameters(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"Invalid {where}: {value!r}; expected a mapping of parameter names to values")
    return dict(value)


def load_merge_config(path: str | os.PathLike) -> MergeSpec:
    """Read and check a mergekit-style YAML merge configuration; raise `UserError` naming the first problem.

    Parameters
    ----------
    path : path
        The YAML file.

    Returns
    -------
    MergeSpec
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"Invalid CONFIG {str(path)!r}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"Invalid CONFIG {str(path)!r}: not YAML ({e})") from None
    if not isinstance(raw, Mapping):
        raise UserError(f"Invalid CONFIG {str(path)!r}: expected a mapping with merge_method, base_model, models")
    return merge_spec(dict(raw))


def merge_spec(raw: dict[str, Any]) -> MergeSpec:
    """Check a configuration already read into a dict (see `load_merge_config`)."""
    for key in raw:
        if key in REFUSED_KEYS:
            raise UserError(f"Unsupported key {key!r}: {REFUSED_KEYS[key]}")
        if key not in TOP_KEYS:
            raise UserError(f"Unknown key {key!r}; expected some of {', '.join(TOP_KEYS)}")
    name = raw.get("merge_method")
    if name not in METHODS:
        raise UserError(f"Invalid merge_method: {name!r}; expected one of {', '.join(METHODS)} (mergekit's linear is "
                        "our average)")
    shared = SHARED[name]
    accepted = [*(PER_MODEL if name in DENSITY else ("weight",) if name != "wudi" else ()), *shared]
    top = _parameters("parameters", raw.get("parameters"))
    for key, value in top.items():
        if key not in accepted:
            raise UserError(f"Unknown parameters.{key} for merge_method {name}; expected some of {', '.join(accepted)}")
        top[key] = _check_value(f"parameters.{key}", key, value)

    entries = raw.get("models")
    if not isinstance(entries, list) or not entries:
        raise UserError("Invalid models: expected a non-empty list of {model: PATH, parameters: {...}}")
    models, per_model = [], []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):  # mergekit also accepts a bare path
            entry = {"model": entry}
        if not isinstance(entry, Mapping) or "model" not in entry:
            raise UserError(f"Invalid models[{i}]: {entry!r}; expected a mapping with a `model` path")
        extra = sorted(set(entry) - {"model", "parameters"})
        if extra:
            raise UserError(f"Unknown key models[{i}].{extra[0]}; expected model, parameters")
        params = _parameters(f"models[{i}].parameters", entry.get("parameters"))
        for key, value in params.items():
            if key not in accepted or key not in PER_MODEL:
                per = [k for k in PER_MODEL if k in accepted]
                raise UserError(f"Unknown models[{i}].parameters.{key} for merge_method {name}; expected some of "
                                f"{', '.join(per) or '(none: every setting is shared, under parameters)'}")
            params[key] = _check_value(f"models[{i}].parameters.{key}", key, value)
        models.append(_folder(f"models[{i}].model", entry["model"]))
        per_model.append(params)
    if len(set(models)) != len(models):
        raise UserError("Invalid models: a folder is listed twice")

    base = None if raw.get("base_model") is None else _folder("base_model", raw["base_model"])
    if base is None and name != "linear":
        raise UserError(f"Missing base_model: merge_method {name} merges task vectors theta_i - theta_base")
    if name == "linear":  # mergekit's linear takes every input, base_model included
        inputs = list(zip(models, per_model))
        if base is not None and base not in models:
            inputs.append((base, {}))
        checks_base = base if base is not None else models[0]
    else:  # the base's own entry (if listed) is not merged into itself, as in mergekit
        inputs = [(m, p) for m, p in zip(models, per_model) if m != base]
        checks_base = base
    if not inputs:
        raise UserError("Invalid models: nothing to merge besides base_model")

    def setting(key, params, where):
        if key in params:
            return params[key]
        if key in top:
            return top[key]
        if key == "weight" and name in WEIGHTED:
            raise UserError(f"Missing weight for {where} (merge_method {name} requires one per model, as mergekit "
                            "does; set models[i].parameters.weight or a default under parameters)")
        return {"weight": 1.0, "density": 1.0}[key]  # mergekit's density default: 1 (nothing dropped)

    labels = [str(m) for m, _ in inputs]
    weights = None if name == "wudi" else [setting("weight", p, lab) for (_, p), lab in zip(inputs, labels)]
    opts = {k: top.get(k, v) for k, v in shared.items()}
    kwargs: dict[str, Any] = {}
    if name in DENSITY:
        dens = [setting("density", p, lab) for (_, p), lab in zip(inputs, labels)]
        if len(set(dens)) > 1:
            raise UserError(f"Invalid density: per-model values differ ({dens}); tenfold's {METHODS[name]} takes one "
                            "density for every model")
        kwargs["density"] = float(dens[0])
    if name == "linear":
        if not opts["normalize"] and not math.isclose(sum(weights), 1.0, rel_tol=0, abs_tol=1e-12):
            raise UserError(f"Invalid parameters.normalize: false with weights summing to {sum(weights):g}; tenfold's "
                            "average divides by the summed weights (normalize: true), so give weights that sum to 1")
        kwargs["weights"] = weights
    elif name in ("task_arithmetic", "dare_linear"):
        total = sum(weights)  # mergekit divides the weighted sum by sum(w): the same as weights w / sum(w)
        kwargs["weights"] = [w / total for w in weights] if opts["normalize"] and total > 0 else weights
        kwargs["scale"] = float(opts["lambda"])
    elif name in ("ties", "dare_ties"):
        kwargs.update(weights=weights, scale=float(opts["lambda"]))
        if name == "ties":
            kwargs["normalize"] = opts["normalize"]
        elif opts["normalize"]:
            raise UserError("Invalid parameters.normalize: true for dare_ties; tenfold's DARE-TIES sums the agreeing "
                            "deltas (mergekit's default, normalize: false)")
    elif name == "wudi":
        kwargs.update(solver=opts["solver"], iters=opts["iters"], lr=float(opts["lr"]), rtol=opts["rtol"],
                      exclude_keys=opts["exclude_keys"])
    else:  # tsvm
        kwargs.update(weights=weights, scale=float(opts["lambda"]), exclude_keys=opts["exclude_keys"],
                      rank_rtol=float(opts["rank_rtol"]))
    if name == "ties" and opts["rescale"]:
        raise UserError("Invalid parameters.rescale: true for ties; mergekit's L1 rescaling is not implemented")
    if name.startswith("dare_"):
        if not opts["rescale"]:
            raise UserError(f"Invalid parameters.rescale: false for {name}; tenfold's DARE always rescales the kept "
                            "entries (by 1 / density, the DARE paper's rule)")
        kwargs["consensus"] = name == "dare_ties"

    dtypes = {}
    for key in ("dtype", "out_dtype"):
        value = raw.get(key)
        if value is not None and value not in DTYPES:
            raise UserError(f"Invalid {key}: {value!r}; expected one of {', '.join(DTYPES)}")
        dtypes[key] = value
    tok = raw.get("tokenizer_source")
    if tok == "union":
        raise UserError("Invalid tokenizer_source: 'union'; vocabulary unions are not supported; expected base or a "
                        "model folder (the embeddings must have equal shapes anyway)")
    tok_path = checks_base if tok in (None, "base") else _folder("tokenizer_source", tok, model=False)
    return MergeSpec(merge_method=name, method=METHODS[name], base=checks_base,
                     experts=tuple(m for m, _ in inputs), kwargs=kwargs, check_base=opts["check_base"],
                     seed=opts.get("seed"), dtype=dtypes["dtype"], out_dtype=dtypes["out_dtype"],
                     tokenizer_source=tok_path, raw=raw)


# ------------------------------------------------------------------------------------------------ running
def _open_and_check(spec: MergeSpec) -> tuple[_Folder, list[_Folder]]:
    """Open every folder; raise `UserError` unless each has the base's keys and shapes (headers only)."""
    base = _Folder(spec.base)
    experts = [_Folder(p) for p in spec.experts]
    keys = set(base.keys())
    for i, e in enumerate(experts):
        missing, extra = sorted(keys - set(e.keys())), sorted(set(e.keys()) - keys)
        if missing or extra:
            raise UserError(f"Key mismatch in {e.path}: missing {missing[:5]}, unexpected {extra[:5]} (every model "
                            "must have the base's tensors)")
        for k in base.keys():
            if e.shape(k) != base.shape(k):
                raise UserError(f"Shape mismatch for {k!r} in {e.path}: {e.shape(k)} vs base {base.shape(k)}")
    unknown = sorted(set(spec.kwargs.get("exclude_keys", ())) - keys)
    if unknown:
        raise UserError(f"Invalid parameters.exclude_keys: {unknown[:5]} are not tensors of {spec.base}")
    return base, experts


def _read(folder: _Folder, key: str, dtype: torch.dtype | None) -> torch.Tensor:
    t = folder.get(key)
    return t.to(dtype) if dtype is not None and t.is_floating_point() else t


def _same_base_distances(spec: MergeSpec, base: _Folder, experts: list[_Folder]) -> list[float] | None:
    """`check_same_base`'s measure streamed over tensors: each expert's size-weighted mean of per-tensor relative
    distances (all-zero base tensors left out); raises `UserError` above the limit."""
    if spec.check_base is False:
        return None
    limit = DEFAULT_MAX_REL_DIST if spec.check_base is True else float(spec.check_base)
    sums, total = [0.0] * len(experts), 0
    for k in base.keys():
        b = base.get(k)
        if not b.is_floating_point() or float(b.double().norm()) == 0:
            continue
        for i, e in enumerate(experts):  # one tensor at a time; the measure itself is merges.check_same_base's
            sums[i] += check_same_base({k: b}, [{k: e.get(k)}], max_rel_dist=_NO_LIMIT)[0] * b.numel()
        total += b.numel()
    dists = [s / total if total else 0.0 for s in sums]
    for e, d in zip(experts, dists):
        if d > limit:
            raise UserError(f"{e.path} does not look branched from base {spec.base}: relative distance {d:.3g} > "
                            f"{limit} (independent inits sit near 1.41); set parameters.check_base: false, or a "
                            "larger limit, to merge anyway")
    return dists


class _ShardWriter:
    """Collects output tensors into safetensors shards of at most SHARD_BYTES, then names them as HF does."""

    def __init__(self, folder: Path):
        self.folder, self.shards, self.pending, self.size, self.total = folder, [], {}, 0, 0

    def add(self, key: str, t: torch.Tensor) -> None:
        nbytes = t.numel() * t.element_size()
        if self.pending and self.size + nbytes > SHARD_BYTES:
            self._flush()
        self.pending[key] = t.contiguous()
        self.size += nbytes
        self.total += nbytes

    def _flush(self) -> None:
        from safetensors.torch import save_file

        name = f"shard-{len(self.shards):05d}.tmp"
        save_file(self.pending, str(self.folder / name), metadata={"format": "pt"})
        self.shards.append((name, list(self.pending)))
        self.pending, self.size = {}, 0

    def close(self) -> list[str]:
        if self.pending or not self.shards:
            self._flush()
        n = len(self.shards)
        names = (["model.safetensors"] if n == 1 else
                 [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)])
        weight_map = {}
        for (tmp, keys), final in zip(self.shards, names):
            os.replace(self.folder / tmp, self.folder / final)
            weight_map.update({k: final for k in keys})
        if n > 1:
            index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
            (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        return names


def _versions() -> dict[str, str]:
    import safetensors

    from tenfold import __version__

    out = {"tenfold": __version__, "torch": torch.__version__, "safetensors": safetensors.__version__}
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a core dependency
        pass
    return out


def _copy_side_files(spec: MergeSpec, out: Path, out_dtype: str | None) -> None:
    for name in CONFIG_FILES:
        if (spec.base / name).is_file():
            shutil.copy2(spec.base / name, out / name)
    if out_dtype is not None and (out / "config.json").is_file():  # record the written dtype, as save_pretrained does
        cfg = json.loads((out / "config.json").read_text())
        cfg["dtype"] = out_dtype
        if "torch_dtype" in cfg:
            cfg["torch_dtype"] = out_dtype
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for pattern in TOKENIZER_GLOBS:
        for f in spec.tokenizer_source.glob(pattern):
            if f.is_file():
                shutil.copy2(f, out / f.name)


def _merge_tensors(spec: MergeSpec, base: _Folder, experts: list[_Folder], writer: _ShardWriter,
                   progress: bool) -> None:
    from tqdm import tqdm

    fn = MERGES.get(spec.method).fn
    kwargs = dict(spec.kwargs)
    if spec.method == "dare":  # one generator across keys in file order: the whole-state-dict call's draws
        kwargs["generator"] = torch.Generator().manual_seed(spec.seed)
    dtype = DTYPES[spec.dtype] if spec.dtype else None
    written = spec.out_dtype or spec.dtype
    out_dtype = DTYPES[written] if written else None
    excluded = set(kwargs.get("exclude_keys", ()))
    for k in tqdm(base.keys(), desc=f"tenfold merge ({spec.merge_method})", disable=not progress, unit="tensor"):
        b = _read(base, k, dtype)
        one = dict(kwargs)
        if "exclude_keys" in one:  # per tensor: only this key can be excluded
            one["exclude_keys"] = [k] if k in excluded else []
        merged = fn({k: b}, [{k: _read(e, k, dtype)} for e in experts], check_base=False, **one)[k]
        if out_dtype is not None and merged.is_floating_point():
            merged = merged.to(out_dtype)
        writer.add(k, merged)


def run_merge_config(spec: MergeSpec, out_dir: str | os.PathLike, *, overwrite: bool = False,
                     progress: bool = True) -> Path:
    """Merge the folders of `spec` tensor by tensor and write an HF model folder at `out_dir`.

    The output holds the merged weights (model.safetensors, or shards with an index), config.json and
    generation_config.json from the base (config's dtype set to the written one when the file sets a dtype), the
    tokenizer files of `tokenizer_source`, and tenfold_merge.json (the file's content, what it resolved to, the
    same-base distances and the library versions). Everything is written to a temporary folder beside `out_dir`
    and renamed at the end, so a failed merge leaves nothing half-written.

    Parameters
    ----------
    spec : MergeSpec
        From `load_merge_config`.
    out_dir : path
        Refused when it holds files, unless `overwrite`; never one of the input folders.
    overwrite : bool, default=False
        Replace a non-empty `out_dir`.
    progress : bool, default=True
        A progress bar over tensors.

    Returns
    -------
    Path
        `out_dir`.
    """
    out = Path(out_dir).expanduser().absolute()
    inputs = {spec.base, *spec.experts, spec.tokenizer_source}
    for p in inputs:
        if out.resolve() == p or p.is_relative_to(out.resolve()):
            raise UserError(f"Invalid --out {str(out)!r}: it is (or holds) the input folder {p}")
    if out.exists() and not out.is_dir():
        raise UserError(f"Invalid --out {str(out)!r}: it is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"Invalid --out {str(out)!r}: the folder is not empty (pass --overwrite to replace it)")
    base, experts = _open_and_check(spec)  # headers only: mismatches surface before any tensor is merged
    dists = _same_base_distances(spec, base, experts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        writer = _ShardWriter(tmp)
        _merge_tensors(spec, base, experts, writer, progress)
        files = writer.close()
        out_dtype = spec.out_dtype or spec.dtype
        _copy_side_files(spec, tmp, out_dtype)
        record = {
            "config": spec.raw,
            "resolved": {"merge_method": spec.merge_method, "function": f"tenfold.merging.merges.{spec.method}",
                         "base": str(spec.base), "experts": [str(p) for p in spec.experts],
                         "arguments": spec.kwargs, "check_base": spec.check_base, "seed": spec.seed,
                         "dtype": spec.dtype, "out_dtype": out_dtype,
                         "tokenizer_source": str(spec.tokenizer_source)},
            "same_base_distances": dists,
            "weight_files": files,
            "versions": _versions(),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

