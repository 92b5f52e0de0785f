"""A top-down pushing world: an agent driven by commanded motion pushes one to three objects.

A small stand-in for the Google push and BAIR robot data (Finn, Goodfellow & Levine 2016,
"Unsupervised Learning for Physical Interaction through Video Prediction"): the agent (the
gripper, a grey disc) follows a commanded velocity, and objects of different shapes and
colours move only when something touches them. Contacts, friction and walls come from the
pymunk 2-D physics engine (Chipmunk), not hand-written collision code.

Units: the table is a square of side 1; velocities are sides per frame. Top-down ground
friction is pymunk's standard trick: a pivot and a gear joint to the static body with
``max_bias=0`` resist linear and angular velocity up to a force cap, so a resting object
stays exactly at rest. The agent is a heavy dynamic disc pulled towards a kinematic control
body that moves at the commanded velocity, so walls and objects can stop it (its state is
where it really went, the action what was commanded).

The policy is random but smooth: it heads for an object (or sometimes a random point) with
low-pass filtered noise and switches target every few frames, so contacts happen often.
``actions[t]`` is the command applied between frames t and t+1, in units of ``max_speed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pymunk

_SCALE = 100.0  # physics units per side: Chipmunk's slop and tolerances suit this scale
_SUBPIXEL = 4  # cv2 drawing with 4 fractional bits: 1/16-pixel positions
_SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class PusherConfig:
    """World parameters; lengths are fractions of the side, speeds sides per frame."""

    num_objects: tuple[int, int] = (1, 3)  # range, drawn per episode
    object_size: tuple[float, float] = (0.08, 0.12)  # circumradius range, per object
    agent_radius: float = 0.07
    max_speed: float = 0.03  # under 2 px a frame at 64x64, within a 5x5 kernel's reach
    target_switch: tuple[int, int] = (4, 12)  # frames between policy targets
    random_target_prob: float = 0.25  # head for a random point instead of an object
    smoothing: float = 0.6  # low-pass weight of the previous command
    friction: float = 0.02  # ground friction deceleration, sides per frame^2
    substeps: int = 10  # physics steps per frame
    background: tuple[int, int, int] = (48, 48, 56)
    agent_color: tuple[int, int, int] = (210, 210, 210)
    colors: tuple[tuple[int, int, int], ...] = (
        (230, 60, 60),
        (60, 200, 80),
        (70, 110, 240),
        (240, 200, 50),
        (200, 80, 220),
    )


def _polygon(kind: str, radius: float) -> list[tuple[float, float]]:
    sides = {"square": 4, "triangle": 3}[kind]
    return [
        (radius * math.cos(2 * math.pi * i / sides), radius * math.sin(2 * math.pi * i / sides))
        for i in range(sides)
    ]


def _place(rng: np.random.Generator, radii: list[float]) -> list[np.ndarray]:
    """Non-overlapping centres (with a gap) inside the walls, by rejection sampling."""
    for _ in range(100):
        centres: list[np.ndarray] = []
        for r in radii:
            for _ in range(200):
                p = rng.uniform(r + 0.02, 1.0 - r - 0.02, size=2)
                if all(
                    np.hypot(*(p - q)) > r + s + 0.04 for q, s in zip(centres, radii, strict=False)
                ):
                    centres.append(p)
                    break
            else:
                break
        if len(centres) == len(radii):
            return centres
    raise ValueError("could not place the agent and objects; use fewer or smaller objects")


def _ground_friction(space: pymunk.Space, body: pymunk.Body, force: float, radius: float) -> None:
    """Top-down Coulomb-like friction: joints to the static body that only damp velocity."""
    pivot = pymunk.PivotJoint(space.static_body, body, (0, 0), (0, 0))
    gear = pymunk.GearJoint(space.static_body, body, 0.0, 1.0)
    for joint, cap in ((pivot, force), (gear, force * radius)):
        joint.max_bias = 0.0  # correct velocity only, never position
        joint.max_force = cap
        space.add(joint)


def _touching(body: pymunk.Body) -> bool:
    """Whether another dynamic body (the agent or an object, not a wall) touches ``body``."""
    found = []
    body.each_arbiter(
        lambda arbiter: found.extend(
            shape.body is not body and shape.body.body_type == pymunk.Body.DYNAMIC
            for shape in arbiter.shapes
        )
    )
    return any(found)


def simulate(
    num_frames: int,
    size: int | tuple[int, int],
    seed: int,
    config: PusherConfig = PusherConfig(),  # noqa: B008 (frozen, so shared is safe)
) -> dict[str, np.ndarray]:
    """Simulate and render one episode. ``size`` is an int or (height, width).

    Returns uint8 ``frames`` [T, H, W, 3]; float32 ``actions`` [T, 2] (commanded velocity /
    max_speed, the last one unused), ``states`` [T, 2] (agent x, y in [0, 1], y down), and
    object tracks padded to ``config.num_objects[1]`` slots: ``positions`` [T, K, 2],
    ``angles`` [T, K], ``present`` [T, K] and ``touched`` [T, K] (1 where the object was in
    contact with the agent or another object during the step that led to frame t).
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if config.max_speed <= 0 or not 1 <= config.num_objects[0] <= config.num_objects[1]:
        raise ValueError("max_speed must be positive and num_objects a range of at least 1")
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    rng = np.random.default_rng(seed)
    cfg, s = config, _SCALE
    count = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    kinds = [_SHAPES[i] for i in rng.integers(0, len(_SHAPES), size=count)]
    sizes = rng.uniform(*cfg.object_size, size=count).tolist()
    colors = [cfg.colors[i] for i in rng.permutation(len(cfg.colors))[:count]]
    centres = _place(rng, [cfg.agent_radius, *sizes])

    space = pymunk.Space()
    space.iterations = 20
    for a, b in (((0, 0), (s, 0)), ((s, 0), (s, s)), ((s, s), (0, s)), ((0, s), (0, 0))):
        wall = pymunk.Segment(space.static_body, a, b, 1.0)
        wall.friction = 0.5
        space.add(wall)

    agent = pymunk.Body(mass=10.0, moment=math.inf)
    agent.position = tuple(centres[0] * s)
    agent_shape = pymunk.Circle(agent, cfg.agent_radius * s)
    agent_shape.friction = 0.5
    control = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    control.position = agent.position
    drive = pymunk.PivotJoint(control, agent, (0, 0), (0, 0))
    drive.max_bias = 0.0  # match velocities; the agent lags only when something resists
    drive.max_force = 5e4
    space.add(agent, agent_shape, control, drive)

    bodies: list[pymunk.Body] = []
    for kind, r, centre in zip(kinds, sizes, centres[1:], strict=True):
        mass = 1.0
        if kind == "circle":
            body = pymunk.Body(mass, pymunk.moment_for_circle(mass, 0, r * s))
            shape: pymunk.Shape = pymunk.Circle(body, r * s)
        else:
            vertices = [(x * s, y * s) for x, y in _polygon(kind, r)]
            body = pymunk.Body(mass, pymunk.moment_for_poly(mass, vertices))
            shape = pymunk.Poly(body, vertices)
        body.position, body.angle = tuple(centre * s), float(rng.uniform(0, 2 * math.pi))
        shape.friction = 0.4
        space.add(body, shape)
        # Force = mass x deceleration (one frame is one physics time unit); torque ~ force x r.
        _ground_friction(space, body, mass * cfg.friction * s, r * s)
        bodies.append(body)

    slots = cfg.num_objects[1]
    positions = np.zeros((num_frames, slots, 2))
    angles = np.zeros((num_frames, slots))
    touched = np.zeros((num_frames, slots))
    actions = np.zeros((num_frames, 2))
    states = np.zeros((num_frames, 2))
    dt = 1.0 / cfg.substeps
    command, target, switch_at = np.zeros(2), np.zeros(2), 0
    for t in range(num_frames):
        states[t] = np.array(agent.position) / s
        for k, body in enumerate(bodies):
            positions[t, k], angles[t, k] = np.array(body.position) / s, body.angle
        if t == switch_at:  # a new target: an object, or now and then a random point
            if rng.random() < cfg.random_target_prob:
                target = rng.uniform(0.1, 0.9, size=2)
            else:
                target = positions[t, int(rng.integers(count))].copy()
            switch_at = t + int(rng.integers(cfg.target_switch[0], cfg.target_switch[1] + 1))
        # Head for the target (overshooting it, so the object gets pushed) with some noise.
        heading = target - states[t]
        wanted = heading / max(np.hypot(*heading), 1e-6) + rng.normal(0.0, 0.5, size=2)
        command = cfg.smoothing * command + (1 - cfg.smoothing) * wanted * cfg.max_speed
        speed = np.hypot(*command)
        if speed > cfg.max_speed:
            command *= cfg.max_speed / speed
        actions[t] = command / cfg.max_speed
        if t == num_frames - 1:
            break
        control.velocity = tuple(command * s)  # sides per frame = physics units per time 1
        for _ in range(cfg.substeps):
            space.step(dt)
            for k, body in enumerate(bodies):
                touched[t + 1, k] = max(touched[t + 1, k], _touching(body))

    present = np.zeros((num_frames, slots))
    present[:, :count] = 1.0
    return {
        "frames": render(
            positions[:, :count],
            angles[:, :count],
            states,
            kinds,
            sizes,
            colors,
            cfg,
            (height, width),
        ),  # fmt: skip
        "actions": actions.astype(np.float32),
        "states": states.astype(np.float32),
        "positions": positions.astype(np.float32),
        "angles": angles.astype(np.float32),
        "present": present.astype(np.float32),
        "touched": touched.astype(np.float32),
    }


