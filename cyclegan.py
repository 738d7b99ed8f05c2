"""The two networks of CycleGAN (arXiv:1703.10593v7, Sec. 4 and appendix 7.2).

Generator: the ResNet of Johnson et al., c7s1-64, d128, d256, R256 x9, u128, u64, c7s1-3.
Discriminator: the 70x70 PatchGAN, C64-C128-C256-C512, then a 1-channel convolution.
Also: the N(0, 0.02) initialisation (appendix 7.1), the discriminator's receptive field computed
from its own layers, and a loader for the generator files released with the authors' code.
At the end, for speed only: InstanceNorm, TransposedConv and ReflectionPad, PyTorch's layers
computed faster.
"""
import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Rk of appendix 7.2: two 3x3 convolutions with k filters each, plus the skip connection."""

    def __init__(self, channels):
        super().__init__()
        # Reflection padding keeps the size (64x64 stays 64x64) without zero borders (appendix 7.2).
        self.conv_block = nn.Sequential(
            ReflectionPad(1), nn.Conv2d(channels, channels, 3), InstanceNorm(), nn.ReLU(True),
            ReflectionPad(1), nn.Conv2d(channels, channels, 3), InstanceNorm(),
        )

    def forward(self, x):
        return x + self.conv_block(x)  # no ReLU after the sum, as in Johnson et al.'s block


class Generator(nn.Module):
    """The ResNet generator of appendix 7.2: c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3.

    9 blocks for 256x256 training images, 6 for 128x128. Input and output are images in [-1, 1].
    InstanceNorm is nn.InstanceNorm2d(affine=False) and ReflectionPad nn.ReflectionPad2d, computed
    faster (see the end of this file).
    The layers sit in one nn.Sequential called `model`, numbered as in the authors' released files,
    so those files load with `load_official_generator`.
    """

    def __init__(self, in_channels=3, out_channels=3, ngf=64, n_blocks=9):
        super().__init__()
        layers = [
            # c7s1-64: (N, 3, 256, 256) -> (N, 64, 256, 256)
            ReflectionPad(3), nn.Conv2d(in_channels, ngf, 7), InstanceNorm(), nn.ReLU(True),
            # d128, d256: 3x3 stride-2 convolutions -> (N, 256, 64, 64)
            # Deviation: d128, d256, u128 and u64 pad with zeros, as the authors' code does.
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), InstanceNorm(), nn.ReLU(True),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), InstanceNorm(), nn.ReLU(True),
        ]
        layers += [ResidualBlock(4 * ngf) for _ in range(n_blocks)]  # R256 x n, (N, 256, 64, 64)
        layers += [
            # u128, u64: 3x3 convolutions with stride 1/2 -> (N, 64, 256, 256)
            TransposedConv(4 * ngf, 2 * ngf, 3, stride=2, padding=1, output_padding=1),
            InstanceNorm(), nn.ReLU(True),
            TransposedConv(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1),
            InstanceNorm(), nn.ReLU(True),
            # c7s1-3 -> (N, 3, 256, 256)
            # Deviation: the last layer is conv + tanh, not Conv-InstanceNorm-ReLU as c7s1-k reads.
            ReflectionPad(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Discriminator(nn.Module):
    """The 70x70 PatchGAN of Sec. 4 and appendix 7.2: C64-C128-C256-C512, then a 1-channel conv.

    Ck is a 4x4 Convolution-InstanceNorm-LeakyReLU(0.2) with k filters; C64 has no norm. Each output
    value scores one 70x70 patch of the input: a 256x256 image gives a 30x30 map. No sigmoid: the
    least-squares loss (Sec. 4) takes the raw scores. `n_layers` is the number of stride-2 layers.
    """

    def __init__(self, in_channels=3, ndf=64, n_layers=3):
        super().__init__()
        # C64: no instance norm on the first layer (appendix 7.2). (N, 64, 128, 128) at 256x256
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)  # C128, C256, C512: widths double, capped at 8 * ndf
            # Deviation: C512 and the last conv use stride 1; at stride 2 a patch would be 94x94.
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=1), InstanceNorm(),
                       nn.LeakyReLU(0.2, True)]
            channels = out
        # (N, 512, 31, 31) -> (N, 1, 30, 30): one score per patch
        layers += [nn.Conv2d(channels, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init_weights(net, std=0.02):
    """Weights from a Gaussian N(0, 0.02) (appendix 7.1); biases start at zero."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return net


