"""The classic mistakes of CycleGAN re-implementations, one worked example each.

Each test is named after what the paper says, makes the one number that the usual mistake would
change, and says in its failure message what to look for. Stand-in networks that multiply by a
number make the gradients computable by hand; whole runs use tiny networks on 24x24 images.
"""
import argparse
import copy
import csv
import inspect
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import train
from cyclegan import Discriminator, Generator, InstanceNorm, ResidualBlock
from data import ImagePool, UnpairedDataset, to_image, to_tensor
from test_train import Scale, make_images  # Scale: a network that multiplies by one weight

pytestmark = pytest.mark.paper  # every test here works out a claim of the paper


def constant(value):
    return torch.full((1, 3, 2, 2), value)  # one image, every pixel = value


def step_args(**changes):
    """The loss settings that generator_step reads, train.py's defaults unless changed."""
    args = argparse.Namespace(lambda_cyc=10.0, lambda_idt=0.5, lambda_gan=1.0, cycle="both",
                              amp=False, compile=False)
    vars(args).update(changes)
    return args


# ---- the generator step (Eq. 1-3) ----------------------------------------------------------

def test_generator_step_asks_D_Y_about_G_x_and_D_X_about_F_y():
    # G doubles, F quarters, D_X triples, D_Y halves; x = 1, y = 3
    G, F, D_X, D_Y = Scale(2.0), Scale(0.25), Scale(3.0), Scale(0.5)
    opt_G = torch.optim.SGD([*G.parameters(), *F.parameters()], lr=0.0)
    _, _, parts = train.generator_step(G, F, D_X, D_Y, opt_G, constant(1.0), constant(3.0),
                                       step_args(lambda_idt=0.0))
    # GAN(G) = (D_Y(G(x)) - 1)^2 = (0.5 * 2 - 1)^2 = 0
    # GAN(F) = (D_X(F(y)) - 1)^2 = (3 * 0.75 - 1)^2 = 1.25^2 = 1.5625
    # (D_X judging G(x) and D_Y judging F(y) would give (3 * 2 - 1)^2 = 25 and 0.390625)
    assert parts["GAN(G)"].item() == pytest.approx(0.0) and parts["GAN(F)"].item() == \
        pytest.approx(1.5625), ("generator_step must score fake_y = G(x) with D_Y and "
                                "fake_x = F(y) with D_X (Eq. 1); got GAN(G) "
                                f"{parts['GAN(G)'].item()}, GAN(F) {parts['GAN(F)'].item()}")


@pytest.mark.parametrize("terms,grad_G,grad_F", [
    # adversarial terms only: GAN(G) = (g x - 1)^2, d/dg = 2 (g x - 1) x = 2 (2 - 1) 1 = 2
    #                         GAN(F) = (f y - 1)^2, d/df = 2 (f y - 1) y = 2 (-0.25) 3 = -1.5
    (dict(lambda_cyc=0.0), 2.0, -1.5),
    # cycle terms only, times lambda = 10:
    #   cyc_x = |f g x - x| = |0.5 - 1|: d/dg = -f x = -0.25, d/df = -g x = -2
    #   cyc_y = |g f y - y| = |1.5 - 3|: d/dg = -f y = -0.75, d/df = -g y = -6
    #   G: 10 (-0.25 - 0.75) = -10;  F: 10 (-2 - 6) = -80
    (dict(lambda_gan=0.0), -10.0, -80.0),
])
def test_generator_losses_reach_back_into_G_and_F(terms, grad_G, grad_F):
    G, F, D_X, D_Y = Scale(2.0), Scale(0.25), Scale(1.0), Scale(1.0)
    opt_G = torch.optim.SGD([*G.parameters(), *F.parameters()], lr=0.0)
    for p in (G.factor, F.factor):
        p.grad = torch.tensor(100.0)  # left over from an earlier step: must be cleared first
    train.generator_step(G, F, D_X, D_Y, opt_G, constant(1.0), constant(3.0),
                         step_args(lambda_idt=0.0, **terms))
    got = gradients(G, F)
    assert got == pytest.approx((grad_G, grad_F)), (
        f"d loss / d(G, F) is {got}, expected ({grad_G}, {grad_F}). 100 more: opt_G.zero_grad() "
        "is missing. 0 or a missing part: a fake is detached where the generators' loss uses it "
        "(fake_y for D_Y(G(x)) and for rec_x = F(G(x)), fake_x likewise); only the "
        "discriminators' step may detach them")


