"""Which implementation scores the text metrics: METEOR 1.5 and the PTB tokenizer
re-implemented in the package ("python", no Java), or the jars pycocoevalcap ships
("java", kept to cross-check). Both give the official numbers."""

from __future__ import annotations

from densevid.errors import DensevidError

BACKENDS = ("python", "java")
DEFAULT_BACKEND = "python"


def check_backend(backend: str | None) -> str:
    """The backend to use (None: the default), or one clear error."""
    backend = backend or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise DensevidError(
            f"unknown evaluation backend {backend!r}; choose from {', '.join(BACKENDS)}"
        )
    return backend
