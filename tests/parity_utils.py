"""Comparisons with the original implementation's tensors, at the tolerances the reference derives."""

import torch


def assert_close_relative_to_max(actual: torch.Tensor, expected: torch.Tensor, rtol: float, name: str) -> float:
    """Asserts `max|actual - expected| <= rtol * max|expected|` and returns the ratio."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    ratio = ((actual - expected).abs().max() / expected.abs().max()).item()
    assert ratio <= rtol, f"{name}: max difference is {ratio:.3g} of max|x| (allowed {rtol})"
    return ratio


def assert_close_absolute(actual: torch.Tensor, expected: torch.Tensor, atol: float, name: str) -> float:
    """Asserts `max|actual - expected| <= atol` and returns it."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    difference = (actual - expected).abs().max().item()
    assert difference <= atol, f"{name}: max difference {difference:.3g} (allowed {atol})"
    return difference
