"""CSPDarknet, PAFPN and their blocks (detframe/models/layers/csp.py): shapes and strides of the YOLOX
sizes, parameter counts against a count from the layer definitions, SPPF == SPP, DropBlock's modes,
and building from a config node."""
import pytest
import torch
from torch import nn

from detframe.errors import ConfigError
from detframe.models.backbones.csp_darknet import CSPDarknet
from detframe.models.layers.csp import SPP, SPPF, CSPLayer, DropBlock
from detframe.models.necks.pafpn import PAFPN
from detframe.registry import BACKBONES, NECKS

# YOLOX's sizes: (deepen_factor, widen_factor, depthwise) -> C3-C5 channels.
SIZES = {
    "nano": ((0.33, 0.25, True), [64, 128, 256]),
    "tiny": ((0.33, 0.375, False), [96, 192, 384]),
    "s": ((0.33, 0.5, False), [128, 256, 512]),
}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", SIZES)
def test_backbone_and_neck_shapes_and_strides_at_128px(size):
    (deepen, widen, depthwise), channels = SIZES[size]
    backbone = CSPDarknet(deepen, widen, depthwise=depthwise)
    neck = PAFPN(backbone.out_channels, deepen_factor=deepen, depthwise=depthwise)
    assert backbone.out_channels == neck.out_channels == channels and backbone.strides == [8, 16, 32]
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 128, 128))
        outs = neck(features)
    for maps in (features, outs):
        assert [tuple(m.shape) for m in maps] == [(1, c, 128 // s, 128 // s)
                                                 for c, s in zip(channels, backbone.strides)]
    has_depthwise = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in neck.modules())
    assert has_depthwise == depthwise


def conv(cin: int, cout: int, k: int = 1) -> int:
    """Parameters of a ConvBNAct: the weights (no bias) and BatchNorm's weight and bias."""
    return cin * cout * k * k + 2 * cout


def csp(cin: int, cout: int, n: int) -> int:
    hidden = cout // 2
    bottleneck = conv(hidden, hidden) + conv(hidden, hidden, 3)
    return 2 * conv(cin, hidden) + n * bottleneck + conv(2 * hidden, cout)


def test_parameter_counts_of_yolox_s_widths_match_the_layer_definitions():
    """YOLOX-s: stem 32 channels, stages 64/128/256/512 with 1/3/3/1 bottlenecks, SPP(5, 9, 13) in the
    last stage; the neck's CSP blocks have one bottleneck each."""
    w, d = [32, 64, 128, 256, 512], [1, 3, 3, 1]
    expected_backbone = conv(4 * 3, 32, 3) + conv(512, 256) + conv(1024, 512)  # Focus, SPP's two convs
    expected_backbone += sum(conv(w[i], w[i + 1], 3) + csp(w[i + 1], w[i + 1], d[i]) for i in range(4))
    expected_neck = (conv(512, 256) + csp(512, 256, 1) + conv(256, 128) + csp(256, 128, 1)  # top-down
                     + conv(128, 128, 3) + csp(256, 256, 1) + conv(256, 256, 3) + csp(512, 512, 1))
    backbone = CSPDarknet(0.33, 0.5)
    neck = PAFPN(backbone.out_channels, deepen_factor=0.33)
    assert (count(backbone), count(neck)) == (expected_backbone, expected_neck) == (4_212_672, 2_834_688)
    # 7.05M without a head; SPPF has the same convs, so the same count.
    assert count(CSPDarknet(0.33, 0.5, spp="sppf")) == count(backbone)


def test_sppf_gives_the_same_output_as_spp_5_9_13():
    torch.manual_seed(0)
    spp, sppf = SPP(16, 8).eval(), SPPF(16, 8).eval()
    sppf.load_state_dict(spp.state_dict())  # pools have no weights: the same names, the same convs
    x = torch.randn(2, 16, 20, 20)
    torch.testing.assert_close(sppf(x), spp(x), rtol=0, atol=0)


def test_drop_block_drops_in_training_only():
    x = torch.ones(2, 8, 16, 16)
    drop = DropBlock(p=0.5, block_size=3)
    torch.manual_seed(0)
    trained = drop.train()(x)
    assert (trained == 0).any() and (trained > 1).any()  # squares zeroed, the rest rescaled
    assert torch.equal(drop.eval()(x), x)
    small = torch.ones(1, 8, 2, 2)  # a 2x2 map (C5 of a 64 px input): the block shrinks to 1x1
    assert drop.train()(small).shape == small.shape
    block = CSPLayer(8, 8, drop_block_prob=0.5)
    assert any(isinstance(m, DropBlock) for m in block.modules())
    assert not any(isinstance(m, DropBlock) for m in CSPLayer(8, 8).modules())


def test_built_from_config_nodes_through_the_registries():
    backbone = BACKBONES.build({"type": "CSPDarknet", "deepen_factor": 0.33, "widen_factor": 0.25,
                                "act": "mish", "spp": "sppf", "drop_block_prob": 0.1})
    neck = NECKS.build({"type": "PAFPN", "out_channels": [32, 64, 128], "act": "leaky_relu"},
                       in_channels=backbone.out_channels)
    assert isinstance(backbone.stage4.sppf, SPPF) and any(isinstance(m, nn.Mish) for m in backbone.modules())
    with torch.no_grad():
        outs = neck(backbone(torch.rand(1, 3, 64, 96)))  # in training mode: DropBlock on a 2x3 C5
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 12), (1, 64, 4, 6), (1, 128, 2, 3)]


@pytest.mark.parametrize("node, words", [
    ({"type": "CSPDarknet", "widen_factor": 0}, "widen_factor=0: expected a number > 0"),
    ({"type": "CSPDarknet", "act": "relu"}, "act=relu: expected one of silu, mish, leaky_relu"),
    ({"type": "CSPDarknet", "out_indices": [4, 3]}, "out_indices"),
    ({"type": "CSPDarknet", "spp": "sppx"}, "spp=sppx"),
    ({"type": "CSPDarknet", "drop_block_size": 4}, "drop_block_size=4: expected an odd integer"),
])
def test_a_bad_argument_is_one_line_naming_it(node, words):
    with pytest.raises(ConfigError) as info:
        BACKBONES.build(node)
    assert words in str(info.value) and "\n" not in str(info.value)
