"""PyTorch definitions of the four architectures of ../shared/spec/architectures.md.

This file is the source of truth for every expected number the Swift side is
tested against. It follows the spec literally; where the spec is silent it does
what PyTorch does by default.

Self-check (state_dict sizes against the spec's table, output shapes, the
too-small-input error):

    .venv/bin/python tools/models.py

Public API
----------
build(arch_id) -> Model            arch_id in ARCHS
Model.forward(image, acts=None)    image [1, 3, H, W], H, W >= 24; returns
                                   {'desc.<v>': [1,128,h,w], 'meta.<v>': [1,D,mh,mw]}
                                   for the variants in VARIANTS order.
sample_keypoints(out, keypoints, height, width) -> (kp_desc [N,4,128], kp_meta [N,4,D])
distance_matrix(desc0, meta0, desc1, meta1, squared=False) -> [N0, N1]
mutual_nearest_neighbours(dist) -> (matches int64 [M,2], distance [M])

Recorded activations
--------------------
Pass a dict as `acts` to forward() and it is filled with intermediate
activations, keyed `act.<state_dict prefix of the layer that produced it>`:

VGG backbone (lisrd, aislfd-a)
    act._backbone._bn1_1 ... act._backbone._bn4_2   (8 entries: 1_1 1_2 2_1 2_2
        3_1 3_2 4_1 4_2) the tensor right after the BatchNorm (conv -> ReLU ->
        BN), before any pooling.
LISRD heads (lisrd, aislfd-a)
    act.bn_illum_<B>_rot_<A>_1 for each variant rot_<A>_illum_<B>: right after
        that BatchNorm (conv_1 -> ReLU -> BN), before conv_2.
MSFE backbone (aislfd-b, aislfd-c)
    act.msfe.stem.bn, act.msfe.layer1.bn, act.msfe.layer2.0.bn,
    act.msfe.layer2.1.bn, act.msfe.layer3.0.bn, act.msfe.layer3.1.bn,
    act.msfe.layer4.0.bn, act.msfe.layer4.1.bn, act.msfe.smooth.bn:
        the block output, i.e. after the BN *and* the ReLU that follows it.
    act.msfe.lateral2, act.msfe.lateral3, act.msfe.lateral4: the lateral 1x1
        conv outputs at their own resolution (1/4, 1/8, 1/16), before resizing.
MSFE heads (aislfd-b, aislfd-c)
    act.msfe.heads.<v>.bn1: after bn1 and its ReLU, before conv2.
PSA meta (aislfd-a, aislfd-c)
    act.psa.<v>.query, act.psa.<v>.key, act.psa.<v>.value: the projections
        Q, K, V of the L2-normalised positions, shape [1, N, 128], N = h*w
        in row-major (y, x) order.
NetVLAD records no activations (its output is the meta map itself).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = ('rot_var_illum_var', 'rot_invar_illum_var', 'rot_var_illum_invar', 'rot_invar_illum_invar')
ARCHS = ('lisrd', 'aislfd-a', 'aislfd-b', 'aislfd-c')
BACKBONE = {'lisrd': 'vgg', 'aislfd-a': 'vgg', 'aislfd-b': 'msfe', 'aislfd-c': 'msfe'}
META = {'lisrd': 'netvlad', 'aislfd-a': 'psa', 'aislfd-b': 'netvlad', 'aislfd-c': 'psa'}
META_DIM = {'netvlad': 1024, 'psa': 128}
MIN_SIZE = 24
DESC_DIM = 128
VLAD_CLUSTERS = 8
VLAD_TILES = 3

# The spec's size table: state_dict entries and values (all entries).
SPEC_SIZES = {
    'lisrd': (104, 3_727_596),
    'aislfd-a': (116, 3_917_516),
    'aislfd-b': (104, 5_588_461),
    'aislfd-c': (116, 5_778_381),
}

VGG_LAYERS = (('1_1', 3, 64), ('1_2', 64, 64), ('2_1', 64, 64), ('2_2', 64, 64),
              ('3_1', 64, 128), ('3_2', 128, 128), ('4_1', 128, 256), ('4_2', 256, 256))
VGG_POOL_AFTER = ('1_2', '2_2', '3_2')


def lisrd_head_name(variant):
    """'rot_A_illum_B' -> 'illum_B_rot_A' (LISRD names its heads illumination-first)."""
    rot, illum = variant[len('rot_'):].split('_illum_')
    return f'illum_{illum}_rot_{rot}'


def _record(acts, name, tensor):
    if acts is not None:
        acts['act.' + name] = tensor.detach().clone()


class VGGBackbone(nn.Module):
    """LISRD's VGG-like backbone: conv -> ReLU -> BN, 2x2 average pool (floor) after 1_2, 2_2, 3_2."""

    def __init__(self):
        super().__init__()
        for name, cin, cout in VGG_LAYERS:
            setattr(self, f'_conv{name}', nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=True))
            setattr(self, f'_bn{name}', nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x, acts=None, prefix='_backbone'):
        for name, _, _ in VGG_LAYERS:
            x = getattr(self, f'_bn{name}')(F.relu(getattr(self, f'_conv{name}')(x)))
            _record(acts, f'{prefix}._bn{name}', x)
            if name in VGG_POOL_AFTER:
                x = F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=False)
        return x


