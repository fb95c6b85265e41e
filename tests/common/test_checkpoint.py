import os

import torch

from tenfold.common.atomic import atomic_write_text
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint


def _model_and_opt():
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 2)
    return m, torch.optim.AdamW(m.parameters(), lr=0.1)


def _step(m, opt):
    x = torch.randn(8, 4)  # draws from the global RNG, restored by the checkpoint
    loss = m(x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()


def test_resume_gives_bit_identical_next_step(tmp_path):
    m, opt = _model_and_opt()
    _step(m, opt)
    save_checkpoint(tmp_path / "ck.pt", model=m.state_dict(), optimizer=opt.state_dict(), step=1)
    _step(m, opt)
    expected = [p.detach().clone() for p in m.parameters()]

    m2, opt2 = _model_and_opt()
    ck = load_checkpoint(tmp_path / "ck.pt")
    m2.load_state_dict(ck["model"]); opt2.load_state_dict(ck["optimizer"])
    _step(m2, opt2)
    assert ck["step"] == 1 and "tenfold_version" in ck
    for a, b in zip(expected, m2.parameters()):
        assert torch.equal(a, b)


def test_missing_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path / "nope.pt") is None


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert os.listdir(tmp_path) == ["a.txt"]
