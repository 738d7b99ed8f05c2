"""The speed layers and the fast training step compute the paper's functions.

InstanceNorm and TransposedConv (cyclegan.py) give nn.InstanceNorm2d's and nn.ConvTranspose2d's
values and gradients in either memory layout. train.py's step batches G([x, y]), F([y, x]) and
D([real, fake]), stores the networks channels-last, normalizes with InstanceNorm and uses fused
Adam; bench.py's reference step computes as the authors' code does: six generator calls and four
discriminator calls one by one, nn.InstanceNorm2d, the default layout, plain Adam. From the same
weights and images both must land on the same weights. Tiny networks: seconds per test.
"""
import argparse
import copy
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from cyclegan import InstanceNorm, ReflectionPad, TransposedConv
from bench import (conv_flops, layer_kinds, make_models, native_bfloat16, record_calls,
                   reference_discriminator_step, reference_generator_step, step_flops)
from data import ImagePool
from train import discriminator_step, generator_step

CROP = 32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the layers: InstanceNorm and TransposedConv are PyTorch's, computed faster -----------------

@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("n,shape", [(1, (5, 6, 7)), (3, (5, 6, 7)), (1, (3, 48, 64)),
                                     (2, (3, 48, 64))])
def test_instance_norm_is_torchs_instance_norm_in_either_layout(layout, n, shape):
    # The same values and gradients as nn.InstanceNorm2d(affine=False), along each way of
    # computing it: small images, one or three (one group norm call for the batch); larger images,
    # one or two (one batch norm call per image).
    assert (shape[0] * shape[1] * shape[2] <= InstanceNorm.small) == (shape == (5, 6, 7))
    x = (torch.randn(n, *shape) * 3 + 1).contiguous(memory_format=layout)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = InstanceNorm()(ours)
    assert out.is_contiguous(memory_format=layout)  # no copy into another layout
    weights = torch.randn(n, *shape)  # a loss that weighs every output differently
    (out * weights).sum().backward()
    (nn.InstanceNorm2d(shape[0])(theirs) * weights).sum().backward()
    torch.testing.assert_close(out, nn.InstanceNorm2d(shape[0])(x))
    torch.testing.assert_close(ours.grad, theirs.grad)


