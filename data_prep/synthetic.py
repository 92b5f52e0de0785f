"""Render a synthetic world (``vidgen.sim.WORLDS``) into train/val/test clip files."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from data_prep.common import SplitWriter, parse_size, progress
from vidgen.errors import VidgenError
from vidgen.sim import WORLDS

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
# Each split draws its episode seeds from its own stream, so no count moves an episode across.
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def split_counts(episodes: int) -> dict[str, int]:
    """Episodes per split, 80/10/10, every split getting at least one."""
    if episodes < 3:
        raise VidgenError(f"need at least 3 episodes (one per split), got {episodes}.")
    val = test = max(1, round(episodes * SPLIT_FRACTIONS["val"]))
    return {"train": episodes - val - test, "val": val, "test": test}


def generate_dataset(
    out: str | os.PathLike,
    world: str = "bouncing_balls",
    episodes: int = 100,
    frames: int = 40,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    fps: float = 10.0,
    force: bool = False,
    options: Mapping[str, object] | None = None,
) -> None:
    """Render ``episodes`` seeded runs of ``world``.

    Episode i of a split is seeded by (``seed``, split, i): the same ``seed`` always gives a
    split the same episodes in the same order, and a test or val episode is never a training
    episode of a dataset with any other episode count.

    ``options`` set fields of the world's config (e.g. billiards ``balls="1-3"``)."""
    if world not in WORLDS:
        raise VidgenError(f"unknown world {world!r}; choose from {', '.join(WORLDS)}.")
    if frames <= 0:
        raise VidgenError(f"frames must be positive, got {frames}.")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if min(size) <= 0:
        raise VidgenError(f"size must be positive, got {size}.")
    simulate = WORLDS[world]
    config = world_config(world, options or {})
    jobs = [(split, i) for split, count in split_counts(episodes).items() for i in range(count)]
    attrs = {
        "world": world,
        "seed": seed,
        # The whole world config as JSON data, so scores read the world's balls and speeds.
        "world_config": json.dumps(dataclasses.asdict(config)),
    }
    with SplitWriter(
        out, fps=fps, source=f"synthetic:{world}", force=force, compression="lzf", attrs=attrs
    ) as writer:
        for split, index in progress(jobs, f"rendering {world}"):
            run = simulate(
                num_frames=frames, size=size, seed=episode_seed(seed, split, index), config=config
            )
            tracks = {
                key: value
                for key, value in run.items()
                if key not in ("frames", "actions", "states")
            }
            writer.add(
                split,
                f"{world}/{split}/{index:05d}",
                run["frames"],
                actions=run.get("actions"),
                states=run.get("states"),
                objects=tracks,
            )


def episode_seed(seed: int, split: str, index: int) -> int:
    """The simulator seed of episode ``index`` of ``split``: a 128-bit hash of (seed, split,
    index), so seeds of different episodes do not collide at any dataset size."""
    words = np.random.SeedSequence([seed, SPLIT_CODES[split], index]).generate_state(4)
    return int.from_bytes(words.tobytes(), "little")


def _config_type(world: str) -> type:
    """The config dataclass a world's ``simulate`` takes as its ``config`` default."""
    return type(inspect.signature(WORLDS[world]).parameters["config"].default)


# Config field types settable from the command line; ranges are written "1-3" or "1,3".
_PARSERS = {
    "int": int,
    "float": float,
    "str": str,
    "tuple[int, int]": int,
    "tuple[float, float]": float,
}


def _parse_option(text: str, annotation: str) -> object:
    parse = _PARSERS[annotation]
    if not annotation.startswith("tuple"):
        return parse(text)
    parts = re.split(r"(?<=[0-9.])[-,](?=[0-9.])", text)  # "3e4-8e4" splits, "1e-3" does not
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise ValueError(text)
    return tuple(parse(p) for p in parts)


def world_config(world: str, options: Mapping[str, object]) -> object:
    """The world's config with ``options`` set; strings (the command line) are parsed."""
    config_type = _config_type(world)
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    values = {}
    for name, value in options.items():
        if name not in fields:
            raise VidgenError(f"world {world} has no option {name!r}; it has {', '.join(fields)}.")
        annotation = str(fields[name].type)
        try:
            if isinstance(value, str) and annotation in _PARSERS:
                value = _parse_option(value, annotation)
            elif isinstance(value, Sequence):  # a list, tuple or Hydra ListConfig
                value = tuple(value)
        except ValueError:
            raise VidgenError(f"option {name}={value!r} is not a valid {annotation}.") from None
        values[name] = value
    try:
        return dataclasses.replace(config_type(), **values)
    except (TypeError, ValueError) as err:
        raise VidgenError(f"invalid {world} options: {err}.") from None


def _cli_options() -> dict[str, list[str]]:
    """Every world config field the command line can set -> the worlds that have it."""
    options: dict[str, list[str]] = {}
    for world in sorted(WORLDS):
        for field in dataclasses.fields(_config_type(world)):
            if str(field.type) in _PARSERS:
                options.setdefault(field.name, []).append(world)
    return options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", default="bouncing_balls", choices=sorted(WORLDS))
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--episodes", type=int, default=100, help="episodes over all splits")
    parser.add_argument("--frames", type=int, default=40, help="frames per episode")
    parser.add_argument("--size", default="64", help="frame size, S or HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    world_options = parser.add_argument_group("world options (ranges as LO-HI)")
    for name, worlds in _cli_options().items():
        flag = "--" + name.replace("_", "-")
        world_options.add_argument(
            flag, dest=f"option_{name}", metavar="VALUE", help=", ".join(worlds)
        )


def run(args: argparse.Namespace) -> int:
    options = {
        key.removeprefix("option_"): value
        for key, value in vars(args).items()
        if key.startswith("option_") and value is not None
    }
    generate_dataset(
        args.out,
        args.world,
        args.episodes,
        args.frames,
        parse_size(args.size),
        args.seed,
        force=args.force,
        options=options,
    )
    print(f"wrote {args.out}/train.h5, val.h5, test.h5")
    return 0
