"""The batch contract and what every data source shares: datasets of posed views, the sampler and
the Lightning DataModule base class. See :mod:`rastlit.data` for the contract itself."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rastlit.image import background_rgb  # noqa: F401  (re-exported: the data's compositing colour)

__all__ = ["ViewDataset", "EpochShuffleSampler", "PosedImagesDataModule", "BATCH_KEYS", "background_rgb"]

# What a batch holds: what a camera saw, nothing more (see rastlit.data's docstring).
BATCH_KEYS = ("index", "mvp", "view", "proj", "eye", "rgb", "alpha")


class ViewDataset(Dataset):
    """Posed views held in memory: each item a dict of tensors with the keys :data:`BATCH_KEYS`."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        missing = [k for k in BATCH_KEYS if k not in tensors]
        extra = [k for k in tensors if k not in BATCH_KEYS]
        if missing or extra:
            raise ValueError(f"a view dataset holds exactly {BATCH_KEYS}; missing {missing}, unexpected {extra} "
                             "(ground truth a camera cannot see never enters a batch)")
        n = {t.shape[0] for t in tensors.values()}
        if len(n) != 1:
            raise ValueError(f"all view tensors need the same length, got {sorted(n)}")
        self.tensors = tensors
        self.n = n.pop()
        if self.n == 0:
            raise ValueError("a view dataset needs at least one view")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.tensors["rgb"].shape[1]), int(self.tensors["rgb"].shape[2])

    def subset(self, idx) -> "ViewDataset":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ViewDataset({k: v[idx] for k, v in self.tensors.items()})


def make_views(mvp_view_proj: tuple[torch.Tensor, torch.Tensor], eye: torch.Tensor, rgb: torch.Tensor,
               alpha: torch.Tensor) -> ViewDataset:
    """A :class:`ViewDataset` from cameras ``(view [N,4,4], proj [N,4,4])``, ``eye [N,3]`` and
    images ``rgb [N,H,W,3]``, ``alpha [N,H,W,1]`` (row 0 at the bottom)."""
    view, proj = mvp_view_proj
    view = view.float().contiguous()
    proj = proj.float().expand_as(view).contiguous()
    return ViewDataset({"index": torch.arange(view.shape[0]), "mvp": (proj @ view).contiguous(), "view": view,
                        "proj": proj, "eye": eye.float().contiguous(), "rgb": rgb.float().contiguous(),
                        "alpha": alpha.float().contiguous()})


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``seed + epoch``: reproducible, and a run resumed
    from a checkpoint sees the same order as an uninterrupted one (Lightning calls
    :meth:`set_epoch` every epoch)."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class PosedImagesDataModule(pl.LightningDataModule):
    """Train / val / test :class:`ViewDataset` splits served as batches of the contract.

    Subclasses implement :meth:`load_splits` (returning the three datasets) and may set
    ``gt_mesh`` (a :class:`rastlit.mesh.Mesh`, for evaluation only; it never enters a batch) and
    ``gt_texture``. ``setup`` loads once; the tasks read ``train_set`` (e.g. to initialise the
    shape from the cameras and masks) after Lightning has called it.
    """

    def __init__(self, batch_size: int = 8, seed: int = 0, num_workers: int = 0):
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.seed, self.num_workers = int(batch_size), int(seed), int(num_workers)
        self.train_set: ViewDataset | None = None
        self.val_set: ViewDataset | None = None
        self.test_set: ViewDataset | None = None
        self.gt_mesh: Any = None
        self.gt_texture: torch.Tensor | None = None

    def load_splits(self) -> tuple[ViewDataset, ViewDataset, ViewDataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set, self.val_set, self.test_set = self.load_splits()

    @property
    def resolution(self) -> tuple[int, int]:
        if self.train_set is None:
            raise RuntimeError("the data module is not set up yet (Lightning calls setup before the task's)")
        return self.train_set.resolution

    def _loader(self, ds: ViewDataset, train: bool) -> DataLoader:
        bs = min(self.batch_size, len(ds))
        if train:
            return DataLoader(ds, batch_size=bs, sampler=EpochShuffleSampler(len(ds), self.seed),
                              num_workers=self.num_workers, drop_last=False)
        return DataLoader(ds, batch_size=bs, shuffle=False, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