class Block(nn.Module):
    """MSFE block: 3x3 conv (no bias, pad 1) -> BN -> ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)

    def forward(self, x, acts=None, prefix=None):
        x = F.relu(self.bn(self.conv(x)))
        if prefix is not None:
            _record(acts, f'{prefix}.bn', x)
        return x


class MSFEHead(nn.Module):
    """conv1 (3x3, no bias) -> bn1 -> ReLU -> conv2 (1x1, bias)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(256, 256, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(256, eps=1e-5)
        self.conv2 = nn.Conv2d(256, DESC_DIM, 1, bias=True)

    def forward(self, x, acts=None, prefix=None):
        x = F.relu(self.bn1(self.conv1(x)))
        _record(acts, f'{prefix}.bn1', x)
        return self.conv2(x)


class MSFE(nn.Module):
    """Multi-scale feature extractor with its four heads (names under `msfe.`)."""

    def __init__(self):
        super().__init__()
        self.stem = Block(3, 64, stride=2)
        self.layer1 = Block(64, 64)
        self.layer2 = nn.Sequential(Block(64, 128, stride=2), Block(128, 128))
        self.layer3 = nn.Sequential(Block(128, 256, stride=2), Block(256, 256))
        self.layer4 = nn.Sequential(Block(256, 256, stride=2), Block(256, 256))
        self.lateral2 = nn.Conv2d(128, 256, 1, bias=True)
        self.lateral3 = nn.Conv2d(256, 256, 1, bias=True)
        self.lateral4 = nn.Conv2d(256, 256, 1, bias=True)
        self.smooth = Block(256, 256)
        self.heads = nn.ModuleDict({v: MSFEHead() for v in VARIANTS})

    def features(self, x, acts=None):
        x = self.stem(x, acts, 'msfe.stem')
        x = self.layer1(x, acts, 'msfe.layer1')
        for i, block in enumerate(self.layer2):
            x = block(x, acts, f'msfe.layer2.{i}')
        c2 = x
        for i, block in enumerate(self.layer3):
            x = block(x, acts, f'msfe.layer3.{i}')
        c3 = x
        for i, block in enumerate(self.layer4):
            x = block(x, acts, f'msfe.layer4.{i}')
        c4 = x
        l3 = self.lateral3(c3)
        l4 = self.lateral4(c4)
        l2 = self.lateral2(c2)
        _record(acts, 'msfe.lateral2', l2)
        _record(acts, 'msfe.lateral3', l3)
        _record(acts, 'msfe.lateral4', l4)
        size = (c3.shape[2], c3.shape[3])
        p = (l3 + F.interpolate(l4, size=size, mode='bilinear', align_corners=False)
             + F.interpolate(l2, size=size, mode='bilinear', align_corners=False))
        return self.smooth(p, acts, 'msfe.smooth')


class NetVLAD(nn.Module):
    """NetVLAD on a 3x3 grid of tiles; meta map 1024 x 3 x 3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(DESC_DIM, VLAD_CLUSTERS, 1, bias=True)
        self.centroids = nn.Parameter(torch.rand(VLAD_CLUSTERS, DESC_DIM))

    def forward(self, raw):
        n, c, h, w = raw.shape
        h3, w3 = VLAD_TILES * (h // VLAD_TILES), VLAD_TILES * (w // VLAD_TILES)
        if h3 == 0 or w3 == 0:
            raise ValueError(f'NetVLAD needs a map of at least 3x3, got {h}x{w}')
        if (h3, w3) != (h, w):
            raw = F.interpolate(raw, size=(h3, w3), mode='bilinear', align_corners=False)
        th, tw = h3 // VLAD_TILES, w3 // VLAD_TILES
        out = raw.new_empty(n, VLAD_CLUSTERS * c, VLAD_TILES, VLAD_TILES)
        for i in range(VLAD_TILES):
            for j in range(VLAD_TILES):
                x = F.normalize(raw[:, :, i * th:(i + 1) * th, j * tw:(j + 1) * tw], dim=1)
                a = F.softmax(self.conv(x), dim=1).flatten(2)          # [n, K, P]
                x = x.flatten(2)                                        # [n, C, P]
                residual = x.unsqueeze(1) - self.centroids.view(1, VLAD_CLUSTERS, c, 1)  # [n, K, C, P]
                v = (residual * a.unsqueeze(2)).sum(dim=3)             # [n, K, C]
                v = F.normalize(v, dim=2).flatten(1)                   # intra-normalisation, k-major
                out[:, :, i, j] = F.normalize(v, dim=1)
        return out


class PSA(nn.Module):
    """Self-attention over the positions of one raw map; meta map 128 x h x w."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(DESC_DIM, DESC_DIM)
        self.key = nn.Linear(DESC_DIM, DESC_DIM)
        self.value = nn.Linear(DESC_DIM, DESC_DIM)

    def forward(self, raw, acts=None, prefix=None):
        n, c, h, w = raw.shape
        x = F.normalize(raw.flatten(2).transpose(1, 2), dim=2)    # [n, N, C]
        q, k, v = self.query(x), self.key(x), self.value(x)
        _record(acts, f'{prefix}.query', q)
        _record(acts, f'{prefix}.key', k)
        _record(acts, f'{prefix}.value', v)
        attention = F.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=2)
        y = attention @ v                                           # [n, N, C]
        return y.transpose(1, 2).reshape(n, c, h, w)


