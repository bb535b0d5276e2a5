"""The corpus: the English help text that ships with every CPython (`pydoc_data.topics`), character level.

Nothing is downloaded. Each help topic is split at 90% of its length: the head goes to training, the tail to
validation, so both sets cover every topic while validation text is never trained on.
"""

from __future__ import annotations

import string

import numpy as np

# Printable ASCII plus newline; the few typographic characters in the help text are mapped to ASCII.
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
_ASCII = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "--",
          "\u2026": "...", "\u00b0": " deg", "\u00df": "ss", "\t": "    "}
_UNKNOWN = "?"
_INDEX = {c: i for i, c in enumerate(VOCAB)}
assert set(string.ascii_letters + string.digits) <= set(VOCAB)


def corpus_topics() -> dict[str, str]:
    """The help topics of the running CPython, by name."""
    from pydoc_data import topics

    return dict(sorted(topics.topics.items()))


def to_ascii(text: str) -> str:
    return "".join(_ASCII.get(c, c if c in _INDEX else _UNKNOWN) for c in text)


def encode(text: str) -> np.ndarray:
    """Character ids (uint8) in `VOCAB`; characters outside it become ``?``."""
    return np.fromiter((_INDEX[c] for c in to_ascii(text)), np.uint8)


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in np.asarray(ids).ravel())


def train_val_split(val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Encoded training and validation text: the last `val_fraction` of every topic is held out."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    train, val = [], []
    for text in corpus_topics().values():
        cut = int(len(text) * (1 - val_fraction))
        train.append(text[:cut])
        val.append(text[cut:])
    return encode("\n\n".join(train)), encode("\n\n".join(val))


def batch_offsets(n_tokens: int, context: int, batch: int, steps: int, seed: int) -> np.ndarray:
    """Start offsets ``(steps, batch)`` of random windows of ``context + 1`` characters.

    Drawn once from `seed`, so every optimizer sees the same data in the same order.
    """
    if n_tokens < context + 2:
        raise ValueError(f"context ({context}) must be shorter than the text ({n_tokens} characters) minus 1")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_tokens - context - 1, size=(steps, batch), dtype=np.int32)
