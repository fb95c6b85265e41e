"""`tenfold merge CONFIG.yaml` on tiny HF Llama folders: equal to mergekit 0.1.5 (run on the same YAML) for linear,
task_arithmetic and ties; equal to our functions on the loaded state dicts for WUDI, TSVM and DARE; the output
folder loads with AutoModelForCausalLM; bad configurations fail with a UserError naming the key."""

import json

import pytest
import torch
import yaml

from tenfold.cli import main
from tenfold.common.errors import UserError
from tenfold.merging import dare, tsvm, wudi
from tenfold.merging.config import load_merge_config, load_state_dict, run_merge_config

N_EXPERTS = 3


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """base/ and e0/ .. e2/ (base + noise at ~20% of each tensor's spread), with dummy tokenizer files."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    model = _tiny_llama()
    model.save_pretrained(root / "base")
    (root / "base" / "tokenizer.json").write_text('{"tokenizer": "base"}')
    (root / "base" / "tokenizer_config.json").write_text("{}")
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for i in range(N_EXPERTS):
        spread = {k: (float(v.std()) if v.numel() > 1 and float(v.std()) > 0 else 0.01) for k, v in sd.items()}
        model.load_state_dict({k: v + 0.2 * spread[k] * torch.randn(v.shape, generator=g) for k, v in sd.items()})
        model.save_pretrained(root / f"e{i}")
    (root / "e1" / "tokenizer.json").write_text('{"tokenizer": "e1"}')
    return root


def _write(tmp_path, raw, name="merge.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _config(root, method, weights=None, *, base=True, top=None, experts=range(N_EXPERTS), dtype="float32"):
    models = []
    for j, i in enumerate(experts):
        entry = {"model": str(root / f"e{i}")}
        if weights is not None:
            entry["parameters"] = {"weight": weights[j]}
        models.append(entry)
    raw = {"merge_method": method, "models": models, "dtype": dtype}
    if base:
        raw["base_model"] = str(root / "base")
    if top:
        raw["parameters"] = top
    return raw


def _tenfold(tmp_path, raw, out="ours", extra=()):
    cfg = _write(tmp_path, raw)
    assert main(["merge", str(cfg), "--out", str(tmp_path / out), "--no-progress", *extra]) == 0
    return tmp_path / out


def _mergekit(tmp_path, raw, out="theirs"):
    pytest.importorskip("mergekit")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    opts = MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True)
    run_merge(MergeConfiguration.model_validate(raw), str(tmp_path / out), opts)
    return tmp_path / out


def _assert_same(a, b, atol=1e-6):
    sa, sb = load_state_dict(a), load_state_dict(b)
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.allclose(sa[k].double(), sb[k].double(), atol=atol, rtol=0), k


def _sds(root, experts=range(N_EXPERTS)):
    return load_state_dict(root / "base"), [load_state_dict(root / f"e{i}") for i in experts]


# ------------------------------------------------------------------------------------------ against mergekit
MERGEKIT_CASES = {
    "linear": (lambda r: _config(r, "linear", [1.0, 2.0, 0.5], base=False)),
    "linear-with-base": (lambda r: _config(r, "linear", [1.0, 2.0, 0.5], top={"weight": 0.7})),
    "task_arithmetic": (lambda r: _config(r, "task_arithmetic", [1.0, 0.5, 0.3], top={"lambda": 0.8})),
    "task_arithmetic-normalize": (lambda r: _config(r, "task_arithmetic", [1.0, 0.5, 0.3],
                                                    top={"normalize": True, "lambda": 1.2})),
    "ties": (lambda r: _config(r, "ties", [1.0, 0.6, 0.3], top={"density": 0.5})),
    "ties-no-normalize": (lambda r: _config(r, "ties", [1.0, 1.0, 0.4], top={"density": 0.3, "normalize": False,
                                                                            "lambda": 0.9})),
    "ties-default-density": (lambda r: _config(r, "ties", [1.0, 1.0, 1.0])),
}


@pytest.mark.parametrize("case", list(MERGEKIT_CASES))
def test_equals_mergekit(case, folders, tmp_path):
    raw = MERGEKIT_CASES[case](folders)
    theirs = _mergekit(tmp_path, raw)
    ours = _tenfold(tmp_path, raw)
    _assert_same(ours, theirs)
    record = json.loads((ours / "tenfold_merge.json").read_text())
    assert record["config"] == raw and record["versions"]["tenfold"]


# ------------------------------------------------------------------------------------------ our own merges
def test_wudi_output_loads_and_equals_the_function(folders, tmp_path):
    from transformers import AutoModelForCausalLM

    out = _tenfold(tmp_path, _config(folders, "wudi"))
    model = AutoModelForCausalLM.from_pretrained(out)
    base, experts = _sds(folders)
    ref = wudi(base, experts)
    got = model.state_dict()
    for k in load_state_dict(out):
        assert torch.allclose(got[k], ref[k], atol=1e-6), k
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 64)
    assert (out / "tokenizer.json").read_text() == '{"tokenizer": "base"}'


def test_tsvm_output_loads_and_equals_the_function(folders, tmp_path):
    from transformers import AutoModelForCausalLM

    raw = _config(folders, "tsvm", [1.0, 0.5, 2.0], top={"lambda": 0.8, "exclude_keys": ["model.embed_tokens.weight"]})
    raw["tokenizer_source"] = str(folders / "e1")
    out = _tenfold(tmp_path, raw)
    model = AutoModelForCausalLM.from_pretrained(out)
    base, experts = _sds(folders)
    ref = tsvm(base, experts, weights=[1.0, 0.5, 2.0], scale=0.8, exclude_keys=["model.embed_tokens.weight"])
    got = model.state_dict()
    for k in load_state_dict(out):
        assert torch.allclose(got[k], ref[k], atol=1e-6), k
    assert (out / "tokenizer.json").read_text() == '{"tokenizer": "e1"}'
    rec = json.loads((out / "tenfold_merge.json").read_text())["resolved"]
    assert rec["function"].endswith(".tsvm") and rec["arguments"]["scale"] == 0.8


def test_dare_ties_equals_the_function_with_the_same_seed(folders, tmp_path):
    raw = _config(folders, "dare_ties", [1.0, 0.5, 0.8], top={"density": 0.6, "seed": 5})
    out = _tenfold(tmp_path, raw)
    base, experts = _sds(folders)
    ref = dare(base, experts, weights=[1.0, 0.5, 0.8], density=0.6, consensus=True, generator=5)
    got = load_state_dict(out)
    for k in got:
        assert torch.allclose(got[k], ref[k], atol=1e-6), k


def test_bf16_dtype_and_overwrite(folders, tmp_path):
    raw = _config(folders, "task_arithmetic", [0.5, 0.5, 0.5], dtype="bfloat16")
    out = _tenfold(tmp_path, raw)
    assert all(t.dtype == torch.bfloat16 for t in load_state_dict(out).values())
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    cfg = _write(tmp_path, raw)
    assert main(["merge", str(cfg), "--out", str(out), "--no-progress"]) == 2  # not empty
    raw["out_dtype"] = "float32"
    out = _tenfold(tmp_path, raw, extra=("--overwrite",))
    assert all(t.dtype == torch.float32 for t in load_state_dict(out).values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ours.")]  # no temporary folders left


# ------------------------------------------------------------------------------------------ bad configurations
def _raw(root, **change):
    raw = _config(root, "ties", [1.0, 1.0, 1.0], top={"density": 0.5})
    for k, v in change.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return raw


BAD = [
    ("unknown top key", lambda r: _raw(r, foo=1), "Unknown key 'foo'"),
    ("slices", lambda r: _raw(r, slices=[]), "Unsupported key 'slices'"),
    ("method", lambda r: _raw(r, merge_method="slerp"), "Invalid merge_method: 'slerp'; expected one of linear"),
    ("no base", lambda r: _raw(r, base_model=None), "Missing base_model"),
    ("no weight", lambda r: _config(r, "task_arithmetic"), "Missing weight"),
    ("gradient", lambda r: _raw(r, parameters={"density": [0.1, 0.5]}), "per-layer gradients"),
    ("filter", lambda r: _raw(r, parameters={"density": [{"filter": "mlp", "value": 0.5}]}), "per-layer gradients"),
    ("filter dict", lambda r: _raw(r, parameters={"lambda": {"filter": "mlp", "value": 0.5}}), "conditional"),
    ("densities differ", lambda r: {**_config(r, "ties"), "models": [
        {"model": str(r / "e0"), "parameters": {"weight": 1.0, "density": 0.5}},
        {"model": str(r / "e1"), "parameters": {"weight": 1.0, "density": 0.4}}]}, "per-model values differ"),
    ("negative weight", lambda r: _config(r, "ties", [1.0, -1.0, 1.0]), "models\\[1\\].parameters.weight"),
    ("normalize type", lambda r: _raw(r, parameters={"normalize": "yes"}), "Invalid parameters.normalize"),
    ("unknown parameter", lambda r: _raw(r, parameters={"gamma": 0.1}), "Unknown parameters.gamma"),
    ("wudi weight", lambda r: _config(r, "wudi", [1.0, 1.0, 1.0]), "Unknown models\\[0\\].parameters.weight"),
    ("missing folder", lambda r: {**_raw(r), "base_model": str(r / "nope")}, "Invalid base_model"),
    ("no weights", lambda r: {**_raw(r), "base_model": str(r)}, "has no config.json"),
    ("tokenizer union", lambda r: _raw(r, tokenizer_source="union"), "Invalid tokenizer_source: 'union'"),
    ("dtype", lambda r: _raw(r, dtype="int8"), "Invalid dtype: 'int8'"),
    ("dare no rescale", lambda r: _config(r, "dare_linear", [1.0] * 3, top={"rescale": False}), "rescale"),
    ("linear sum", lambda r: _config(r, "linear", [1.0] * 3, base=False, top={"normalize": False}), "normalize: false"),
    ("layer_range", lambda r: {**_raw(r), "models": [{"model": str(r / "e0"), "layer_range": [0, 1]}]},
     "Unknown key models\\[0\\].layer_range"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_config(case, folders, tmp_path):
    _, make, msg = case
    with pytest.raises(UserError, match=msg):
        load_merge_config(_write(tmp_path, make(folders)))


def test_cli_reports_errors_before_work(folders, tmp_path, capsys):
    cfg = _write(tmp_path, _raw(folders, merge_method="slerp"))
    assert main(["merge", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "merge_method" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["merge", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    spec = load_merge_config(_write(tmp_path, _raw(folders)))
    with pytest.raises(UserError, match="input folder"):
        run_merge_config(spec, folders / "e0")


def test_stranger_and_mismatched_models_refused(folders, tmp_path):
    torch.manual_seed(123)
    _tiny_llama().save_pretrained(tmp_path / "stranger")
    raw = _raw(folders)
    raw["models"] = [{"model": str(tmp_path / "stranger"), "parameters": {"weight": 1.0}}]
    spec = load_merge_config(_write(tmp_path, raw))
    with pytest.raises(UserError, match="does not look branched from base"):
        run_merge_config(spec, tmp_path / "out", progress=False)
    raw["parameters"]["check_base"] = False
    run_merge_config(load_merge_config(_write(tmp_path, raw)), tmp_path / "out", progress=False)

    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=64)).save_pretrained(tmp_path / "wide")
    raw["models"] = [{"model": str(tmp_path / "wide"), "parameters": {"weight": 1.0}}]
    with pytest.raises(UserError, match="Shape mismatch for 'model.layers.0.mlp"):
        run_merge_config(load_merge_config(_write(tmp_path, raw)), tmp_path / "out2", progress=False)


def test_bin_inputs_and_sharded_output(folders, tmp_path, monkeypatch):
    """A pytorch_model.bin expert merges as its safetensors twin; a small shard limit gives HF's sharded layout."""
    import shutil

    from transformers import AutoModelForCausalLM

    import tenfold.merging.config as merge_config

    twin = tmp_path / "e0bin"
    shutil.copytree(folders / "e0", twin)
    torch.save(load_state_dict(twin), twin / "pytorch_model.bin")
    (twin / "model.safetensors").unlink()
    raw = _config(folders, "task_arithmetic", [1.0, 0.5], experts=[0, 1], top={"lambda": 0.7})
    ref = _tenfold(tmp_path, raw, out="ref")
    raw["models"][0]["model"] = str(twin)
    monkeypatch.setattr(merge_config, "SHARD_BYTES", 20_000)
    out = _tenfold(tmp_path, raw)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (out / "model.safetensors").exists()
    _assert_same(out, ref, atol=0)
    AutoModelForCausalLM.from_pretrained(out)