class Model(nn.Module):
    def __init__(self, arch):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f'unknown architecture {arch!r}; expected one of {", ".join(ARCHS)}')
        self.arch = arch
        self.backbone_kind = BACKBONE[arch]
        self.meta_kind = META[arch]
        if self.backbone_kind == 'vgg':
            self._backbone = VGGBackbone()
            for v in VARIANTS:
                head = lisrd_head_name(v)
                setattr(self, f'conv_{head}_1', nn.Conv2d(256, 256, 3, padding=1, bias=True))
                setattr(self, f'bn_{head}_1', nn.BatchNorm2d(256, eps=1e-5))
                setattr(self, f'conv_{head}_2', nn.Conv2d(256, DESC_DIM, 1, bias=True))
        else:
            self.msfe = MSFE()
        if self.meta_kind == 'netvlad':
            for v in VARIANTS:
                setattr(self, f'vlad_{v}', NetVLAD())
        else:
            self.psa = nn.ModuleDict({v: PSA() for v in VARIANTS})

    def raw_maps(self, image, acts=None):
        """The four raw descriptor maps, in VARIANTS order."""
        check_image(image)
        if self.backbone_kind == 'vgg':
            features = self._backbone(image, acts)
            maps = []
            for v in VARIANTS:
                head = lisrd_head_name(v)
                x = getattr(self, f'bn_{head}_1')(F.relu(getattr(self, f'conv_{head}_1')(features)))
                _record(acts, f'bn_{head}_1', x)
                maps.append(getattr(self, f'conv_{head}_2')(x))
            return maps
        features = self.msfe.features(image, acts)
        return [self.msfe.heads[v](features, acts, f'msfe.heads.{v}') for v in VARIANTS]

    def meta_map(self, variant, raw, acts=None):
        if self.meta_kind == 'netvlad':
            return getattr(self, f'vlad_{variant}')(raw)
        return self.psa[variant](raw, acts, f'psa.{variant}')

    def forward(self, image, acts=None):
        out = {}
        maps = self.raw_maps(image, acts)
        for v, raw in zip(VARIANTS, maps):
            out[f'desc.{v}'] = raw
        for v, raw in zip(VARIANTS, maps):
            out[f'meta.{v}'] = self.meta_map(v, raw, acts)
        return out


def check_image(image):
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f'image must be [N, 3, H, W], got {list(image.shape)}')
    h, w = image.shape[2], image.shape[3]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f'image is {h}x{w} (HxW); both sides must be at least {MIN_SIZE}')


def build(arch_id):
    """A fresh model in eval mode (PyTorch's default initialisation)."""
    return Model(arch_id).eval()


def state_dict_keys(arch_id):
    return list(Model(arch_id).state_dict().keys())


def detect_arch(keys):
    """The architecture whose state_dict has exactly these keys, or None."""
    keys = set(keys)
    for arch in ARCHS:
        if set(state_dict_keys(arch)) == keys:
            return arch
    return None


