"""The method catalogue: one entry per paper, numbered as in papers.md, and the lazy path to each
reproduction. Experiments use the library; the library never imports from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from tenfold.common.registry import Registry


@dataclass(frozen=True)
class MethodInfo:
    """A paper and where tenfold implements it.

    `experiment` is "module:attribute" of its `Experiment`, or None while the method is not implemented.
    """

    name: str
    number: int
    title: str
    arxiv: str
    field: str
    component: str
    experiment: str | None = None

    @property
    def implemented(self) -> bool:
        return self.experiment is not None

    def load(self):
        """Import and return the `Experiment` (raises if not implemented)."""
        if self.experiment is None:  # the CLI checks `implemented` first; this guards library callers
            from tenfold.common.errors import UserError

            raise UserError(f"{self.name} has no reproduction yet (not implemented)")
        module, attr = self.experiment.split(":")
        return getattr(importlib.import_module(module), attr)

    def paper(self) -> dict:
        return {"number": self.number, "title": self.title, "arxiv": self.arxiv}

    def paper_results(self) -> dict:
        """Claim id -> `PaperResult`: what the paper reports for each claim (`paper_numbers.PAPER_NUMBERS`)."""
        from tenfold.experiments.paper_numbers import PAPER_NUMBERS

        return dict(PAPER_NUMBERS.get(self.name, {}))

    def as_row(self) -> dict:
        return {"name": self.name, "number": self.number, "title": self.title, "arxiv": self.arxiv,
                "implemented": self.implemented}


METHODS: Registry[MethodInfo] = Registry("method")

for _info in (
    MethodInfo("fedmitr", 1, "Provable Sparse Inversion and Token Relabel Enhanced One-shot FL with ViTs", "2605.10748",
               "one-shot federated distillation", "tenfold.federated.oneshot", "tenfold.experiments.fedmitr:EXPERIMENT"),
    MethodInfo("mols", 2, "Revealing Modular Gradient Noise Imbalance in LLMs: Calibrating Adam via SNR", "2605.05794",
               "optimizer", "tenfold.optim.MoLS", "tenfold.experiments.mols:EXPERIMENT"),
    MethodInfo("elas", 3, "ELAS: Efficient pre-training of Low-rank LLMs via 2:4 Activation Sparsity", "2605.03667",
               "low-rank + 2:4 activation sparsity", "tenfold.sparse.elasify",
               "tenfold.experiments.elas:EXPERIMENT"),
    MethodInfo("adalezo", 4, "Universally Empowering Zeroth-Order Optimization via Adaptive Layer-wise Sampling",
               "2604.18264", "zeroth-order fine-tuning", "tenfold.zo.AdaLeZO", "tenfold.experiments.adalezo:EXPERIMENT"),
    MethodInfo("fedinit", 5, "Understanding How Consistency Works in FL via Stage-wise Relaxed Initialization",
               "2306.05706", "federated learning", "tenfold.federated", "tenfold.experiments.fedinit:EXPERIMENT"),
    MethodInfo("gce", 6, "Towards Accurate and Calibrated Classification: Regularizing Cross-Entropy From A "
               "Generative Perspective", "2604.06689", "calibration", "tenfold.calibration",
               "tenfold.experiments.gce:EXPERIMENT"),
    MethodInfo("blae", 7, "Bi-Lipschitz Autoencoder with Injectivity Guarantee", "2604.06701", "manifold learning",
               "tenfold.manifold.BLAE", "tenfold.experiments.blae:EXPERIMENT"),
    MethodInfo("tapgpt", 8, "Tabular LLMs for Interpretable Few-Shot Alzheimer's Disease Prediction", "2603.17191",
               "tabular LLM classifier", "tenfold.tabular.TAPGPTClassifier", "tenfold.experiments.tapgpt:EXPERIMENT"),
    MethodInfo("lightmoe", 9, "LightMoE: MoE compression by expert replacing", "2603.12645", "MoE compression",
               "tenfold.moe.compress", "tenfold.experiments.lightmoe:EXPERIMENT"),
    MethodInfo("ssr", 10, "ACE-Brain-0: Spatial Intelligence as a Shared Scaffold for Universal Embodiments",
               "2603.03198", "model merging + GRPO", "tenfold.merging.SSRPipeline", "tenfold.experiments.ssr:EXPERIMENT"),
):
    METHODS.register(_info.name, _info)


def catalog() -> list[dict]:
    """Every method as a plain dict, in paper order (what the report needs)."""
    return [METHODS.get(n).as_row() for n in METHODS]