def render(
    positions: np.ndarray,
    angles: np.ndarray,
    agent: np.ndarray,
    kinds: list[str],
    sizes: list[float],
    colors: list[tuple[int, int, int]],
    config: PusherConfig,
    size: tuple[int, int],
) -> np.ndarray:
    """Anti-aliased top-down frames: positions [T, K, 2], angles [T, K], agent [T, 2] (all
    in table units) -> uint8 [T, H, W, 3]; objects first, the agent drawn over them."""
    height, width = size
    scale = np.array([width, height]) * (1 << _SUBPIXEL)  # table units -> fixed-point pixels
    frames = np.empty((len(agent), height, width, 3), np.uint8)
    for t in range(len(agent)):
        image = np.empty((height, width, 3), np.uint8)
        image[:] = config.background
        for k, (kind, r, color) in enumerate(zip(kinds, sizes, colors, strict=True)):
            centre = positions[t, k]
            if kind == "circle":
                axes = np.rint(r * scale).astype(int)
                cv2.ellipse(image, tuple(np.rint(centre * scale).astype(int)), tuple(axes),
                            0, 0, 360, color, -1, cv2.LINE_AA, _SUBPIXEL)  # fmt: skip
            else:
                c, s_ = math.cos(angles[t, k]), math.sin(angles[t, k])
                corners = np.array([(c * x - s_ * y, s_ * x + c * y) for x, y in _polygon(kind, r)])
                points = np.rint((centre + corners) * scale).astype(np.int32)
                cv2.fillPoly(image, [points], color, cv2.LINE_AA, _SUBPIXEL)
        axes = np.rint(config.agent_radius * scale).astype(int)
        cv2.ellipse(image, tuple(np.rint(agent[t] * scale).astype(int)), tuple(axes),
                    0, 0, 360, config.agent_color, -1, cv2.LINE_AA, _SUBPIXEL)  # fmt: skip
        frames[t] = image
    return frames