def gradients(G, F):
    """d loss / d(G, F) of stand-in networks after a step that left its gradients in place."""
    assert G.factor.grad is not None and F.factor.grad is not None, (
        "G or F has no gradient after the step: zero_grad() belongs before backward(), not after "
        "step() (zero_grad sets the gradients to None)")
    return G.factor.grad.item(), F.factor.grad.item()


# With G = 2, F = 0.25, D_X = D_Y = 1 (stand-ins), x = 1 and y = 3, the terms' gradients by hand:
#   GAN(G) = (g x - 1)^2: d/dg = 2 (2 - 1) = 2;      GAN(F) = (f y - 1)^2: d/df = 2 (-0.25) 3 = -1.5
#   cyc_x = |f g x - x|:  d/dg = -0.25, d/df = -2;   cyc_y = |g f y - y|: d/dg = -0.75, d/df = -6
#   idt = |g y - y| + |f x - x|: d/dg = y = 3, d/df = -x = -1
# Defaults: (2, -1.5) + 10 (-1, -8) + 0.5 * 10 (3, -1) = (7, -86.5). Each flag changes that:
@pytest.mark.parametrize("flag,value,grad_G,grad_F", [
    ("lambda_cyc", 5.0, 2 - 5 + 7.5, -1.5 - 40 - 2.5),  # cycle and identity both scale with it
    ("lambda_idt", 0.2, 2 - 10 + 6, -1.5 - 80 - 2),  # identity 0.2 * 10 = 2 times (3, -1)
    ("lambda_idt", 0.0, 2 - 10, -1.5 - 80),  # no identity term
    ("lambda_gan", 0.5, 1 - 10 + 15, -0.75 - 80 - 5),  # half the adversarial terms
    ("cycle", "forward", 2 - 2.5 + 15, -1.5 - 20 - 5),  # cyc_x alone: 10 (-0.25, -2)
    ("cycle", "backward", 2 - 7.5 + 15, -1.5 - 60 - 5),  # cyc_y alone: 10 (-0.75, -6)
])
def test_every_objective_flag_reaches_the_loss_the_generator_step_minimizes(flag, value, grad_G,
                                                                             grad_F):
    G, F, D_X, D_Y = Scale(2.0), Scale(0.25), Scale(1.0), Scale(1.0)
    opt_G = torch.optim.SGD([*G.parameters(), *F.parameters()], lr=0.0)
    train.generator_step(G, F, D_X, D_Y, opt_G, constant(1.0), constant(3.0),
                         step_args(**{flag: value}))
    got = gradients(G, F)
    assert got == pytest.approx((grad_G, grad_F)), (
        f"with --{flag} {value}, d loss / d(G, F) is {got}, expected ({grad_G}, {grad_F}); with "
        f"the default it would be (7, -86.5). generator_step must pass args.lambda_cyc, "
        "args.lambda_idt, args.lambda_gan and args.cycle on to generator_objective, which must "
        "use them (Eq. 3, Sec. 5.2, Table 4)")


# ---- the discriminator step (Sec. 4, appendix 7.1) ------------------------------------------

def full_pool(old_fake):
    """A pool of one that already holds `old_fake` and will hand it out at the next query:
    random.Random(1) first draws 0.134 < 0.5, so it returns the stored image (slot 0)."""
    pool = ImagePool(pool_size=1, seed=1)
    pool.query(old_fake)
    return pool


