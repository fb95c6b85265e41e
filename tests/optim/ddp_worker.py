"""Worker for the DDP test: run with `torchrun --nproc_per_node=2 ddp_worker.py OUT_DIR` (gloo, CPU)."""

import os
import sys

import torch
import torch.distributed as dist

from tenfold.optim import MoLS


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same init on every rank (DDP also broadcasts it)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = MoLS(net.named_parameters(), lr=1e-2, interval=2, warmup_steps=0)
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    for _ in range(8):
        opt.zero_grad()
        ddp(torch.randn(8, 4, generator=g)).square().mean().backward()
        opt.step()
    torch.save({"scales": opt.scales(), "snrs": opt.snrs(), "w": [p.detach() for p in net.parameters()]},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