def receptive_field(net):
    """Side of the input patch that one output value sees, from the net's own convolutions.

    Walking from the input: each k x k conv widens the field by (k - 1) times the distance between
    neighbouring outputs so far (the jump), and a stride s multiplies that jump by s.
    """
    r, jump = 1, 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            r += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return r


def load_official_generator(path_or_state_dict, map_location="cpu"):
    """A Generator holding the weights of a file released with the authors' PyTorch code.

    Those files (e.g. `horse2zebra.pth`) are state dicts of the same `model` Sequential as ours.
    Some older ones also hold InstanceNorm running statistics; with `track_running_stats=False` the
    norm never uses them, so they are dropped. The width and the number of residual blocks are read
    off the weights.
    """
    state = path_or_state_dict
    if not isinstance(state, dict):
        state = torch.load(state, map_location=map_location, weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()  # saved from nn.DataParallel
             if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    if "model.1.weight" not in state:
        raise ValueError(f"not a generator state dict: expected keys like 'model.1.weight' "
                         f"(the c7s1-64 conv), found {sorted(state)[:3]}...")
    ngf, in_channels = state["model.1.weight"].shape[:2]
    n_blocks = len({k.split(".")[1] for k in state if ".conv_block." in k})
    out_channels = state[f"model.{n_blocks + 17}.weight"].shape[0]  # c7s1-3, before the tanh
    G = Generator(in_channels, out_channels, ngf, n_blocks)
    G.load_state_dict(state)
    return G


# ---- speed, not the paper -----------------------------------------------------------------------
# The same functions as nn.InstanceNorm2d(affine=False), nn.ConvTranspose2d and
# nn.ReflectionPad2d, faster: bench.py measures the gain, tests/test_speed.py checks the equality.


class InstanceNorm(nn.Module):
    """nn.InstanceNorm2d(affine=False), computed faster: each channel of each image to mean 0,
    variance 1 over its own pixels. Larger images: batch norm of one image at a time, which keeps
    channels-last tensors as they are; small ones: one group norm call, a group per channel.
    """
    small = 8192  # values per image (channels x pixels) up to which group norm is used

    def forward(self, x):
        if x[0].numel() <= self.small:
            return nn.functional.group_norm(x, x.shape[1], eps=1e-5)  # a group = a channel
        images = [nn.functional.batch_norm(image, None, None, training=True, eps=1e-5)
                  for image in x.split(1)]  # training=True: this image's statistics, always
        return images[0] if len(images) == 1 else torch.cat(images)


class TransposedConv(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (u128, u64) with its bias added by a separate step: the same
    function and weights. On channels-last tensors oneDNN's gradient of the weights takes
    twice as long when it must also give the bias's; a separate add's is one sum.
    """

    def forward(self, x):
        out = nn.functional.conv_transpose2d(x, self.weight, None, self.stride, self.padding,
                                             self.output_padding, self.groups, self.dilation)
        if self.bias is None:
            return out
        return out.add_(self.bias.view(-1, 1, 1))  # in place: the conv's backward never reads out


class ReflectionPad(nn.ReflectionPad2d):
    """nn.ReflectionPad2d that pads in its input's precision. CPU autocast (--amp) lists
    reflection padding among the ops it runs in float32: each bfloat16 activation would be
    widened before the pad and narrowed again by the next conv. A pad only copies values, so
    padding in bfloat16 gives exactly those values, in half the memory traffic."""

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)