def test_discriminator_step_by_value_halved_once_with_each_domains_pool():
    D_X, D_Y = Scale(1.0), Scale(1.0)
    opt_D = torch.optim.SGD([*D_X.parameters(), *D_Y.parameters()], lr=0.1)
    for p in (D_X.factor, D_Y.factor):
        p.grad = torch.tensor(100.0)  # left over from an earlier step: must be cleared first
    real_x, real_y = constant(0.5), constant(2.0)
    fake_x, fake_y = constant(0.25), constant(3.0)  # the fakes just made
    pool_x, pool_y = full_pool(constant(0.75)), full_pool(constant(1.5))  # older fakes
    seen = {}
    for name, D in (("D_X", D_X), ("D_Y", D_Y)):
        D.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, []).append(
            sorted(set(i[0].flatten().tolist()))))
    losses = train.discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                      fake_x, fake_y)
    def values(name):  # every pixel value a discriminator was shown
        return sorted({v for call in seen[name] for v in call})

    assert values("D_X") == [0.5, 0.75] and values("D_Y") == [1.5, 2.0], (
        f"D_X saw {values('D_X')}, D_Y saw {values('D_Y')}: D_X must judge real_x (0.5) against "
        "the fake that pool_x returns (0.75), D_Y real_y (2.0) against pool_y's (1.5). 0.25 or "
        "3.0: a fresh fake bypassed the pool; 1.5 for D_X: the pools are swapped")
    # With scores s * image and s = 1:  loss_D_X = 0.5 ((s a - 1)^2 + (s b)^2), a = 0.5, b = 0.75
    #   value 0.5 (0.25 + 0.5625) = 0.40625;  d/ds = (a - 1) a + b^2 = -0.25 + 0.5625 = 0.3125
    # loss_D_Y with a = 2, b = 1.5:  0.5 (1 + 2.25) = 1.625;  d/ds = (2 - 1) 2 + 2.25 = 4.25
    assert losses["D_X"].item() == pytest.approx(0.40625)
    assert losses["D_Y"].item() == pytest.approx(1.625)
    # SGD with lr 0.1: 1 - 0.1 * 0.3125 = 0.96875 and 1 - 0.1 * 4.25 = 0.575
    # (halved twice: 0.984375 and 0.7875; not halved: 0.9375 and 0.15)
    got = (D_X.factor.item(), D_Y.factor.item())
    assert got == pytest.approx((0.96875, 0.575)), (
        f"after one step D_X, D_Y scale by {got}, expected (0.96875, 0.575): the step must "
        "minimize loss_D_X + loss_D_Y, each halved once (appendix 7.1), from cleared gradients")


# ---- the training loop (Sec. 4, appendix 7.1) ----------------------------------------------

def tiny_run(tmp_path, *flags):
    """train.main on 4 + 5 tiny images: 5 iterations per epoch at batch size 1."""
    data = tmp_path / "data"
    if not data.exists():
        make_images(data)
    return train.main(["--dataroot", str(data), "--out", str(tmp_path / "run"), "--crop_size",
                       "24", "--load_size", "28", "--ngf", "4", "--ndf", "4", "--n_blocks", "1",
                       "--num_workers", "0", "--n_samples", "1", *flags])


