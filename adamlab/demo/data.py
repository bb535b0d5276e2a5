"""The corpus: the English help text that ships with every CPython (`pydoc_data.topics`), character level.

Nothing is downloaded. The topics are joined and cut into chunks of `CHUNK` characters; every tenth chunk is
held out for validation, so both sets come from the same mix of topics (the gap between their losses measures
overfitting, not a change of subject) while validation text is never trained on.
"""

from __future__ import annotations

import string

import numpy as np

# Printable ASCII plus newline; the few typographic characters in the help text are mapped to ASCII.
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
_ASCII = {
    "\u201c": '"',
    "\u201d": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u2013": "-",
    "\u2014": "--",
    "\u2026": "...",
    "\u00b0": " deg",
    "\u00df": "ss",
    "\t": "    ",
}
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


CHUNK = 1000


def train_val_split(every: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Encoded training and validation text: every `every`-th chunk of `CHUNK` characters is held out."""
    if not isinstance(every, int) or every < 2:
        raise ValueError(f"every must be an int >= 2, got {every!r}")
    ids = encode("\n\n".join(corpus_topics().values()))
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    val = [c for i, c in enumerate(chunks) if i % every == every // 2]
    train = [c for i, c in enumerate(chunks) if i % every != every // 2]
    return np.concatenate(train), np.concatenate(val)


def batch_offsets(n_tokens: int, context: int, batch: int, steps: int, seed: int) -> np.ndarray:
    """Start offsets ``(steps, batch)`` of random windows of ``context + 1`` characters.

    Drawn once from `seed`, so every optimizer sees the same data in the same order.
    """
    if n_tokens < context + 2:
        raise ValueError(f"context ({context}) must be shorter than the text ({n_tokens} characters) minus 1")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_tokens - context - 1, size=(steps, batch), dtype=np.int32)
