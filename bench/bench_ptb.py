"""Benchmark: the Python PTB tokenizer against the CoreNLP 3.4.1 jar.

Tokenises every distinct caption of ../shared/data (ActivityNet and YouCook2
references, the prediction files) once with ``PythonPTBTokenizer`` and once with
``PTBTokenizer`` (the jar, JVM starts included; it runs one JVM per 50,000
sentences), checks that the two agree and prints sentences per second for each;
then times both on the first 1,000 captions, a batch where the JVM start dominates.
The Python side starts cold (fresh process, empty caches); the machine may be
shared, so compare the ratio rather than absolute times.

    python bench/bench_ptb.py [--data ../shared/data] [--no-jar]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from densevid.metrics.ptb import PythonPTBTokenizer
from densevid.metrics.tokenize import PTBTokenizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SMALL = 1000


def shared_captions(data: Path) -> list[str]:
    """Every distinct caption of the reference and prediction files, in file order."""
    sentences: list[str] = []
    refs = sorted((data / "activitynet").glob("*.json"))
    refs += sorted((data / "youcook2").glob("*.json"))
    for path in refs:
        for video in json.loads(path.read_text()).values():
            sentences += video["sentences"]
    for path in sorted((data / "predictions").glob("*.json")):
        for events in json.loads(path.read_text())["results"].values():
            sentences += [e["sentence"] for e in events]
    return list(dict.fromkeys(sentences))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-jar", action="store_true", help="time Python only")
    args = parser.parse_args()

    sentences = shared_captions(args.data)
    n = len(sentences)
    print(f"{n} distinct captions")

    t0 = time.perf_counter()
    python = PythonPTBTokenizer()(sentences)
    py_s = time.perf_counter() - t0
    print(f"python: {py_s:.2f} s, {n / py_s:,.0f} sentences/s")
    if args.no_jar:
        return

    t0 = time.perf_counter()
    jar = PTBTokenizer()(sentences)
    jar_s = time.perf_counter() - t0
    print(f"jar:    {jar_s:.2f} s, {n / jar_s:,.0f} sentences/s (JVM starts included)")
    differ = sum(jar[s] != python[s] for s in sentences)
    print(f"python/jar speed: {jar_s / py_s:.1f}x; {differ} of {n} differ")

    # A small batch, as one evaluation of a few videos sends: JVM start dominates.
    small = sentences[:SMALL]
    t0 = time.perf_counter()
    PythonPTBTokenizer()(small)
    py_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    PTBTokenizer()(small)
    jar_small = time.perf_counter() - t0
    print(
        f"{len(small)} captions: python {py_small * 1000:.0f} ms, "
        f"jar {jar_small * 1000:.0f} ms ({jar_small / py_small:.0f}x)"
    )


if __name__ == "__main__":
    main()
