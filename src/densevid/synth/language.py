"""Words for a scene: reference captions (a small grammar with several phrasings of
each event) and a narration that paraphrases some events, late or early, between
chatter that has nothing to do with them.

The grammar is kept small on purpose: content words (size, colour, shape, direction,
action) always say what the picture shows; only the wording around them varies, so a
perfect model still cannot score BLEU or METEOR 1.0 against one phrasing.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

from densevid.synth.world import Action, Scene

P_SIZE_WORD = 0.95  # captions name the size this often
P_NARRATE = 0.5  # share of events the narrator mentions
NARRATION_SHIFT_S = (-1.0, 2.5)  # narration starts this far from its event
SECONDS_PER_WORD = 0.36  # speaking rate used to time cues
CUE_LENGTH_S = (1.2, 5.0)
CHATTER_EVERY_S = 20.0  # mean spacing of unrelated remarks
CUE_GAP_S = 0.1

# (word, weight): the first wording is the usual one
SIZE_WORDS = {
    "small": (("small", 0.9), ("little", 0.1)),
    "big": (("big", 0.9), ("large", 0.1)),
}
DIRECTION_PHRASES = {
    "left": (("left", 0.85), ("to the left", 0.15)),
    "right": (("right", 0.85), ("to the right", 0.15)),
    "up": (("up", 0.85), ("upward", 0.15)),
    "down": (("down", 0.85), ("downward", 0.15)),
}
EXIT_PHRASES = {
    "left": "to the left",
    "right": "to the right",
    "up": "through the top",
    "down": "through the bottom",
}
# Action -> (template, weight). Each action has a usual wording and two variants that
# share its content words. METEOR 1.5 scores a sentence that is not word-for-word the
# reference 0.4-0.55 even when only "on and off" is missing, so the usual wording must
# dominate: a model that gets every event right and always says it the usual way
# scores METEOR about 0.8 against these references (measured: README), not 1.0.
CAPTIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "appear": (
        ("{a} appears", 0.75),
        ("{a} appears on the screen", 0.125),
        ("{a} shows up", 0.125),
    ),
    "leave": (
        ("{the} leaves the scene", 0.75),
        ("{the} leaves {exit}", 0.125),
        ("{the} exits the scene", 0.125),
    ),
    "move": (
        ("{the} moves {dirp}", 0.75),
        ("{the} slides {dirp}", 0.125),
        ("{the} moves {dirp} {speed}", 0.125),
    ),
    "stop": (
        ("{the} slows down and stops", 0.75),
        ("{the} comes to a stop", 0.125),
        ("{the} stops moving", 0.125),
    ),
    "grow": (
        ("{the} grows", 0.75),
        ("{the} grows larger", 0.125),
        ("{the} gets bigger", 0.125),
    ),
    "shrink": (
        ("{the} shrinks", 0.75),
        ("{the} shrinks in size", 0.125),
        ("{the} gets smaller", 0.125),
    ),
    "change_colour": (
        ("{the} turns {new}", 0.75),
        ("{the} changes colour to {new}", 0.125),
        ("{the} becomes {new}", 0.125),
    ),
    "bounce": (
        ("{the} bounces", 0.75),
        ("{the} bounces up and down", 0.125),
        ("{the} jumps up and down", 0.125),
    ),
    "shake": (
        ("{the} shakes", 0.75),
        ("{the} shakes from side to side", 0.125),
        ("{the} wobbles", 0.125),
    ),
    "blink": (
        ("{the} blinks", 0.75),
        ("{the} blinks on and off", 0.125),
        ("{the} flashes", 0.125),
    ),
}
NARRATION: dict[str, tuple[str, ...]] = {
    "appear": (
        "oh, here comes a {colour} {shape}",
        "look, a {colour} {shape} just showed up",
        "and there is a new {shape}",
    ),
    "leave": (
        "and the {colour} {shape} is gone",
        "bye bye, {shape}",
        "there goes the {colour} one",
    ),
    "move": (
        "watch the {shape} going {dir}",
        "the {colour} one is heading {dir}",
        "now it slides over to the {dir}",
    ),
    "stop": ("and it stops", "the {shape} finally stops", "okay, it stopped"),
    "grow": ("the {shape} is getting huge", "look how big the {colour} {shape} gets"),
    "shrink": ("and now it is shrinking", "the {colour} {shape} is getting tiny"),
    "change_colour": (
        "did you see that, it is {new} now",
        "the {shape} changed its colour",
        "{new}, I like that",
    ),
    "bounce": (
        "the {shape} is so bouncy",
        "look at it jump",
        "the {colour} {shape} keeps jumping",
    ),
    "shake": ("the {shape} is shaking", "why is the {colour} one trembling"),
    "blink": ("the {colour} {shape} is blinking at us", "flash, flash, flash"),
}
CHATTER = (
    "okay, let's see what happens in this one",
    "welcome back to another video",
    "I really like this background",
    "so many shapes today",
    "hmm, interesting",
    "don't forget to subscribe",
    "what do you think comes next",
    "this part is my favourite",
    "let me know in the comments",
    "it is pretty busy in here",
    "alright",
    "so yeah, that is how it goes",
)


def caption(scene: Scene, action: Action, rng: np.random.Generator) -> str:
    """One reference sentence for an action, in a randomly chosen wording."""
    obj = scene.objects[action.obj]
    b = action.before
    words = [b.colour, obj.shape]
    if rng.random() < P_SIZE_WORD:
        words.insert(0, _weighted(rng, SIZE_WORDS[b.size_word]))
    np_ = " ".join(words)
    direction = action.direction or ""
    template = _weighted(rng, CAPTIONS[action.kind])
    speed = ""
    if action.kind == "move" and "{speed}" in template:
        if action.speed < 16:
            speed = "slowly"
        elif action.speed > 30:
            speed = "quickly"
        else:
            template = "{the} moves {dirp}"
    text = template.format(
        a=f"a {np_}",
        the=f"the {np_}",
        dirp=_weighted(rng, DIRECTION_PHRASES[direction]) if direction else "",
        exit=EXIT_PHRASES.get(direction, ""),
        speed=speed,
        new=action.new_colour or "",
    )
    return text[0].upper() + text[1:] + "."


def usual_wording(text: str) -> str:
    """A reference caption said the usual way (the grammar's most likely wording):
    what a model that gets the event right and has learned the usual phrasing says.
    Sentences the grammar cannot have made are returned unchanged."""
    body = text.strip().rstrip(".")
    low = body[:1].lower() + body[1:]
    for pattern, kind in _variant_patterns():
        m = pattern.fullmatch(low)
        if m is None:
            continue
        words = m.group("np").split()
        for options in SIZE_WORDS.values():
            if len(words) > 2 and words[1] in {w for w, _ in options}:
                words[1] = options[0][0]
        direction = next(
            (
                d
                for d, options in DIRECTION_PHRASES.items()
                if m.groupdict().get("dirp") in {w for w, _ in options}
            ),
            "",
        )
        usual = CAPTIONS[kind][0][0].format(
            a=" ".join(words),
            the=" ".join(words),
            dirp=DIRECTION_PHRASES[direction][0][0] if direction else "",
            exit="",
            speed="",
            new=m.groupdict().get("new") or "",
        )
        return usual[0].upper() + usual[1:] + "."
    return text


@functools.cache
def _variant_patterns() -> list[tuple[re.Pattern[str], str]]:
    """A regular expression for every caption template, tried in this order."""
    dirs = "|".join(
        re.escape(w) for options in DIRECTION_PHRASES.values() for w, _ in options
    )
    exits = "|".join(re.escape(w) for w in EXIT_PHRASES.values())
    fields = {
        "{a}": r"(?P<np>a [a-z ]+?)",
        "{the}": r"(?P<np>the [a-z ]+?)",
        "{dirp}": f"(?P<dirp>{dirs})",
        "{exit}": f"(?:{exits})",
        "{speed}": r"(?:slowly|quickly)",
        "{new}": r"(?P<new>[a-z]+)",
    }
    out = []
    for kind, templates in CAPTIONS.items():
        for template, _ in templates:
            pattern = re.escape(template)
            for key, rx in fields.items():
                pattern = pattern.replace(re.escape(key), rx)
            out.append((re.compile(pattern), kind))
    # longest templates first, so "bounces up and down" is not read as "bounces"
    out.sort(key=lambda p: -len(p[0].pattern))
    return out


def narration(scene: Scene, rng: np.random.Generator) -> list[tuple[float, float, str]]:
    """Timed narration cues ``(start, end, text)``: some events paraphrased with
    shifted, jittered times, plus unrelated chatter; sorted, never overlapping."""
    return [cue[:3] for cue in narration_links(scene, rng)]


def narration_links(
    scene: Scene, rng: np.random.Generator
) -> list[tuple[float, float, str, int | None]]:
    """``narration``'s cues, each with the index in ``scene.actions`` of the event
    it paraphrases (None for chatter): the ground truth of search by paraphrase
    (bench/search_experiment.py). Draws from ``rng`` exactly as ``narration``."""
    cues = []
    for index, action in enumerate(scene.actions):
        if rng.random() >= P_NARRATE:
            continue
        obj = scene.objects[action.obj]
        text = _pick(rng, NARRATION[action.kind]).format(
            colour=action.before.colour,
            shape=obj.shape,
            dir=action.direction or "",
            new=action.new_colour or "",
        )
        start = action.start + rng.uniform(*NARRATION_SHIFT_S)
        cues.append((start, _speech_length(text, rng), text, index))
    n_chatter = 1 + rng.poisson(scene.duration / CHATTER_EVERY_S)
    for _ in range(n_chatter):
        text = _pick(rng, CHATTER)
        start = rng.uniform(0, scene.duration)
        cues.append((start, _speech_length(text, rng), text, None))
    cues.sort(key=lambda c: c[0])
    out: list[tuple[float, float, str, int | None]] = []
    t_free = 0.0
    for start, length, text, index in cues:
        start = max(start, t_free, 0.0)
        end = min(start + length, scene.duration)
        if end - start < CUE_LENGTH_S[0] * 0.75:
            continue
        start, end = round(start, 3), round(end, 3)
        out.append((start, end, text, index))
        t_free = end + CUE_GAP_S
    return out


def write_vtt(cues: list[tuple[float, float, str]], path: str | os.PathLike) -> None:
    """A WebVTT subtitle file, one cue per narration line."""
    lines = ["WEBVTT", ""]
    for start, end, text in cues:
        lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}", text, ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def _vtt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _speech_length(text: str, rng: np.random.Generator) -> float:
    n = len(text.split())
    length = n * SECONDS_PER_WORD + rng.uniform(0.3, 1.0)
    return float(np.clip(length, *CUE_LENGTH_S))


def _weighted(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    weights = np.array([w for _, w in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]
