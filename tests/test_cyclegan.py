"""Worked examples for cyclegan.py: the architectures of Sec. 4 and appendix 7.2."""
import copy

import pytest
import torch
from torch import nn

from cyclegan import (Discriminator, Generator, InstanceNorm, init_weights, load_official_generator,
                      receptive_field)

pytestmark = pytest.mark.paper  # every test here is a worked example of the paper


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_generator_has_the_appendix_layers_9_blocks():
    # c7s1-64: 3*64*7*7 + 64 = 9,472        d128: 64*128*3*3 + 128 = 73,856
    # d256: 128*256*9 + 256 = 295,168       R256: 2 * (256*256*9 + 256) = 1,180,160, x9 = 10,621,440
    # u128: 256*128*9 + 128 = 295,040       u64: 128*64*9 + 64 = 73,792
    # c7s1-3: 64*3*49 + 3 = 9,411
    # sum: 11,378,179 (no parameters in the norms: affine=False)
    assert n_params(Generator()) == 11_378_179


def test_generator_with_6_blocks_for_128px():
    # three fewer R256 blocks: 11,378,179 - 3 * 1,180,160 = 7,837,699
    assert n_params(Generator(n_blocks=6)) == 7_837_699


def test_discriminator_has_the_appendix_layers():
    # C64: 3*64*4*4 + 64 = 3,136     C128: 64*128*16 + 128 = 131,200
    # C256: 128*256*16 + 256 = 524,544
    # C512: 256*512*16 + 512 = 2,097,664    last conv: 512*16 + 1 = 8,193      sum: 2,764,737
    assert n_params(Discriminator()) == 2_764_737


def test_generator_uses_reflection_padding_and_instance_norm_without_affine():
    G = Generator(ngf=4, n_blocks=2)
    pads = [m for m in G.modules() if isinstance(m, nn.ReflectionPad2d)]
    norms = [m for m in G.modules() if isinstance(m, InstanceNorm)]
    assert len(pads) == 2 + 2 * 2  # the two 7x7 convs, and two in each residual block
    assert not any(isinstance(m, nn.ZeroPad2d) for m in G.modules()), \
        "appendix 7.2 pads with reflection, not zeros, around the 7x7 convs and in each Rk"
    # c7s1-64, d128, d256, 2 per block, u128, u64: 3 + 4 + 2 = 9 norms, none learned or tracked
    assert len(norms) == 9
    assert all(not list(n.parameters()) and not list(n.buffers()) for n in norms), \
        "instance norm here learns nothing and keeps no running statistics (affine=False)"
    assert isinstance(G.model[-1], nn.Tanh)  # outputs in [-1, 1], like the inputs


def test_instance_norm_uses_each_images_own_statistics():
    # Two images of one channel, 2x2 pixels each.
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]], [[[0.0, 0.0], [0.0, 4.0]]]])
    # image 1: mean (1 + 2 + 3 + 6) / 4 = 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    # image 2: mean 4 / 4 = 1, variance (1 + 1 + 1 + 9) / 4 = 3
    # (statistics over the whole batch, as batch norm takes them, would give mean 2 for both)
    expected = torch.tensor([[[[-2.0, -1.0], [0.0, 3.0]]], [[[-1.0, -1.0], [-1.0, 3.0]]]])
    expected /= torch.tensor([3.5, 3.0]).add(1e-5).sqrt().view(2, 1, 1, 1)  # eps = 1e-5
    torch.testing.assert_close(InstanceNorm()(x), expected)


@pytest.mark.parametrize("size,n_blocks", [(256, 9), (128, 6)])
def test_generator_output_shape_at_the_paper_sizes(size, n_blocks):
    with torch.no_grad():
        out = Generator(n_blocks=n_blocks)(torch.zeros(1, 3, size, size))
    assert out.shape == (1, 3, size, size)


@pytest.mark.parametrize("H,W", [(8, 8), (36, 52), (64, 20)])
def test_generator_preserves_any_size_divisible_by_4(H, W):
    # two stride-2 downsamplings and two stride-1/2 upsamplings: H -> H/4 -> H
    with torch.no_grad():
        out = Generator(ngf=4, n_blocks=1)(torch.rand(2, 3, H, W) * 2 - 1)
    assert out.shape == (2, 3, H, W) and out.abs().max() <= 1