def test_the_loop_keeps_the_rate_then_decays_both_optimizers_each_epoch(tmp_path):
    tiny_run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "2", "--print_every", "2",
             "--save_epoch_freq", "1")
    with open(tmp_path / "run" / "loss_log.csv") as f:
        logged = sorted({(int(r["epoch"]), float(r["lr"])) for r in csv.DictReader(f)})
    # 1 epoch at 0.0002, then 2 epochs decaying: 0.0002 (1 - 1/3) and 0.0002 (1 - 2/3)
    expected = [(1, 2e-4), (2, 2e-4 * 2 / 3), (3, 2e-4 / 3)]
    assert [e for e, _ in logged] == [1, 2, 3] and [lr for _, lr in logged] == pytest.approx(
        [lr for _, lr in expected], rel=1e-2), (
        f"the loop trained at (epoch, lr) {logged}, expected {expected}: set "
        "lr = args.lr * linear_decay(epoch, ...) at the start of each epoch, for that epoch "
        "(one epoch late gives 0.0002 in epoch 2; one lr per epoch, never per iteration)")
    for epoch in (1, 2, 3):
        ckpt = torch.load(tmp_path / "run" / f"epoch_{epoch:03d}.pt", weights_only=True)
        lrs = {name: [g["lr"] for g in ckpt[name]["param_groups"]] for name in ("opt_G", "opt_D")}
        assert len({lr for group in lrs.values() for lr in group}) == 1, (
            f"after epoch {epoch} the optimizers hold {lrs}: the decay must reach every param "
            "group of both opt_G (G, F) and opt_D (D_X, D_Y)")
    assert lrs["opt_D"][0] < 2e-4, "opt_D never decayed"


def test_discriminators_train_on_the_fakes_made_before_the_generator_update(tmp_path,
                                                                             monkeypatch):
    # The authors' order: fakes = G(x), F(y); update G and F; then D_X, D_Y on those same fakes.
    generator_step, discriminator_step = train.generator_step, train.discriminator_step
    before, gaps = {}, []

    def recording_generator_step(*args, **kwargs):
        bound = inspect.signature(generator_step).bind(*args, **kwargs).arguments
        before["G"], before["F"] = copy.deepcopy(bound["G"]), copy.deepcopy(bound["F"])
        before["after"] = bound["G"], bound["F"]  # the live networks, updated by the step
        return generator_step(*args, **kwargs)

    def checking_discriminator_step(*args, **kwargs):
        b = inspect.signature(discriminator_step).bind(*args, **kwargs).arguments
        if len(gaps) < 3:
            G_now, F_now = before["after"]
            with torch.no_grad():
                gaps.append([(b["fake_y"] - G(b["real_x"])).abs().max().item()
                             for G in (before["G"], G_now)]
                            + [(b["fake_x"] - F(b["real_y"])).abs().max().item()
                               for F in (before["F"], F_now)])
        return discriminator_step(*args, **kwargs)

    monkeypatch.setattr(train, "generator_step", recording_generator_step)
    monkeypatch.setattr(train, "discriminator_step", checking_discriminator_step)
    tiny_run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "0", "--max_iters", "3")
    assert len(gaps) == 3, "train.main did not call generator_step and discriminator_step"
    for y_before, y_after, x_before, x_after in gaps:
        # the same function up to float rounding (1e-5: group norm of small images sums in an
        # order that depends on the batch), where the updated G is 1e-2 or more off
        assert y_before < 1e-4 and x_before < 1e-4, (
            f"D's fakes differ from G_before(real_x) by {y_before:.1e} and from F_before(real_y) "
            f"by {x_before:.1e} (from the updated G, F: {y_after:.1e}, {x_after:.1e}): hand "
            "discriminator_step the fakes that generator_step returned, not fakes made again "
            "after the generators' update")
        assert y_after > 10 * max(y_before, 1e-7), "G did not change: the test cannot tell"


