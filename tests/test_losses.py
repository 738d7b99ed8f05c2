"""Worked examples for losses.py: Eq. 1-3 in least-squares form (Sec. 4) and Sec. 5.2's identity."""
import pytest
import torch

from losses import cycle_loss, generator_objective, identity_loss, lsgan_d_loss, lsgan_g_loss

pytestmark = pytest.mark.paper  # every test here is a worked example of the paper


def test_lsgan_discriminator_loss_averages_squares_per_patch_and_halves():
    d_real = torch.tensor([[[[1.0, 0.5]]]])  # D_Y(y): one image, a 1x2 map of patch scores
    d_fake = torch.tensor([[[[0.0, 1.0]]]])  # D_Y(G(x))
    # real: ((1 - 1)^2 + (0.5 - 1)^2) / 2 = (0 + 0.25) / 2 = 0.125
    # fake: (0^2 + 1^2) / 2 = 0.5
    # halved for D (appendix 7.1): (0.125 + 0.5) / 2 = 0.3125
    # (averaging the map first would give (0.75 - 1)^2 = 0.0625 for the real term instead;
    #  without the 0.5 the answer would be 0.625; with the arguments swapped, 0.5 * (1 + 0.125))
    assert lsgan_d_loss(d_real, d_fake).item() == pytest.approx(0.3125)


def test_lsgan_generator_loss_pushes_fake_scores_to_1():
    d_fake = torch.tensor([[[[0.0, 0.5], [1.0, 2.0]]]])  # D_Y(G(x)), a 2x2 map
    # ((0 - 1)^2 + (0.5 - 1)^2 + (1 - 1)^2 + (2 - 1)^2) / 4 = (1 + 0.25 + 0 + 1) / 4 = 0.5625
    # (squaring the mean instead: (0.875 - 1)^2 = 0.015625; the D target 0 would give 1.3125)
    assert lsgan_g_loss(d_fake).item() == pytest.approx(0.5625)


def test_cycle_loss_is_mean_absolute_difference():
    real_x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    rec_x = torch.tensor([1.0, 1.0, 0.0, 3.0])  # F(G(x))
    # |1 - 0| + |1 - 1| + |0 - 2| + |3 - 3| = 1 + 0 + 2 + 0 = 3, over 4 values: 0.75
    # (squared error would give (1 + 4) / 4 = 1.25; the signed mean -0.25; the sum 3)
    assert cycle_loss(real_x, rec_x).item() == pytest.approx(0.75)


def test_identity_loss_is_mean_absolute_difference():
    real_y = torch.tensor([[0.5, -0.5], [1.0, -1.0]])
    idt_y = torch.tensor([[0.5, 0.5], [0.0, -1.0]])  # G(y)
    # (0 + 1 + 1 + 0) / 4 = 0.5
    assert identity_loss(real_y, idt_y).item() == pytest.approx(0.5)


def objective_inputs():
    """Constant images whose loss terms are easy to tell apart by eye."""
    x, y = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    return dict(
        d_fake_y=torch.full((1, 1, 3, 3), 0.5),  # GAN(G) = (0.5 - 1)^2 = 0.25
        d_fake_x=torch.zeros(1, 1, 3, 3),  # GAN(F) = (0 - 1)^2 = 1
        real_x=x, real_y=y,
        rec_x=x + 0.1,  # cyc_x = 0.1
        rec_y=y - 0.2,  # cyc_y = 0.2
        idt_x=x - 0.4,  # |F(x) - x| = 0.4
        idt_y=y + 0.3,  # |G(y) - y| = 0.3
    )


def test_full_objective_is_eq3_plus_half_lambda_identity():
    total, parts = generator_objective(**objective_inputs())
    # GAN: 0.25 + 1 = 1.25;  cycle: 10 * (0.1 + 0.2) = 3;  identity: 0.5 * 10 * (0.3 + 0.4) = 3.5
    # total = 1.25 + 3 + 3.5 = 7.75 (identity weighted lambda instead of 0.5 * lambda: 11.25)
    assert total.item() == pytest.approx(7.75)
    assert parts["GAN(G)"].item() == pytest.approx(0.25)
    assert parts["GAN(F)"].item() == pytest.approx(1.0)
    assert parts["cyc_x"].item() == pytest.approx(0.1)
    assert parts["cyc_y"].item() == pytest.approx(0.2)
    assert "idt" in parts, "generator_objective must log the identity term as parts['idt']"
    assert parts["idt"].item() == pytest.approx(0.7)


def test_objective_without_identity_is_plain_eq3():
    inputs = objective_inputs()
    inputs.update(idt_x=None, idt_y=None, lambda_idt=0.0)  # no identities when lambda_idt is 0
    total, parts = generator_objective(**inputs)
    assert total.item() == pytest.approx(1.25 + 3.0)  # GAN + lambda * cycle, Eq. 3
    assert "idt" not in parts


@pytest.mark.parametrize("options,expected", [
    (dict(lambda_gan=0.0), 3.0 + 3.5),  # cycle alone: 10 * 0.3 + identity 3.5
    (dict(lambda_cyc=0.0), 1.25),  # GAN alone: lambda 0 also zeroes identity (0.5 * 0)
    (dict(cycle="forward"), 1.25 + 1.0 + 3.5),  # GAN + forward cycle: 10 * 0.1
    (dict(cycle="backward"), 1.25 + 2.0 + 3.5),  # GAN + backward cycle: 10 * 0.2
])
def test_table4_ablations_drop_the_right_terms(options, expected):
    total, _ = generator_objective(**objective_inputs(), **options)
    assert total.item() == pytest.approx(expected)
