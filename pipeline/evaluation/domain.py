"""The ``domain`` feature extractor: a small CNN trained on the prepared dataset's own labels.

Its penultimate layer gives FID/KID features and its logits the Inception-Score class posterior.
Numbers computed with it are comparable only with other numbers computed with the *same*
classifier (same dataset fingerprint), never with published Inception-based FIDs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline import atomic


class DomainCNN(nn.Module):
    """conv32-conv64-pool-conv64-pool → 128-d features → class logits; any H, W ≥ 8."""

    def __init__(self, channels: int, num_classes: int, width: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def train_classifier(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     shape: tuple[int, ...], num_classes: int, epochs: int | None = None,
                     seed: int = 0) -> tuple[DomainCNN, float]:
    """Adam (lr 1e-3), batch 128, about 2,000 steps (2 to 30 epochs); returns the model and its test accuracy."""
    epochs = epochs or int(np.clip(np.ceil(2000 * 128 / len(y_train)), 2, 30))
    torch.manual_seed(seed)
    model = DomainCNN(shape[0], num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(np.array(x_train, dtype=np.float32)).reshape(-1, *shape)
    yt = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(128):
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model, accuracy(model, x_test, y_test, shape)


@torch.no_grad()
def accuracy(model: DomainCNN, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> float:
    xs = torch.from_numpy(np.array(x, dtype=np.float32)).reshape(-1, *shape)
    pred = torch.cat([model(b).argmax(1) for b in xs.split(1024)])
    return float((pred.numpy() == np.asarray(y)).mean())


def load_or_train(cache_dir: Path, prepared_path: str, fingerprint: str) -> tuple[DomainCNN, dict]:
    """The classifier for a prepared dataset, trained once and cached by its fingerprint."""
    from pipeline.data import load_prepared, open_split

    meta = load_prepared(prepared_path).meta
    where = cache_dir / "domain" / fingerprint
    if (where / "classifier.pt").exists():
        info = json.loads((where / "info.json").read_text())
        model = DomainCNN(meta.shape[0], info["num_classes"])
        model.load_state_dict(torch.load(where / "classifier.pt", map_location="cpu"))
        return model.eval(), info
    x_train, y_train = open_split(prepared_path, "train")
    x_test, y_test = open_split(prepared_path, "test")
    started = time.perf_counter()
    model, acc = train_classifier(np.asarray(x_train), y_train, np.asarray(x_test), y_test,
                                  tuple(meta.shape), meta.num_classes)
    info = {"num_classes": meta.num_classes, "test_accuracy": acc, "train_examples": len(y_train),
            "seconds": time.perf_counter() - started, "source": meta.source}
    atomic.save_torch(where / "classifier.pt", model.state_dict())
    atomic.write_json(where / "info.json", info)
    return model, info