def sample_map(feature_map, keypoints, height, width):
    """grid_sample (bilinear, zeros, align_corners=False) at (2x/W - 1, 2y/H - 1), then L2-normalise.

    feature_map [1, C, h, w], keypoints [N, 2] (x, y) in input-image pixels -> [N, C].
    """
    kp = keypoints.to(feature_map.dtype)
    grid = torch.stack([2 * kp[:, 0] / width - 1, 2 * kp[:, 1] / height - 1], dim=1)
    grid = grid.view(1, 1, -1, 2)
    sampled = F.grid_sample(feature_map, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    return F.normalize(sampled[0, :, 0, :].t(), dim=1)


def sample_keypoints(out, keypoints, height, width):
    """kp_desc [N, 4, 128] and kp_meta [N, 4, D] from a forward() result."""
    kp_desc = torch.stack([sample_map(out[f'desc.{v}'], keypoints, height, width) for v in VARIANTS], dim=1)
    kp_meta = torch.stack([sample_map(out[f'meta.{v}'], keypoints, height, width) for v in VARIANTS], dim=1)
    return kp_desc, kp_meta


def distance_matrix(desc0, meta0, desc1, meta1, squared=False):
    """Eq. 1: dis(q, k) = sum_s softmax_s(m_s^q . m_s^k) * ||l_s^q - l_s^k||_2.

    desc [N, 4, 128], meta [N, 4, D]; returns [N0, N1]. With squared=True the
    L2 distance is replaced by LISRD's `2 - 2 l.l`.
    """
    weights = F.softmax(torch.einsum('qsd,ksd->qks', meta0, meta1), dim=2)
    if squared:
        local = 2 - 2 * torch.einsum('qsd,ksd->qks', desc0, desc1)
    else:
        local = torch.linalg.vector_norm(desc0.unsqueeze(1) - desc1.unsqueeze(0), dim=3)
    return (weights * local).sum(dim=2)


def mutual_nearest_neighbours(dist):
    """Pairs (q, k) with k = argmin_k dist[q] and q = argmin_q dist[:, k] (first index on ties).

    Returns matches int64 [M, 2] ordered by q, and their distances [M].
    """
    nn01 = torch.argmin(dist, dim=1)
    nn10 = torch.argmin(dist, dim=0)
    q = torch.arange(dist.shape[0])
    keep = nn10[nn01] == q
    matches = torch.stack([q[keep], nn01[keep]], dim=1).to(torch.int64)
    return matches, dist[matches[:, 0], matches[:, 1]]


def expected_output_shapes(arch_id, height, width):
    if BACKBONE[arch_id] == 'vgg':
        h, w = height // 2 // 2 // 2, width // 2 // 2 // 2
    else:
        h, w = height, width
        for _ in range(3):
            h, w = -(-h // 2), -(-w // 2)
    meta = (META_DIM['netvlad'], 3, 3) if META[arch_id] == 'netvlad' else (DESC_DIM, h, w)
    return (1, DESC_DIM, h, w), (1,) + meta


def self_check():
    torch.manual_seed(0)
    for arch in ARCHS:
        model = build(arch)
        sd = model.state_dict()
        entries, values = len(sd), sum(t.numel() for t in sd.values())
        assert (entries, values) == SPEC_SIZES[arch], (arch, entries, values, SPEC_SIZES[arch])
        assert detect_arch(sd.keys()) == arch
        for height, width in ((24, 24), (61, 83), (48, 64), (25, 50)):
            acts = {}
            with torch.no_grad():
                out = model(torch.rand(1, 3, height, width), acts)
            assert list(out) == [f'desc.{v}' for v in VARIANTS] + [f'meta.{v}' for v in VARIANTS]
            desc_shape, meta_shape = expected_output_shapes(arch, height, width)
            for v in VARIANTS:
                assert tuple(out[f'desc.{v}'].shape) == desc_shape, (arch, v, out[f'desc.{v}'].shape)
                assert tuple(out[f'meta.{v}'].shape) == meta_shape, (arch, v, out[f'meta.{v}'].shape)
            prefixes = {k[:k.rindex('.')] for k in sd}
            for name in acts:
                assert name[len('act.'):] in prefixes, name
        for height, width in ((23, 64), (64, 23)):
            try:
                model(torch.rand(1, 3, height, width))
            except ValueError:
                pass
            else:
                raise AssertionError(f'{arch}: {height}x{width} should be rejected')
        print(f'{arch}: {entries} entries, {values:,} values, {len(acts)} recorded activations: ok')


if __name__ == '__main__':
    self_check()
