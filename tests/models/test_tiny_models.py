import pytest
import torch

from tenfold.models import MLP, GNConvNet, LeNet5
from tenfold.models.hf_tiny import tiny_llama, tiny_moe, tiny_vit


@pytest.mark.parametrize("in_ch, side", [(1, 28), (3, 32)])
def test_gn_convnet_debug(in_ch, side):
    out = GNConvNet(in_ch, 10, size="debug")(torch.randn(2, in_ch, side, side))
    assert out.shape == (2, 10)


def test_lenet5_groupnorm_variant_adds_only_the_norms():
    plain, gn = LeNet5(), LeNet5(norm_groups=2)
    assert sum(p.numel() for p in gn.parameters()) == sum(p.numel() for p in plain.parameters()) + 2 * (6 + 16)
    assert sum(p.numel() for p in gn.parameters()) == 61_750 and not list(gn.buffers())  # no batch statistics
    assert [type(m).__name__ for m in gn.features][:3] == ["Conv2d", "GroupNorm", "ReLU"]
    assert list(plain.state_dict()) == list(LeNet5(norm_groups=0).state_dict())  # the classic keys unchanged
    assert gn(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="Invalid norm_groups"):
        LeNet5(norm_groups=4)


def test_mlp():
    assert MLP(64, 10, hidden=(8,))(torch.randn(3, 8, 8)).shape == (3, 10)


def test_hf_tiny_debug_forward():
    llama, _ = tiny_llama("debug")
    assert llama(torch.randint(0, 256, (2, 8))).logits.shape == (2, 8, 256)
    vit, _ = tiny_vit("debug")
    assert vit(torch.randn(2, 3, 32, 32)).logits.shape == (2, 10)
    moe, cfg = tiny_moe("debug")
    assert moe(torch.randint(0, 256, (2, 8))).logits.shape == (2, 8, 256) and cfg.num_experts == 4


def test_bad_size():
    with pytest.raises(ValueError, match="Invalid size"):
        GNConvNet(size="huge")


@pytest.mark.slow
def test_pretrained_models_load_offline():
    from tenfold.models.pretrained import minilm, smollm2

    model, tok = smollm2()
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    assert "Paris" in tok.decode(model.generate(ids, max_new_tokens=3, do_sample=False)[0])
    enc, etok = minilm()
    assert enc(**etok(["hello"], return_tensors="pt")).last_hidden_state.shape[-1] == 384
