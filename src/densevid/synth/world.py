"""The scene of one synthetic video: objects, what they do and when.

A scene is planned once from a seeded generator and then evaluated at any time
(``state_at``), so the renderer, the soundtrack and the captions all read the same
plan. Each captioned object carries a timeline of non-overlapping actions; actions of
different objects overlap freely. Distractors and the background move all the time and
never get a caption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

FRAME_SIZE = 128  # px, square frames
FPS = 8  # frames per second
MARGIN = 2.0  # px kept between an object and the frame edge
PLACEMENT_TRIES = 30  # random positions tried to keep a new object clear of others
COLLISION_STEP_S = 0.25  # time step of the overlap check between objects
COLLISION_SLACK = 0.95  # boxes may touch, not overlap

# Told apart by edge orientation even in a thumbnail: a circle has edges at every
# angle, a square at 0/90 degrees, a diamond at 45/135, a triangle at 45/135 and 0.
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (35, 190, 55),
    "blue": (45, 85, 235),
    "yellow": (240, 215, 35),
    "purple": (165, 55, 210),
}
COLOUR_NAMES = tuple(COLOURS)
SMALL_PX = (24.0, 28.0)  # bounding-box side of a "small" object, px
BIG_PX = (40.0, 46.0)  # ... of a "big" one
SIZE_SPLIT_PX = 32.0  # below: small, above: big
MIN_MOVE_PX = 16.0  # a move covers at least this distance
DIRECTIONS = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
MOVE_SPEED_PX_S = (6.0, 40.0)
BOUNCE_HEIGHT_PX = (10.0, 18.0)
BOUNCE_PERIOD_S = (0.6, 1.0)
SHAKE_WIDTH_PX = (4.0, 7.0)
SHAKE_PERIOD_S = (0.25, 0.4)
BLINK_PERIOD_S = 0.5
# Action -> (relative weight, shortest, longest duration in s; inf: any length).
ACTIONS: dict[str, tuple[float, float, float]] = {
    "appear": (1.0, 1.0, 3.0),
    "leave": (0.8, 1.0, 3.0),
    "move": (2.0, 1.0, math.inf),  # also limited by the room to move in
    "grow": (1.0, 1.0, 8.0),
    "shrink": (1.0, 1.0, 8.0),
    "change_colour": (1.0, 1.0, 6.0),
    "bounce": (1.2, 1.5, math.inf),
    "shake": (1.0, 1.0, math.inf),
    "blink": (0.8, 1.5, math.inf),
    "stop": (0.0, 1.0, 2.5),  # only right after a move (the object decelerates)
}
# Event lengths come in three classes, so that a video has short and long events:
# (probability, shortest, longest), short in seconds, medium and long as fractions
# of the video.
SHORT_S = (0.5, 1.0, 4.0)
MEDIUM_FRACTION = (0.3, 0.08, 0.25)
LONG_FRACTION = (0.2, 0.3, 0.75)
P_STOP_AFTER_MOVE = 0.35
P_VISIBLE_AT_START = 0.7


@dataclass(frozen=True)
class State:
    """Where an object is and how it looks; ``visible`` False = out of the scene."""

    x: float
    y: float
    size: float
    colour: str
    visible: bool = True
    alpha: float = 1.0
    # rgb overriding ``colour`` while a colour change blends (None otherwise)
    rgb: tuple[float, float, float] | None = None

    @property
    def size_word(self) -> str:
        return "small" if self.size < SIZE_SPLIT_PX else "big"


@dataclass(frozen=True)
class Action:
    """One captioned event: an object doing one thing from ``start`` to ``end``."""

    obj: int
    kind: str
    start: float
    end: float
    before: State
    after: State
    direction: str | None = None  # move, leave, stop
    new_colour: str | None = None  # change_colour
    speed: float = 0.0  # px/s for move / stop (speed at the start)
    period: float = 0.0  # s, bounce and blink
    height: float = 0.0  # px, bounce

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass
class SceneObject:
    """A captioned object: a fixed shape, the initial state, its actions in order."""

    shape: str
    initial: State
    actions: list[Action] = field(default_factory=list)


@dataclass(frozen=True)
class Distractor:
    """An uncaptioned grey shape that drifts and bounces off the frame edges."""

    shape: str
    size: float
    grey: int
    x0: float
    y0: float
    vx: float
    vy: float


@dataclass
class Scene:
    duration: float  # s, = n_frames / fps
    n_frames: int
    fps: int
    objects: list[SceneObject]
    distractors: list[Distractor]
    background_seed: int
    background_velocity: tuple[float, float]  # px/s of the scrolling texture
    noise_level: float  # audio noise amplitude

    @property
    def actions(self) -> list[Action]:
        """All captioned actions, sorted by (start, end)."""
        out = [a for o in self.objects for a in o.actions]
        return sorted(out, key=lambda a: (a.start, a.end, a.obj))


@dataclass(frozen=True)
class WorldConfig:
    """What a scene may contain; the presets in ``densevid.synth`` fill it in."""

    min_duration: float = 20.0
    max_duration: float = 60.0
    min_events: int = 1
    max_events: int = 10
    seconds_per_event: float = 6.0  # caps events at 1 + duration / this
    max_objects: int = 4
    n_distractors: tuple[int, int] = (2, 6)
    fps: int = FPS


def plan_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """Draws a scene: its duration, objects and their non-overlapping actions."""
    n_frames = int(round(rng.uniform(cfg.min_duration, cfg.max_duration) * cfg.fps))
    duration = n_frames / cfg.fps
    cap = max(
        cfg.min_events, min(cfg.max_events, 1 + int(duration / cfg.seconds_per_event))
    )
    n_events = int(rng.integers(cfg.min_events, cap + 1))
    n_objects = int(rng.integers(1, min(cfg.max_objects, n_events) + 1))

    objects: list[SceneObject] = []
    used: set[tuple[str, str]] = set()
    for _ in range(n_objects):
        shape, colour = _fresh_identity(rng, used)
        size = rng.uniform(*(SMALL_PX if rng.random() < 0.5 else BIG_PX))
        others = [o.initial for o in objects if o.initial.visible]
        x, y = _free_position(rng, size, others)
        visible = bool(rng.random() < P_VISIBLE_AT_START)
        objects.append(SceneObject(shape, State(x, y, size, colour, visible)))

    _schedule(rng, objects, n_events, duration, used)
    if not any(o.actions for o in objects):
        _force_one_action(rng, objects[0], duration)

    distractors = []
    for _ in range(int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))):
        speed = rng.uniform(5.0, 25.0)
        angle = rng.uniform(0, 2 * math.pi)
        distractors.append(
            Distractor(
                shape=str(rng.choice(SHAPES)),
                size=float(rng.uniform(8.0, 13.0)),
                grey=int(rng.integers(90, 200)),
                x0=float(rng.uniform(0, FRAME_SIZE)),
                y0=float(rng.uniform(0, FRAME_SIZE)),
                vx=speed * math.cos(angle),
                vy=speed * math.sin(angle),
            )
        )
    angle = rng.uniform(0, 2 * math.pi)
    bg_speed = rng.uniform(2.0, 8.0)
    return Scene(
        duration=duration,
        n_frames=n_frames,
        fps=cfg.fps,
        objects=objects,
        distractors=distractors,
        background_seed=int(rng.integers(2**31)),
        background_velocity=(bg_speed * math.cos(angle), bg_speed * math.sin(angle)),
        noise_level=float(rng.uniform(0.02, 0.06)),
    )


def _fresh_identity(
    rng: np.random.Generator, used: set[tuple[str, str]]
) -> tuple[str, str]:
    """A (shape, colour) no other object in the scene has, so captions are unique."""
    free = [(s, c) for s in SHAPES for c in COLOUR_NAMES if (s, c) not in used]
    shape, colour = free[int(rng.integers(len(free)))]
    used.add((shape, colour))
    return shape, colour


def _free_position(
    rng: np.random.Generator, size: float, others: list[State]
) -> tuple[float, float]:
    """A random position whose box keeps clear of the other objects' boxes (the
    least-overlapping of a few tries), so that objects start out in plain view."""
    best, best_overlap = (0.0, 0.0), math.inf
    for _ in range(PLACEMENT_TRIES):
        x, y = _random_position(rng, size)
        overlap = sum(
            max(0.0, (size + o.size) / 2 + MARGIN - abs(x - o.x))
            * max(0.0, (size + o.size) / 2 + MARGIN - abs(y - o.y))
            for o in others
        )
        if overlap < best_overlap:
            best, best_overlap = (x, y), overlap
        if overlap == 0.0:
            break
    return best


def _random_position(rng: np.random.Generator, size: float) -> tuple[float, float]:
    lo, hi = size / 2 + MARGIN, FRAME_SIZE - size / 2 - MARGIN
    return float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))


def _room(state: State, direction: str) -> float:
    """Free px between the object and the frame edge in a direction."""
    half = state.size / 2 + MARGIN
    return {
        "left": state.x - half,
        "right": FRAME_SIZE - half - state.x,
        "up": state.y - half,
        "down": FRAME_SIZE - half - state.y,
    }[direction]


def _schedule(
    rng: np.random.Generator,
    objects: list[SceneObject],
    n_events: int,
    duration: float,
    used: set[tuple[str, str]],
) -> None:
    """Places ``n_events`` actions on the objects' timelines (fewer if none fits).

    Actions are placed in time order (the object whose timeline ends first goes
    next), so each new action can be checked against everything that happens while
    it runs: objects do not move, grow or appear into one another.
    """
    cursor = [float(rng.uniform(0.0, 0.25 * duration)) for _ in objects]
    state = [o.initial for o in objects]
    mean_gap = duration / (n_events + 1)
    placed, attempts = 0, 0
    while placed < n_events and attempts < 40 * n_events:
        attempts += 1
        i = int(np.argmin(cursor))
        t0 = cursor[i] + rng.uniform(0.0, mean_gap)
        room = duration - 0.25 - t0
        if room < SHORT_S[1]:
            cursor[i] = math.inf  # this object is done
            if all(math.isinf(c) for c in cursor):
                break
            continue
        others = [
            st
            for j, o in enumerate(objects)
            if j != i and (st := state_at(o, t0)).visible
        ]
        made = _draw_action(
            rng, i, objects[i].shape, state[i], t0, room, duration, used, others
        )
        horizon = max([c for c in cursor if not math.isinf(c)] + [t0])
        if not made or _collides(made, objects, i, horizon):
            if made and made[0].kind == "change_colour":  # give the colour back
                used.discard((objects[i].shape, made[0].new_colour or ""))
                used.add((objects[i].shape, made[0].before.colour))
            cursor[i] = t0  # try something else a little later
            continue
        for action in made[: n_events - placed]:  # a trailing stop may not fit
            objects[i].actions.append(action)
            state[i] = action.after
            cursor[i] = action.end
            placed += 1
        cursor[i] += 0.25  # a beat between one object's actions


def _force_one_action(rng: np.random.Generator, obj: SceneObject, duration: float):
    """Every video has at least one event: when scheduling placed none (rare, in a
    crowded scene), the first object blinks where it is, or appears if unseen."""
    s = obj.initial
    length = float(rng.uniform(1.5, min(3.0, duration / 2)))
    t0 = float(rng.uniform(0.0, duration - length - 0.25))
    if s.visible:
        action = Action(0, "blink", t0, t0 + length, s, s, period=BLINK_PERIOD_S)
    else:
        before = replace(s, visible=False, alpha=0.0)
        after = replace(s, visible=True, alpha=1.0)
        action = Action(0, "appear", t0, t0 + length, before, after)
    obj.actions.append(action)


def _collides(
    actions: list[Action], objects: list[SceneObject], i: int, horizon: float
) -> bool:
    """Whether object i, doing ``actions`` and then resting until ``horizon`` (the
    end of what the others have planned), would overlap another visible object."""
    if actions[0].kind == "leave":  # on its way out: a brief pass is fine
        return False
    end = max(actions[-1].end, horizon)
    for t in np.arange(actions[0].start, end + COLLISION_STEP_S, COLLISION_STEP_S):
        s = _at(actions, float(t))
        if not s.visible and s.alpha <= 0:
            continue
        for j, o in enumerate(objects):
            if j == i:
                continue
            other = state_at(o, float(t))
            if not other.visible:
                continue
            reach = (s.size + other.size) / 2 * COLLISION_SLACK
            if abs(s.x - other.x) < reach and abs(s.y - other.y) < reach:
                return True
    return False


def _at(actions: list[Action], t: float) -> State:
    for a in actions:
        if t < a.end:
            return _during(a, max(0.0, t - a.start) / a.length, max(0.0, t - a.start))
    return actions[-1].after


def _draw_action(
    rng: np.random.Generator,
    obj: int,
    shape: str,
    s: State,
    t0: float,
    room: float,
    duration: float,
    used: set[tuple[str, str]],
    others: list[State],
) -> list[Action]:
    """One action the object can do now (plus a stop after some moves), or [].
    ``others``: the other visible objects at t0, kept clear of when appearing."""
    u = rng.random()
    if u < SHORT_S[0]:
        lo, hi = SHORT_S[1:]
    elif u < SHORT_S[0] + MEDIUM_FRACTION[0]:
        lo, hi = (f * duration for f in MEDIUM_FRACTION[1:])
    else:
        lo, hi = (f * duration for f in LONG_FRACTION[1:])
    length = float(rng.uniform(lo, max(lo, min(hi, room))))
    if length > room:
        return []
    kinds = _possible(s, length)
    if not kinds:  # nothing lasts that long from this state: a short action instead
        length = float(rng.uniform(SHORT_S[1], min(SHORT_S[2], room)))
        kinds = _possible(s, length)
    if not kinds:
        return []
    weights = np.array([ACTIONS[k][0] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    length = float(np.clip(length, ACTIONS[kind][1], ACTIONS[kind][2]))
    if length > room:
        return []
    t1 = t0 + length

    if kind == "appear":
        x, y = _free_position(rng, s.size, others)
        before = replace(s, x=x, y=y, visible=False, alpha=0.0)
        after = replace(before, visible=True, alpha=1.0)
        return [Action(obj, kind, t0, t1, before, after)]
    if kind == "leave":
        direction = min(DIRECTIONS, key=lambda d: _room(s, d))
        dist = _room(s, direction) + s.size + 2 * MARGIN
        dx, dy = DIRECTIONS[direction]
        after = replace(s, x=s.x + dx * dist, y=s.y + dy * dist, visible=False)
        return [
            Action(
                obj, kind, t0, t1, s, after, direction=direction, speed=dist / length
            )
        ]
    if kind == "move":
        return _move(rng, obj, s, t0, length, room)
    if kind == "grow":
        target = min(float(rng.uniform(*BIG_PX)), _max_size(s))
        return [Action(obj, kind, t0, t1, s, replace(s, size=target))]
    if kind == "shrink":
        target = float(rng.uniform(*SMALL_PX))
        return [Action(obj, kind, t0, t1, s, replace(s, size=target))]
    if kind == "change_colour":
        free = [c for c in COLOUR_NAMES if c != s.colour and (shape, c) not in used]
        if not free:
            return []
        new = free[int(rng.integers(len(free)))]
        used.discard((shape, s.colour))
        used.add((shape, new))
        return [Action(obj, kind, t0, t1, s, replace(s, colour=new), new_colour=new)]
    if kind == "bounce":
        height = float(min(rng.uniform(*BOUNCE_HEIGHT_PX), _room(s, "up")))
        period = float(rng.uniform(*BOUNCE_PERIOD_S))
        return [Action(obj, kind, t0, t1, s, s, period=period, height=height)]
    if kind == "shake":
        width = float(
            min(rng.uniform(*SHAKE_WIDTH_PX), _room(s, "left"), _room(s, "right"))
        )
        period = float(rng.uniform(*SHAKE_PERIOD_S))
        return [Action(obj, kind, t0, t1, s, s, period=period, height=width)]
    if kind == "blink":
        return [Action(obj, kind, t0, t1, s, s, period=BLINK_PERIOD_S)]
    raise AssertionError(kind)


def _possible(s: State, length: float) -> list[str]:
    """Actions the object can do from state s for ``length`` seconds."""
    if not s.visible:
        kinds = ["appear"]
    else:
        kinds = ["leave", "change_colour", "blink"]
        if any(
            _room(s, d) >= max(MIN_MOVE_PX, MOVE_SPEED_PX_S[0] * length)
            for d in DIRECTIONS
        ):
            kinds.append("move")
        if s.size < SIZE_SPLIT_PX and _fits(s, BIG_PX[1]):
            kinds.append("grow")
        if s.size >= SIZE_SPLIT_PX:
            kinds.append("shrink")
        if _room(s, "up") >= BOUNCE_HEIGHT_PX[0]:
            kinds.append("bounce")
        if min(_room(s, "left"), _room(s, "right")) >= SHAKE_WIDTH_PX[0]:
            kinds.append("shake")
    return [k for k in kinds if ACTIONS[k][1] <= length <= ACTIONS[k][2] + 1e-9]


def _move(
    rng: np.random.Generator, obj: int, s: State, t0: float, length: float, room: float
) -> list[Action]:
    """A move at constant speed, followed by a decelerating stop some of the time."""
    need = max(MIN_MOVE_PX, MOVE_SPEED_PX_S[0] * length)
    options = [d for d in DIRECTIONS if _room(s, d) >= need]
    direction = options[int(rng.integers(len(options)))]
    avail = _room(s, direction)
    stop_len = float(rng.uniform(*ACTIONS["stop"][1:]))
    with_stop = rng.random() < P_STOP_AFTER_MOVE and length + stop_len <= room
    # distance covered: speed * (length + stop_len / 2) with a stop, else speed * length
    span = length + (stop_len / 2 if with_stop else 0.0)
    top = min(MOVE_SPEED_PX_S[1], avail / span)
    if top < MOVE_SPEED_PX_S[0]:
        with_stop, span = False, length
        top = min(MOVE_SPEED_PX_S[1], avail / span)
    lo = min(top, max(MOVE_SPEED_PX_S[0], MIN_MOVE_PX / span))
    speed = float(rng.uniform(lo, top))
    dx, dy = DIRECTIONS[direction]
    mid = replace(s, x=s.x + dx * speed * length, y=s.y + dy * speed * length)
    t1 = t0 + length
    out = [Action(obj, "move", t0, t1, s, mid, direction=direction, speed=speed)]
    if with_stop:
        d = speed * stop_len / 2  # uniform deceleration to rest
        end = replace(mid, x=mid.x + dx * d, y=mid.y + dy * d)
        out.append(
            Action(
                obj,
                "stop",
                t1,
                t1 + stop_len,
                mid,
                end,
                direction=direction,
                speed=speed,
            )
        )
    return out


def _fits(s: State, size: float) -> bool:
    return _max_size(s) >= min(size, BIG_PX[0])


def _max_size(s: State) -> float:
    """Largest size that keeps the object, centred where it is, inside the frame."""
    return 2 * (min(s.x, s.y, FRAME_SIZE - s.x, FRAME_SIZE - s.y) - MARGIN)


def state_at(obj: SceneObject, t: float) -> State:
    """The object's state at time t (s), from its plan."""
    s = obj.initial
    for a in obj.actions:
        if t < a.start:
            return s
        if t < a.end:
            return _during(a, (t - a.start) / a.length, t - a.start)
        s = a.after
    return s


