"""Synthetic splits: an episode's split and seed do not depend on how many episodes are made.

Attack: with seeds numbered over all episodes, the test episodes of a small set would be
training episodes of a larger one (same world, same seed), so a model trained on the large set
would be scored on clips it saw.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.synthetic import episode_seed, generate_dataset, split_counts
from vidgen.data.store import open_clips
from vidgen.sim import WORLDS

SPLITS = ("train", "val", "test")


def episodes_of(folder: Path) -> dict[str, dict[str, bytes]]:
    """{split: {episode name: its frames and every object track, as one byte string}}."""
    out: dict[str, dict[str, bytes]] = {}
    for split in SPLITS:
        with open_clips(folder / f"{split}.h5") as f:
            starts = f["episode_starts"][()]
            names = f["episode_names"].asstr()[()]
            arrays = [f["frames"][()]] + [f["objects"][k][()] for k in sorted(f.get("objects", {}))]
            out[split] = {
                name: b"".join(a[begin:end].tobytes() for a in arrays)
                for name, begin, end in zip(names, starts[:-1], starts[1:], strict=True)
            }
    return out


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_held_out_episodes_never_train_a_set_of_another_size(world, tmp_path):
    # 5 episodes split 3/1/1, 10 split 8/1/1: numbered over all episodes, the small set's
    # test episode (number 4) would be the large set's fifth training episode.
    small, large = tmp_path / "small", tmp_path / "large"
    generate_dataset(small, world=world, episodes=5, frames=3, size=24, seed=7)
    generate_dataset(large, world=world, episodes=10, frames=3, size=24, seed=7)
    a, b = episodes_of(small), episodes_of(large)
    for held_out, training in ((a, b), (b, a)):
        train = set(training["train"].values())
        for split in ("val", "test"):
            assert not train & set(held_out[split].values()), f"{world} {split} leaked"
    # The larger set holds the smaller one: same split, same name, same episode.
    for split in SPLITS:
        assert a[split].items() <= b[split].items()
    assert sorted(b["test"]) == [f"{world}/test/00000"]
    # And every episode of a set is a different run.
    runs = [episode for split in SPLITS for episode in b[split].values()]
    assert len(set(runs)) == len(runs)


def test_same_seed_and_count_reproduce_the_files_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_dataset(tmp_path / name, episodes=4, frames=4, size=16, seed=seed)
    a, b, c = (episodes_of(tmp_path / name) for name in "abc")
    assert a == b
    assert all(a[s][n] != c[s][n] for s in SPLITS for n in a[s])


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_split_seeds_are_disjoint_streams_at_any_count(seed):
    def seeds(split: str, episodes: int) -> set[int]:
        return {episode_seed(seed, split, i) for i in range(split_counts(episodes)[split])}

    for small, large in ((100, 200), (10, 1000)):
        for held_out in ("val", "test"):
            assert not seeds(held_out, small) & seeds("train", large)
            assert not seeds(held_out, large) & seeds("train", small)
    every = [seeds(split, 1000) for split in SPLITS]
    assert sum(map(len, every)) == 1000 == len(set.union(*every))
    assert seeds("train", 100) <= seeds("train", 200)  # episode i keeps its seed
