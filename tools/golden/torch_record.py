"""What the detector golden scripts share: every ``torch.randperm`` a reference draws, recorded
so that the Rust tests can replay the same permutations."""

import contextlib

import torch


@contextlib.contextmanager
def recorded_randperm():
    """Within the block, each ``torch.randperm`` result is appended (as a list) to the list this
    yields, in call order; ``torch.randperm`` is restored afterwards."""
    recorded = []
    original = torch.randperm

    def recording_randperm(*args, **kwargs):
        p = original(*args, **kwargs)
        recorded.append(p.tolist())
        return p

    torch.randperm = recording_randperm
    try:
        yield recorded
    finally:
        torch.randperm = original