def test_discriminator_scores_a_30x30_map_of_patches_for_256px():
    # 256 -> 128 -> 64 -> 32 (three stride-2 4x4 convs, padding 1), then stride 1: 32 -> 31 -> 30
    with torch.no_grad():
        assert Discriminator()(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
        assert Discriminator(ndf=8)(torch.zeros(1, 3, 128, 128)).shape == (1, 1, 14, 14)


def test_discriminator_strides_are_2_2_2_1_1_and_first_layer_has_no_norm():
    D = Discriminator()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert isinstance(D.model[1], nn.LeakyReLU) and D.model[1].negative_slope == 0.2
    assert not isinstance(D.model[-1], nn.Sigmoid)  # least squares takes raw scores


def test_discriminator_patch_is_70x70():
    # r = 1 + sum (k - 1) * jump, jump = product of the strides before:
    # 1 + 3*1 + 3*2 + 3*4 + 3*8 + 3*8 = 1 + 3 * 23 = 70
    # (with C512 at stride 2, as the appendix's text reads, the last jump is 16: 1 + 3 * 31 = 94)
    assert receptive_field(Discriminator()) == 70


@pytest.mark.parametrize("n_layers,expected", [(2, 34), (4, 142)])
def test_patch_size_follows_the_number_of_layers(n_layers, expected):
    # n_layers=2: strides 2, 2, 1, 1 -> 1 + 3 * (1 + 2 + 4 + 4) = 34
    # n_layers=4: strides 2, 2, 2, 2, 1, 1 -> 1 + 3 * (1 + 2 + 4 + 8 + 16 + 16) = 142
    assert receptive_field(Discriminator(n_layers=n_layers)) == expected


def test_gradient_probe_confirms_70x70_patch():
    # Instance norm mixes every pixel into every output, so probe a copy without the norms.
    D = copy.deepcopy(Discriminator(ndf=4))
    for i, m in enumerate(D.model):
        if isinstance(m, InstanceNorm):
            D.model[i] = nn.Identity()
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    out = D(x)  # 160 -> 80 -> 40 -> 20 -> 19 -> 18
    out[0, 0, 9, 9].backward()  # one patch score away from the borders
    rows = x.grad[0].abs().sum(dim=(0, 2)).nonzero()
    cols = x.grad[0].abs().sum(dim=(0, 1)).nonzero()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_init_weights_draws_from_normal_0_002_and_zeroes_biases():
    G = init_weights(Generator(ngf=16, n_blocks=2))
    weights = torch.cat([m.weight.flatten() for m in G.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    biases = torch.cat([m.bias for m in G.modules()
                        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    # ~170,000 draws: the sample std is within 1% of 0.02, the mean within 0.0002 of 0
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    assert abs(weights.mean().item()) < 2e-4
    assert torch.count_nonzero(biases) == 0


def official_state_dict(ngf, n_blocks, seed=0):
    """A generator state dict built key by key in the layout of the authors' released files."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def conv(i, c_out, c_in, k, prefix="model."):
        state[f"{prefix}{i}.weight"] = torch.randn(c_out, c_in, k, k, generator=g)
        state[f"{prefix}{i}.bias"] = torch.randn(c_out, generator=g)

    def old_norm_stats(i, c, prefix="model."):  # older files kept InstanceNorm running statistics
        state[f"{prefix}{i}.running_mean"] = torch.zeros(c)
        state[f"{prefix}{i}.running_var"] = torch.ones(c)

    conv(1, ngf, 3, 7), old_norm_stats(2, ngf)  # 0 pad, 1 conv, 2 norm, 3 ReLU
    conv(4, 2 * ngf, ngf, 3), conv(7, 4 * ngf, 2 * ngf, 3)  # d128 (4, 5, 6), d256 (7, 8, 9)
    for b in range(n_blocks):  # 10 ... residual blocks, each a conv_block Sequential
        conv(1, 4 * ngf, 4 * ngf, 3, f"model.{10 + b}.conv_block.")
        conv(5, 4 * ngf, 4 * ngf, 3, f"model.{10 + b}.conv_block.")
    # ConvTranspose2d weights are (in, out, k, k)
    state[f"model.{10 + n_blocks}.weight"] = torch.randn(4 * ngf, 2 * ngf, 3, 3, generator=g)
    state[f"model.{10 + n_blocks}.bias"] = torch.randn(2 * ngf, generator=g)
    state[f"model.{13 + n_blocks}.weight"] = torch.randn(2 * ngf, ngf, 3, 3, generator=g)
    state[f"model.{13 + n_blocks}.bias"] = torch.randn(ngf, generator=g)
    conv(17 + n_blocks, 3, ngf, 7)  # 16 + n pad, 17 + n conv, 18 + n tanh
    return state


def test_official_layout_has_last_conv_at_26_for_9_blocks():
    # 0 pad, 1 conv, 2 norm, 3 ReLU | 4-6 d128 | 7-9 d256 | 10-18 blocks | 19-21 u128 | 22-24 u64
    # | 25 pad, 26 conv, 27 tanh
    keys = official_state_dict(ngf=2, n_blocks=9)
    assert "model.26.weight" in keys and "model.18.conv_block.5.weight" in keys
    assert set(Generator(ngf=2, n_blocks=9).state_dict()) == {k for k in keys if "running" not in k}


def test_official_generator_file_loads_with_its_weights(tmp_path):
    state = official_state_dict(ngf=4, n_blocks=3)
    path = tmp_path / "horse2zebra.pth"
    torch.save(state, path)
    G = load_official_generator(str(path))
    assert len([m for m in G.modules() if m.__class__.__name__ == "ResidualBlock"]) == 3
    assert torch.equal(G.model[1].weight, state["model.1.weight"])
    assert torch.equal(G.model[12].conv_block[5].weight, state["model.12.conv_block.5.weight"])
    assert torch.equal(G.model[20].bias, state["model.20.bias"])  # c7s1-3 at 17 + 3
    with torch.no_grad():
        assert G(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_loader_names_the_expected_keys_for_a_foreign_file():
    with pytest.raises(ValueError, match="model.1.weight"):
        load_official_generator({"netG_A.conv1.weight": torch.zeros(1)})