def test_paper_defaults_with_their_sources():
    args = train.parse_args(["--dataroot", "toy"])
    defaults = [  # flag, the paper's value, where it is stated
        ("lr", 0.0002, "Sec. 4: a learning rate of 0.0002"),
        ("batch_size", 1, "Sec. 4: Adam with a batch size of 1"),
        ("lambda_cyc", 10.0, "Sec. 4: lambda = 10 in Eq. 3"),
        ("pool_size", 50, "Sec. 4: a buffer of the 50 previously created images"),
        ("n_epochs", 100, "Sec. 4: the same rate for the first 100 epochs"),
        ("n_epochs_decay", 100, "Sec. 4: linearly to zero over the next 100 epochs"),
        ("n_blocks", 9, "Sec. 4: 9 blocks for 256x256 training images"),
        ("crop_size", 256, "Sec. 4, appendix 7.1: 256x256 training images"),
        ("ngf", 64, "appendix 7.2: c7s1-64"),
        ("ndf", 64, "appendix 7.2: C64"),
        ("lambda_idt", 0.5, "appendix 7.1: identity weight 0.5 lambda (on for every dataset: "
                            "the authors' code)"),
        ("beta1", 0.5, "the authors' code (not in the paper)"),
        ("load_size", 286, "the authors' code: resize to 286, then crop 256"),
    ]
    wrong = [f"--{flag} is {getattr(args, flag)}, should be {value} ({source})"
             for flag, value, source in defaults if getattr(args, flag) != value]
    assert not wrong, "train.py's defaults changed:\n" + "\n".join(wrong)


def test_make_networks_initialises_every_network_from_normal_0_002():
    args = train.parse_args(["--dataroot", "toy", "--ngf", "16", "--ndf", "16", "--n_blocks", "2"])
    torch.manual_seed(0)
    G, F, D_X, D_Y, opt_G, opt_D = train.make_networks(args, torch.device("cpu"))
    for name, net in zip(("G", "F", "D_X", "D_Y"), (G, F, D_X, D_Y)):
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        weights = torch.cat([m.weight.flatten() for m in convs])
        # G: ~90,000 weights, D: ~700,000: the sample std lands within 3% of 0.02.
        # (PyTorch's own default init gives std 1 / sqrt(3 fan_in): 0.048 at fan_in 16 * 9)
        assert weights.std().item() == pytest.approx(0.02, rel=0.03), (
            f"{name}'s weights have std {weights.std().item():.4f}, not 0.02: make_networks "
            "must pass each network through init_weights (appendix 7.1, N(0, 0.02))")
        assert all(torch.count_nonzero(m.bias) == 0 for m in convs), f"{name}: biases not zero"


def test_one_adam_for_G_and_F_and_one_for_D_X_and_D_Y_with_the_papers_settings():
    args = train.parse_args(["--dataroot", "toy", "--ngf", "4", "--ndf", "4", "--n_blocks", "1"])
    G, F, D_X, D_Y, opt_G, opt_D = train.make_networks(args, torch.device("cpu"))
    def ids(*nets):
        return {id(p) for net in nets for p in net.parameters()}

    def in_opt(opt):
        return {id(p) for group in opt.param_groups for p in group["params"]}

    assert in_opt(opt_G) == ids(G, F), "opt_G must hold every weight of G and of F, and no other"
    assert in_opt(opt_D) == ids(D_X, D_Y), "opt_D must hold every weight of D_X and D_Y, no other"
    for opt in (opt_G, opt_D):
        group = opt.param_groups[0]
        assert isinstance(opt, torch.optim.Adam) and group["betas"] == (0.5, 0.999) and \
            group["lr"] == 2e-4, f"{group['lr']}, {group['betas']}: Adam(lr=0.0002, (0.5, 0.999))"


# ---- the networks (Sec. 4, appendix 7.2) ---------------------------------------------------

def kinds(layers):
    """Layer names, with either instance norm written Norm, any transposed conv and reflection
    pad as PyTorch's."""
    return ["Norm" if isinstance(m, (InstanceNorm, nn.InstanceNorm2d)) else
            "ConvTranspose2d" if isinstance(m, nn.ConvTranspose2d) else
            "ReflectionPad2d" if isinstance(m, nn.ReflectionPad2d) else type(m).__name__
            for m in layers]


