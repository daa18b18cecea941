"""Finding video files: one extension list and one search, for every command.

``densevid caption DIR`` and ``densevid extract DIR`` look for videos the same way:
by extension, into subfolders unless told not to (hidden files and folders skipped),
sorted, each file once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from densevid.errors import DensevidError

# File extensions of the videos the field distributes (and of ids that carry one).
VIDEO_EXTENSIONS = (
    ".mp4",
    ".mkv",
    ".webm",
    ".avi",
    ".mov",
    ".m4v",
    ".flv",
    ".mpg",
    ".mpeg",
)


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def find_videos(
    paths: Sequence[str | os.PathLike],
    *,
    recursive: bool = True,
    problems: dict[str, str] | None = None,
) -> list[Path]:
    """Video files named directly or found in directories, in the order given
    (a directory's videos sorted); a file named twice is listed once.

    Args:
        paths: files and directories.
        recursive: look into subfolders of a directory.
        problems: where a path that does not exist, or a directory that holds no
            video, is recorded (path -> problem) so the search goes on; without it
            such a path raises DensevidError.
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def problem(path: str | os.PathLike, message: str) -> None:
        if problems is None:
            raise DensevidError(f"{path}: {message}")
        problems[str(path)] = message

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            candidates = p.rglob("*") if recursive else p.iterdir()
            videos = sorted(
                f
                for f in candidates
                if is_video_file(f)
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not videos:
                where = " or its subfolders" if recursive else ""
                problem(
                    raw,
                    f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in the "
                    f"directory{where}",
                )
        elif p.is_file():
            videos = [p]
        else:
            problem(raw, "no such file or directory")
            continue
        for v in videos:
            if v.resolve() not in seen:
                seen.add(v.resolve())
                found.append(v)
    return found