@pytest.mark.parametrize("n", [1, 3])
def test_instance_norm_gradient_is_right_for_channels_last_images(n):
    # train.py's batches, channels-last, with the gradient arriving channels-last as it does from
    # the next layer: compared with the formula (x - mean) / sqrt(var + eps) in float64.
    # (nn.InstanceNorm2d in torch 2.13 on the CPU gets this gradient wrong for one image, off by
    # units here; with a batch of 2, or a gradient in the default layout, it is right.)
    x = torch.randn(n, 4, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(n, 4, 5, 5, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last)
    ours, exact = x.clone().requires_grad_(), x.clone().requires_grad_()
    InstanceNorm()(ours).backward(grad)
    var, mean = torch.var_mean(exact, dim=(2, 3), keepdim=True, correction=0)  # per channel
    ((exact - mean) / (var + 1e-5).sqrt()).backward(grad)
    torch.testing.assert_close(ours.grad, exact.grad)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_transposed_conv_is_torchs_with_the_bias_added_apart(layout):
    # u128 as the generator has it: the same weights, outputs and gradients as nn.ConvTranspose2d.
    ours = TransposedConv(6, 4, 3, stride=2, padding=1, output_padding=1)
    nn.init.normal_(ours.bias)  # not zero, so that a bias left out or added twice shows
    theirs = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
    theirs.load_state_dict(ours.state_dict())  # the same keys: the authors' files load
    x = torch.randn(2, 6, 5, 5).contiguous(memory_format=layout)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = ours.to(memory_format=layout)(x_ours)
    assert out.shape == (2, 4, 10, 10)
    weights = torch.randn(2, 4, 10, 10)
    (out * weights).sum().backward()
    (theirs.to(memory_format=layout)(x_theirs) * weights).sum().backward()
    torch.testing.assert_close(out, theirs(x))
    for a, b in [(x_ours, x_theirs), (ours.weight, theirs.weight), (ours.bias, theirs.bias)]:
        torch.testing.assert_close(a.grad, b.grad)
    no_bias = TransposedConv(6, 4, 3, stride=2, padding=1, output_padding=1, bias=False)
    torch.testing.assert_close(no_bias(x), nn.functional.conv_transpose2d(x, no_bias.weight, None,
                                                                          2, 1, 1))


def test_reflection_pad_is_pytorchs_and_keeps_bfloat16_under_autocast():
    x = torch.randn(2, 5, 6, 7, requires_grad=True)
    grad = torch.randn(2, 5, 12, 13)
    ours, theirs = ReflectionPad(3)(x), nn.ReflectionPad2d(3)(x)
    assert torch.equal(ours, theirs)  # float32: the same function, value for value
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    (g_theirs,) = torch.autograd.grad(theirs, x, grad)
    assert torch.equal(g_ours, g_theirs)
    half = x.detach().bfloat16()
    with torch.autocast("cpu", torch.bfloat16):  # --amp on a CPU
        widened, kept = nn.ReflectionPad2d(3)(half), ReflectionPad(3)(half)
    assert widened.dtype == torch.float32  # autocast's float32 list: PyTorch's pad widens
    assert kept.dtype == torch.bfloat16  # ours stays in the precision the next conv wants
    assert torch.equal(kept.float(), widened)  # and copies exactly the same values


# ---- the step: train.py's against the authors' order --------------------------------------------

def tiny_args(**changes):
    """train.py's defaults for the losses, with networks small enough for a test."""
    args = argparse.Namespace(ngf=4, ndf=4, n_blocks=1, batch_size=1, lambda_cyc=10.0,
                              lambda_idt=0.5, lambda_gan=1.0, cycle="both", amp=False,
                              lr=2e-4, beta1=0.5)
    vars(args).update(changes)
    return args


def images(seed):
    """real_x, real_y: one random image each in [-1, 1], the range of the data pipeline."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, CROP, CROP, generator=g) * 2 - 1 for _ in "xy")


def biases_cancelled_by_instance_norm(net):
    """Names of the biases of convolutions that feed an instance norm.

    The norm subtracts each channel's mean, so such a bias changes no output and its gradient is
    zero, up to float rounding. Adam divides a gradient by its own size, so that rounding noise
    moves the bias by about lr up or down at random: these weights are left out of the comparison
    (the networks' outputs are compared instead).
    """
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            for i, (layer, after) in enumerate(zip(module, list(module)[1:])):
                if isinstance(after, (InstanceNorm, torch.nn.InstanceNorm2d)):
                    names.add(f"{prefix}.{i}.bias")
    return names


def ours(nets, real_x, real_y, args):
    G, F, D_X, D_Y, opt_G, opt_D = nets
    fake_x, fake_y, parts = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
    parts.update(discriminator_step(D_X, D_Y, opt_D, ImagePool(0), ImagePool(0), real_x, real_y,
                                    fake_x, fake_y, args.amp))
    return parts


def reference(nets, real_x, real_y, args):
    G, F, D_X, D_Y, opt_G, opt_D = nets
    fake_x, fake_y, parts = reference_generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
    parts.update(reference_discriminator_step(D_X, D_Y, opt_D, ImagePool(0), ImagePool(0),
                                              real_x, real_y, fake_x, fake_y))
    return parts


def test_reference_networks_are_built_as_the_authors_code_builds_them():
    fast = make_models(tiny_args(), torch.device("cpu"))
    plain = make_models(tiny_args(), torch.device("cpu"), reference=True)
    for a, b in zip(fast[:4], plain[:4]):
        assert sum(isinstance(m, InstanceNorm) for m in a.modules()) == sum(
            isinstance(m, torch.nn.InstanceNorm2d) for m in b.modules()) > 0
        assert not any(isinstance(m, InstanceNorm) for m in b.modules())
        assert not any(isinstance(m, TransposedConv) for m in b.modules())  # PyTorch's own there
        assert [type(m) for m in b.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == [
            torch.nn.ConvTranspose2d] * sum(isinstance(m, TransposedConv) for m in a.modules())
        for p, q in zip(a.parameters(), b.parameters()):
            if p.dim() == 4:  # convolution weights: train.py's channels-last, the default there
                assert p.is_contiguous(memory_format=torch.channels_last) and q.is_contiguous()
                assert not q.is_contiguous(memory_format=torch.channels_last)
    assert fast[4].defaults["fused"] and not plain[4].defaults["fused"]


def test_fast_step_lands_on_the_same_weights_as_the_authors_order():
    args = tiny_args()
    fast = make_models(args, torch.device("cpu"))  # as train.main: channels-last, fused Adam
    plain = make_models(args, torch.device("cpu"), reference=True)  # as the authors, same seed
    for a, b in zip(fast[:4], plain[:4]):
        torch.testing.assert_close(a.state_dict(), b.state_dict(), rtol=0, atol=0)
    real_x, real_y = images(0)
    cl_x, cl_y = (t.contiguous(memory_format=torch.channels_last) for t in (real_x, real_y))
    for _ in range(2):  # two steps: the second one runs with Adam's moments from the first
        fast_losses = ours(fast, cl_x, cl_y, args)  # train.py's layout
        plain_losses = reference(plain, real_x, real_y, args)
        assert fast_losses.keys() == plain_losses.keys()
        for k in fast_losses:
            torch.testing.assert_close(fast_losses[k], plain_losses[k], rtol=1e-5, atol=1e-6)
    # Each weight moves by about lr = 2e-4 per step; a different function would move it by as
    # much in the other direction, far outside these tolerances (float rounding only).
    for name, a, b in zip(("G", "F", "D_X", "D_Y"), fast[:4], plain[:4]):
        skip = biases_cancelled_by_instance_norm(a)
        assert skip  # e.g. model.1.bias, the c7s1-64 convolution's
        for (key, p), q in zip(a.named_parameters(), b.parameters()):
            if key not in skip:
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6,
                                           msg=lambda m, k=f"{name} {key}": f"{k}: {m}")
        torch.testing.assert_close(a(real_x), b(real_x), rtol=1e-4, atol=1e-5)  # same function


def test_without_identity_loss_the_step_still_matches():
    args = tiny_args(lambda_idt=0.0)  # G(y), F(x) are not computed at all
    stepped = make_models(args, torch.device("cpu"))
    by_hand = make_models(args, torch.device("cpu"))
    real_x, real_y = images(1)
    G, F, D_X, D_Y, opt_G, _ = stepped
    generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
    # the same step written out: four generator calls, no identity term (lambda_idt = 0)
    G, F, D_X, D_Y, opt_G, _ = by_hand
    D_X.requires_grad_(False)  # frozen in G's step, as in train.generator_step
    D_Y.requires_grad_(False)
    fake_y, fake_x = G(real_x), F(real_y)
    loss = (((D_Y(fake_y) - 1) ** 2).mean() + ((D_X(fake_x) - 1) ** 2).mean()
            + 10 * ((F(fake_y) - real_x).abs().mean() + (G(fake_x) - real_y).abs().mean()))
    opt_G.zero_grad()
    loss.backward()
    opt_G.step()
    for a, b in zip(stepped[:2], by_hand[:2]):
        skip = biases_cancelled_by_instance_norm(a)
        for (key, p), q in zip(a.named_parameters(), b.parameters()):
            if key not in skip:
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a(real_x), b(real_x), rtol=1e-4, atol=1e-5)


def test_amp_on_cpu_stays_close_to_fp32():
    fp32 = make_models(tiny_args(), torch.device("cpu"))
    bf16 = copy.deepcopy(fp32)
    real_x, real_y = images(2)
    exact = ours(fp32, real_x, real_y, tiny_args())
    mixed = ours(bf16, real_x, real_y, tiny_args(amp=True))  # bfloat16 autocast on the CPU
    # bfloat16 keeps 8 bits of mantissa (~0.4% per rounding): the losses agree to a few percent
    for k in exact:
        assert math.isclose(mixed[k].item(), exact[k].item(), rel_tol=0.05, abs_tol=0.01), k
    G = fp32[0]
    with torch.autocast("cpu", torch.bfloat16):  # and G(x) in bfloat16 looks like G(x) in fp32
        fake_y = G(real_x)
    assert fake_y.dtype == torch.bfloat16
    assert (fake_y.float() - G(real_x)).abs().max().item() < 0.05  # pixels in [-1, 1]


def test_amp_keeps_the_losses_in_float32():
    # Under --amp the networks compute in bfloat16, but every loss is a float32 sum of float32
    # terms: D's patch scores are cast back before the squares and means of Sec. 4's losses, and
    # the L1 terms subtract a float32 image. A bfloat16 loss would keep ~3 significant digits.
    nets = make_models(tiny_args(), torch.device("cpu"))
    real_x, real_y = images(4)
    mixed = ours(nets, real_x, real_y, tiny_args(amp=True))
    assert {k: v.dtype for k, v in mixed.items()} == dict.fromkeys(mixed, torch.float32)
    G, F, D_X, D_Y = nets[:4]
    with torch.autocast("cpu", torch.bfloat16):
        score = D_Y(G(real_x))
    assert score.dtype == torch.bfloat16  # what the cast undoes: the network's own output


@pytest.mark.parametrize("amp", [False, True])
def test_compile_runs_a_few_steps_with_finite_losses(amp):
    args = tiny_args(amp=amp)  # --compile, and --compile --amp
    nets = make_models(args, torch.device("cpu"))
    for net in nets[:4]:
        net.compile()  # as train.py --compile
    real_x, real_y = images(3)
    for _ in range(3):
        losses = ours(nets, real_x, real_y, args)
        assert all(math.isfinite(v.item()) for v in losses.values())


FAKE_AUTHORS_MODEL = '''
import torch


class CycleGANModel:  # stands in for the authors' class: counts the calls bench.py makes
    def __init__(self, opt):
        assert opt.netG == "resnet_6blocks" and opt.gan_mode == "lsgan"
        assert opt.gpu_ids == []  # their options until 2025
        assert opt.device == torch.device("cpu")  # since their commit 2a7afba (DDP, 2025)
        self.steps = 0

    def setup(self, opt):
        pass

    def set_input(self, data):
        assert data["A"].shape == data["B"].shape == (1, 3, 32, 32)

    def optimize_parameters(self):
        self.steps += 1

    def get_current_losses(self):
        return {"G_A": float(self.steps), "D_A": 0.5}
'''


def run_bench(*flags):
    """bench.py as a user runs it, on tiny networks; returns (exit status, its output)."""
    cmd = [sys.executable, "bench.py", "--crop_size", "32", "--ngf", "4", "--ndf", "4",
           "--n_blocks", "6", "--iters", "2", "--warmup", "1", "--num_workers", "0",
           "--pipeline_items", "0", *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_bench_times_train_py_step_and_the_reference_step_computing_the_same():
    status, out = run_bench("--reference")  # the two steps take turns on the same batches
    assert status == 0, out
    printed = []
    for name in ("train.py fp32", "reference (ours computed as the authors do)"):
        last = out.split(f"iter 3/3 {name}: ")[1].splitlines()[0]  # the third iteration's line
        printed.append([float(v) for v in last.split("| losses ")[1].split()])
    # GAN(G) GAN(F) cyc_x cyc_y idt D_X D_Y, after the same three steps from the same weights
    assert len(printed[0]) == 7
    assert printed[0] == pytest.approx(printed[1], abs=2e-4)  # printed to 4 decimals
    assert "train.py's step vs reference (ours computed as the authors do): " in out
    assert "R256: 3x3 convs of the residual blocks" in out  # the per-layer table
    assert "so it runs at" in out and "of the limit" in out  # and the convolution limit
    last = out.strip().splitlines()[-1]
    assert last.startswith("median_s_per_iter=") and " reference_s_per_iter=" in last


def test_conv_flops_count_the_forward_and_each_gradient():
    conv = torch.nn.Conv2d(2, 4, 3)  # 2 -> 4 channels, 3x3
    key = ("kind", conv, (1, 2, 5, 5), torch.contiguous_format, True, True)
    # a 5x5 input gives a 3x3 output: 4 channels * 9 pixels = 36 outputs, each 2 * 3 * 3 = 18 MACs
    # forward 2 * 36 * 18 = 1296 FLOPs; the input's gradient costs as much, the weights' too
    assert conv_flops(key, (1, 4, 3, 3)) == (1296, 2592)
    frozen = ("kind", conv, (1, 2, 5, 5), torch.contiguous_format, False, True)  # input: an image
    assert conv_flops(frozen, (1, 4, 3, 3)) == (1296, 1296)
    up = torch.nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1)
    # each of the 2 * 5 * 5 = 50 input values spreads over 4 channels * 3 * 3 taps: 1800 MACs
    key = ("kind", up, (1, 2, 5, 5), torch.contiguous_format, True, False)
    assert conv_flops(key, (1, 4, 10, 10)) == (3600, 3600)


def test_the_fast_step_does_the_convolutions_of_the_authors_order():
    # Batching G([x, y]) changes how the work is called, not how much there is: the same FLOPs.
    args = tiny_args()
    counted = []
    for step in (ours, reference):
        nets = make_models(args, torch.device("cpu"), reference=step is reference)
        real_x, real_y = images(4)
        calls = record_calls(layer_kinds(nets[:2], nets[2:4]),
                             lambda: step(nets, real_x, real_y, args))
        # n_blocks = 1: two 3x3 convs per image, and 6 images: G(x), G(y), G(F(y)), F(y), F(x),
        # F(G(x)), so 6 * 2 = 12 image-convs
        assert sum(n * key[2][0] for key, (n, _) in calls.items()
                   if key[0] == "R256: 3x3 convs of the residual blocks") == 12
        counted.append(step_flops(calls))
    assert counted[0] == counted[1] > 0


def test_bench_times_the_authors_step_from_a_checkout(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "cycle_gan_model.py").write_text(FAKE_AUTHORS_MODEL)
    status, out = run_bench("--authors", str(tmp_path))
    assert status == 0, out
    # 1 warm-up and 2 timed iterations: the third optimize_parameters() reports G_A = 3
    assert f"iter 3/3 the authors' code ({tmp_path}): " in out and "losses 3.0000 0.5000" in out
    assert f"train.py's step vs the authors' code ({tmp_path}): " in out  # taking turns
    assert " authors_s_per_iter=" in out.strip().splitlines()[-1]


def test_bench_says_clearly_when_the_authors_code_is_not_there(tmp_path):
    status, out = run_bench("--authors", str(tmp_path))  # an empty folder
    assert status == 1
    assert out.strip().splitlines()[-1].startswith(f"error: --authors {tmp_path}: cannot import")
    assert "Traceback" not in out


def test_bench_times_amp_beside_fp32_and_says_whether_the_cpu_has_native_bfloat16():
    status, out = run_bench("--amp", "--also_fp32", "--layers", "0")
    assert status == 0, out
    assert "native bfloat16" in out.splitlines()[0]  # "native bfloat16: amx_bf16" or "no ..."
    for name in ("train.py amp torch.bfloat16", "train.py fp32"):  # both, on the same batches
        assert f"iter 3/3 {name}: " in out and f"{name}: median " in out
    assert "train.py's step vs train.py fp32: " in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("median_s_per_iter=") and " fp32_s_per_iter=" in last


def test_native_bfloat16_is_read_off_the_cpu_flags():
    assert native_bfloat16(["avx2", "avx512f"]) == "no native bfloat16"
    assert native_bfloat16(["avx512f", "avx512_bf16", "amx_bf16"]) == \
        "native bfloat16: avx512_bf16, amx_bf16"
