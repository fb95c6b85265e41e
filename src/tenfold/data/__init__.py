"""Offline data sets (no network, ever) and federated client partitioners.

Every loader checks what it reads and, when a source is missing, raises `MissingDataError` naming the
package that provides it. Cached files live under `$TENFOLD_CACHE` (default `~/.cache/tenfold`).
"""

from tenfold.data.cache import MissingDataError, cache_root
from tenfold.data.images import digits, fashion_mnist, long_tailed, mnist5k, to_3ch32
from tenfold.data.manifolds import (digit_image, reference_swiss_roll, rotated_digit_ring, s_curve,
                                    swiss_roll)
from tenfold.data.partition import (count_duplicates, dirichlet_partition, flsim_dirichlet_partition, iid_partition,
                                    label_histograms, shard_partition)
from tenfold.data.tabular import ad_biomarkers, breast_cancer

__all__ = [
    "MissingDataError", "cache_root", "fashion_mnist", "mnist5k", "digits", "to_3ch32", "long_tailed",
    "swiss_roll", "s_curve", "reference_swiss_roll", "rotated_digit_ring", "digit_image", "dirichlet_partition",
    "iid_partition", "shard_partition", "label_histograms", "flsim_dirichlet_partition", "count_duplicates",
    "ad_biomarkers", "breast_cancer",
]
