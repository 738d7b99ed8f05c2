"""Worked examples for losses.py: Eq. 1-3 in least-squares form (Sec. 4) and Sec. 5.2's identity."""
import pytest
import torch

from losses import cycle_loss, generator_objective, identity_loss, lsgan_d_loss, lsgan_g_loss


def test_lsgan_discriminator_loss_averages_squares_per_patch_and_halves():
    d_real = torch.tensor([[[[1.0, 0.5]]]])  # D_Y(y): one image, a 1x2 map of patch scores
    d_fake = torch.tensor([[[[0.0, 1.0]]]])  # D_Y(G(x))
    # real: ((1 - 1)^2 + (0.5 - 1)^2) / 2 = (0 + 0.25) / 2 = 0.125
    # fake: (0^2 + 1^2) / 2 = 0.5
    # halved for D (Sec. 4): (0.125 + 0.5) / 2 = 0.3125
    # (averaging the map first would give (0.75 - 1)^2 = 0.0625 for the real term instead;
    #  without the 0.5 the answer would be 0.625; with the arguments swapped, 0.5 * (1 + 0.125))
    assert lsgan_d_loss(d_real, d_fake).item() == pytest.approx(0.3125)