def _during(a: Action, p: float, dt: float) -> State:
    """State part-way (fraction p, dt seconds in) through an action."""
    b, e = a.before, a.after
    if a.kind == "appear":
        return replace(e, alpha=p)
    if a.kind in ("leave", "move"):
        return replace(b, x=b.x + (e.x - b.x) * p, y=b.y + (e.y - b.y) * p)
    if a.kind == "stop":
        dx, dy = DIRECTIONS[a.direction or "left"]
        d = a.speed * dt - a.speed * dt * dt / (2 * a.length)
        return replace(b, x=b.x + dx * d, y=b.y + dy * d)
    if a.kind in ("grow", "shrink"):
        return replace(b, size=b.size + (e.size - b.size) * p)
    if a.kind == "change_colour":
        c0 = np.asarray(COLOURS[b.colour], float)
        c1 = np.asarray(COLOURS[e.colour], float)
        rgb = tuple(float(v) for v in c0 + (c1 - c0) * p)
        return replace(b, rgb=rgb)
    if a.kind == "bounce":
        hop = abs(math.sin(math.pi * dt / a.period))
        return replace(b, y=b.y - a.height * hop)
    if a.kind == "shake":
        return replace(b, x=b.x + a.height * math.sin(2 * math.pi * dt / a.period))
    if a.kind == "blink":
        on = (dt / a.period) % 1.0 < 0.5
        return replace(b, alpha=1.0 if on else 0.15)
    raise AssertionError(a.kind)