def test_residual_block_adds_its_input_after_the_second_norm_with_no_relu():
    block = ResidualBlock(4)
    assert kinds(block.conv_block) == ["ReflectionPad2d", "Conv2d", "Norm", "ReLU",
                                       "ReflectionPad2d", "Conv2d", "Norm"], (
        "Rk is pad-conv-norm-ReLU-pad-conv-norm (appendix 7.2, Johnson et al.): no ReLU or "
        f"dropout at the end; got {kinds(block.conv_block)}")
    for m in block.conv_block:
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.tensor([-1.0, 2.0]).view(1, 1, 1, 2).repeat(1, 4, 2, 1)  # pixels -1 and 2
    # zero weights: conv_block(x) = 0, so the block is x + 0 = x: -1 and 2 come back unchanged
    # (a ReLU after the sum would give 0 and 2)
    out = block(x)
    assert torch.equal(out, x), (f"ResidualBlock(x) is {out[0, 0, 0].tolist()} for pixels "
                                 "[-1, 2] when its convolutions output 0: return "
                                 "x + conv_block(x), with no ReLU after the sum")


def test_generator_layers_in_the_appendix_order():
    G = Generator(ngf=4, n_blocks=1)
    c7s1, down, up = ["ReflectionPad2d", "Conv2d", "Norm", "ReLU"], ["Conv2d", "Norm", "ReLU"], \
        ["ConvTranspose2d", "Norm", "ReLU"]
    expected = (c7s1 + down + down + ["ResidualBlock"] + up + up
                + ["ReflectionPad2d", "Conv2d", "Tanh"])  # c7s1-3 ends in tanh, no norm
    assert kinds(G.model) == expected, (f"Generator layers {kinds(G.model)}, expected "
                                        f"c7s1-64, d128, d256, R256, u128, u64, c7s1-3: {expected}")


def test_discriminator_uses_leaky_relu_0_2_after_every_layer_but_the_last():
    D = Discriminator(ndf=4)
    expected = (["Conv2d", "LeakyReLU"] + ["Conv2d", "Norm", "LeakyReLU"] * 3  # C64 has no norm
                + ["Conv2d"])  # one score per patch: no norm, no activation, no sigmoid
    assert kinds(D.model) == expected, f"Discriminator layers {kinds(D.model)}, expected {expected}"
    slopes = [m.negative_slope for m in D.model if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 4, f"LeakyReLU slopes {slopes}: appendix 7.2 uses 0.2 in every Ck"


# ---- the data (Sec. 3, Sec. 4) -------------------------------------------------------------

def test_each_x_meets_a_random_y_not_y_number_i(tmp_path):
    for letter, n in (("A", 3), ("B", 5)):
        os.makedirs(tmp_path / f"train{letter}")
        for i in range(n):  # y number i has green 10 i
            Image.new("RGB", (8, 8), (0, 10 * i, 0)).save(tmp_path / f"train{letter}" / f"{i}.png")
    ds = UnpairedDataset(str(tmp_path), "train", load_size=8, crop_size=8, seed=0)
    partners = set()
    for ds.epoch in range(10):  # item 0 is always x number 0; which y does it meet?
        green = ds[0][1][1].mean().item()
        partners.add(round((green + 1) * 127.5 / 10))
    assert len(partners) > 1, (
        f"x number 0 met only y number(s) {sorted(partners)} in 10 epochs: unpaired training "
        "draws each x's partner at random (Sec. 3), not y number i")


def test_to_image_inverts_to_tensor_for_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    img = Image.fromarray(levels)
    # to_tensor: v / 127.5 - 1, so 0 -> -1, 51 -> -0.6, 204 -> 0.6, 255 -> 1;
    # to_image: (t + 1) * 127.5, rounded: -0.6 -> 51, 0.6 -> 204 (255 t or 128 (t + 1) would not)
    back = np.asarray(to_image(to_tensor(img)))
    wrong = np.flatnonzero(back[..., 0] != levels[..., 0])
    assert wrong.size == 0, (f"to_image(to_tensor(img)) changes levels {wrong[:5].tolist()} ... "
                             "into " + str(back[..., 0].flatten()[wrong[:5]].tolist())
                             + ": map [-1, 1] back with (t + 1) * 127.5, rounded")
