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


_tokenizers: dict[str, object] = {}


def shared_tokenizer(backend: str | None = None):
    """The process-wide PTB tokenizer of a backend (its cache grows with the
    sentences seen): ``densevid.metrics.ptb`` ("python") or Stanford's jar
    (``densevid.metrics.tokenize``, "java"); both give the same tokens."""
    backend = check_backend(backend)
    tokenizer = _tokenizers.get(backend)
    if tokenizer is None:
        if backend == "java":
            from densevid.metrics.tokenize import PTBTokenizer

            tokenizer = PTBTokenizer()
        else:
            from densevid.metrics.ptb import PythonPTBTokenizer

            tokenizer = PythonPTBTokenizer()
        _tokenizers[backend] = tokenizer
    return tokenizer
