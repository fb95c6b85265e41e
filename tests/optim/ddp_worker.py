"""Worker for the DDP test: run with `torchrun --nproc_per_node=2 ddp_worker.py OUT_DIR` (gloo, CPU)."""

import os
import sys

import torch
import torch.distributed as dist

from tenfold.optim import MoLS, MoLSDynamic


class _TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(40, 8)
        self.mlp = torch.nn.Linear(8, 40)

    def forward(self, ids):
        return self.mlp(self.embed(ids))


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same init on every rank (DDP also broadcasts it)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=2, warmup_steps=0)
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    for _ in range(8):
        opt.zero_grad()
        ddp(torch.randn(8, 4, generator=g)).square().mean().backward()
        opt.step()
    # the calibrated MoLS: an embedding + MLP model, so there are two module types to calibrate
    torch.manual_seed(0)
    lm = _TinyLM()
    ddp_lm = torch.nn.parallel.DistributedDataParallel(lm)
    cal = MoLS(lm.named_parameters(), lr=1e-2, calibration_steps=4)
    for _ in range(6):
        ids = torch.randint(0, 40, (16,), generator=g)
        cal.zero_grad()
        torch.nn.functional.cross_entropy(ddp_lm(ids), ids).backward()
        cal.step()
    torch.save({"scales": opt.scales(), "snrs": opt.snrs(), "w": [p.detach() for p in net.parameters()],
                "multipliers": cal.multipliers, "cal_snrs": cal.snrs,
                "cal_w": [p.detach() for p in lm.parameters()]}, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
