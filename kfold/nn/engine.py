"""Training one model (one fold): data kept as one tensor on the device, whole-batch augmentation,
a short loop, per-epoch validation, best-epoch selection and checkpoint/resume.

A checkpoint is written at every epoch end and holds everything the rest of the fold depends on
(weights, optimizer, EMA, RNG states, history), so a resumed fold on CPU ends bit-identical to an
uninterrupted one. It is loaded with ``torch.load(weights_only=True)``: no pickle is executed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from kfold.files.atomic import atomic_path
from kfold.nn.augment import AugPolicy, BatchAugment, PRESET_POLICIES, image_transform
from kfold.config import TrainConfig
from kfold.errors import DataError, UsageError
from kfold.nn.inference import Norm, autocast, image_channels, norm_operand, predict_proba, to_unit_float
from kfold.nn.precision import Precision, decide as decide_precision
from kfold.nn.models import create_model

from kfold.files.rundir import CHECKPOINT  # noqa: E402  (the run directory module owns the name)
CHECKPOINT_KEYS = ("model", "optimizer", "ema", "best_state", "best_probs", "cpu_rng", "cuda_rng", "shuffle_rng", "state_json")
STATE_KEYS = ("epoch", "step", "best_epoch", "best_acc", "best_loss", "stale", "history", "seconds")


def checkpoint_precision(path: Path) -> dict | None:
    """The bf16 / channels_last choice a fold's checkpoint was trained with (``None``: no checkpoint, or an older
    one without it); read before the fold's model is built, so that a resumed fold keeps its choice."""
    if not Path(path).is_file():
        return None
    try:
        return json.loads(torch.load(path, map_location="cpu", weights_only=True)["state_json"]).get("precision")
    except Exception:  # noqa: BLE001 - a damaged checkpoint: load_checkpoint names it with its own message
        return None


def aug_policy(cfg: TrainConfig) -> AugPolicy:
    if isinstance(cfg.aug, dict):
        return AugPolicy.from_dict(cfg.aug)
    if cfg.aug not in PRESET_POLICIES:
        raise UsageError(f"unknown augmentation policy {cfg.aug!r}; available: {', '.join(sorted(PRESET_POLICIES))}")
    return PRESET_POLICIES[cfg.aug]


def build_model(cfg: TrainConfig, num_classes: int, image_size: int, in_chans: int) -> torch.nn.Module:
    """``cfg``'s model for ``in_chans`` x ``image_size`` x ``image_size`` images (the task's; no default: a model
    built for another shape fails at its first step, as the precision probe once did on RGB)."""
    return create_model(cfg.model, num_classes, in_chans=in_chans, image_size=image_size, dropout=cfg.dropout,
                        batch_norm=cfg.batch_norm, **cfg.model_kwargs)


def normalization(images: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> tuple[Norm, Norm]:
    """Mean and standard deviation of the pixels (scaled to [0, 1]) of ``images[rows]``, the training fold.

    Grayscale images (N, H, W): two floats, computed as kfold always has (bit for bit). Images (N, H, W, C)
    with C > 1: a list of C floats each, per channel, from exact per-channel histograms of the uint8 values
    taken ``chunk`` images at a time (no float copy of the fold: 20,000 RGB images of 128x128 would be 8 GB)."""
    if image_channels(images) == 1:
        train_pixels = images[rows].astype(np.float64) / 255.0
        return float(train_pixels.mean()), float(train_pixels.std() + 1e-8)
    channels = image_channels(images)
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        block = images[rows[start:start + chunk]]
        for channel in range(channels):
            counts[channel] += np.bincount(block[..., channel].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    std = np.sqrt((counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total)
    return [float(m) for m in mean], [float(s + 1e-8) for s in std]


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


MAX_WARMUP_SHARE = 0.3  # of the epochs: the one-cycle default, and the cap on an explicit warm-up


def lr_factor(cfg: TrainConfig, t: float) -> float:
    """Learning-rate multiplier ``t`` epochs into training (fractional; a pure function: nothing to checkpoint).

    Measured in epochs rather than steps so that epochs of different sizes (pseudo-labelling,
    staged experiments) still follow one schedule. The warm-up takes at most 30% of the run, so a short
    run (``--epochs 2`` with a preset's 3-epoch warm-up) still decays to the schedule's end."""
    warmup = min(cfg.warmup_epochs, MAX_WARMUP_SHARE * cfg.epochs)
    if cfg.schedule == "onecycle":  # linear warm-up from lr/25, then cosine down to 0 at cfg.epochs
        warmup = warmup or MAX_WARMUP_SHARE * cfg.epochs
        if t < warmup:
            return 0.04 + 0.96 * t / warmup
        return _cosine_decay(t - warmup, cfg.epochs - warmup)
    if t < warmup:
        return t / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.step_gamma ** int(t // cfg.step_epochs)
    return _cosine_decay(t - warmup, cfg.epochs - warmup)


def _cosine_decay(t: float, length: float) -> float:
    """1 at 0, falling along a half cosine to 0 at ``length``."""
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t / max(1e-9, length))))


def mix_batch(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig):
    """Mixup or CutMix on a batch (global torch RNG). Returns x, y_a, y_b, lam (lam=1: unmixed)."""
    if (cfg.mixup <= 0 and cfg.cutmix <= 0) or torch.rand(()) >= cfg.mix_prob:
        return x, y, y, 1.0
    use_cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or torch.rand(()) < 0.5)
    alpha = cfg.cutmix if use_cutmix else cfg.mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x)).to(x.device)
    if not use_cutmix:
        return lam * x + (1 - lam) * x[perm], y, y[perm], lam
    h, w = x.shape[-2:]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, y, y[perm], lam


class _ImageDataset(torch.utils.data.Dataset):
    """Per-image albumentations backend (the conventional DataLoader path)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, row):
        image = torch.from_numpy(self.transform(self.images[row]))  # (H, W) or (H, W, C) float32
        label = self.labels[row]  # a class, or a multi-label row of 0/1 floats
        return (image.unsqueeze(0) if image.dim() == 2 else image.permute(2, 0, 1)), (
            torch.from_numpy(label) if np.ndim(label) else int(label))


@dataclass
class FoldResult:
    best_epoch: int
    val_accuracy: float | None
    val_loss: float | None
    history: list[dict]
    val_probs: np.ndarray | None
    seconds: float
    state_dict: dict = field(repr=False, default_factory=dict)


class FoldTrainer:
    """Train one model on ``train_rows`` of a task, validating on ``val_rows`` (None: no validation).

    With ``cfg.pseudo_label`` > 0, ``unlabeled`` images (the test set) and the validation images (never
    their labels) form the pool that pseudo-labelling draws from. Validation images belong in the pool
    because the test images do: the out-of-fold score then measures what the test set will see.
    """

    def __init__(self, cfg: TrainConfig, images: np.ndarray, labels: np.ndarray, num_classes: int,
                 train_rows: np.ndarray, val_rows: np.ndarray | None, device: torch.device, seed: int,
                 work_dir: Path, desc: str = "", progress: bool = True, unlabeled: np.ndarray | None = None,
                 precision: Precision | None = None):
        self.cfg, self.device, self.seed, self.work_dir, self.desc, self.progress = cfg, device, seed, Path(work_dir), desc, progress
        self.num_classes = num_classes
        self.train_rows, self.val_rows = np.asarray(train_rows), None if val_rows is None else np.asarray(val_rows)
        self.labels_np = labels  # the true labels: validation and metrics read only these
        self.multilabel = np.ndim(labels) == 2  # (N, tags) 0/1: one sigmoid per tag, binary cross-entropy
        if self.multilabel and cfg.pseudo_label > 0:
            raise UsageError(f"pseudo_label={cfg.pseudo_label}: pseudo-labelling picks one confident class per image; "
                             "a multi-label target has several (use pseudo_label=0)")
        self.channels = image_channels(images)
        self.mean, self.std = normalization(images, self.train_rows)  # training fold only
        self._mean, self._std = norm_operand(self.mean, device), norm_operand(self.std, device)
        self.pseudo_pool = np.empty(0, dtype=np.int64)
        if cfg.pseudo_label > 0:
            extra = np.empty((0, *images.shape[1:]), images.dtype) if unlabeled is None else unlabeled
            pool = [np.arange(len(images), len(images) + len(extra))] + ([] if self.val_rows is None else [self.val_rows])
            self.pseudo_pool = np.concatenate(pool)
            images = np.concatenate([images, extra])
        self.images_np = images
        # The fast path: the whole dataset as one uint8 tensor on the training device.
        pinned = device.type == "cuda"
        self.images = (torch.from_numpy(images).pin_memory() if pinned else torch.from_numpy(images)).to(device, non_blocking=True)
        # Training targets: the true label of every labeled row, a pseudo-label (or -1) for every pool row.
        if self.multilabel:
            targets = np.zeros((len(images), labels.shape[1]), dtype=np.float32)
        else:
            targets = np.full(len(images), -1, dtype=np.int64)
        targets[:len(labels)] = labels
        if self.val_rows is not None:
            targets[self.val_rows] = -1
        self.targets = torch.from_numpy(targets).to(device)
        if precision is None:  # bf16 / channels_last: the config's rule, or on the CPU the probe's choice (cached)
            precision = decide_precision(cfg, device, sample=images[self.train_rows[: cfg.batch_size]],
                                         num_classes=num_classes, build=build_model)
        self.precision = precision
        self.channels_last, self.bf16 = precision.channels_last, precision.bf16
        torch.manual_seed(seed)
        self.model = build_model(cfg, num_classes, int(images.shape[1]), self.channels).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.compiled = self._compiled(self.model) if cfg.compile else None
        self.optimizer = make_optimizer(cfg, self.model)
        self.ema = None
        if cfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        self.policy = aug_policy(cfg)
        self.augment = BatchAugment(self.policy).to(device)
        self.shuffle = torch.Generator().manual_seed(seed)
        self.set_train_rows(self.train_rows)
        self.last_lr = cfg.lr
        self.state = dict(epoch=0, step=0, best_epoch=0, best_acc=-1.0, best_loss=math.inf, stale=0, history=[], seconds=0.0,
                          precision={"bf16": self.bf16, "channels_last": self.channels_last})
        self.best_state: dict[str, torch.Tensor] = {}
        self.best_probs: np.ndarray | None = None

    def set_train_rows(self, rows: np.ndarray) -> None:
        """Choose the labeled rows the next epochs train on (experiments switch them between epochs)."""
        self.labeled_rows = np.asarray(rows)
        self._epoch_rows(self.labeled_rows)

    def _epoch_rows(self, rows: np.ndarray) -> None:
        self.train_rows = rows
        self.drop_last = len(self.train_rows) > self.cfg.batch_size
        self.steps_per_epoch = len(self.train_rows) // self.cfg.batch_size if self.drop_last else 1

    def refresh_pseudo_labels(self) -> dict:
        """Predict the unlabeled pool with the current model; its confident rows join this epoch's training rows.

        Returns the epoch's pseudo-label counts, and their accuracy on the validation images among
        them (a diagnostic only: training never reads a validation label)."""
        cfg = self.cfg
        if not len(self.pseudo_pool) or self.state["epoch"] < math.ceil(cfg.pseudo_start * cfg.epochs):
            return {}
        pool = torch.from_numpy(self.pseudo_pool).to(self.device)
        probs = predict_proba(self.eval_model, self.images[pool], self.mean, self.std, self.device, cfg.eval_batch_size,
                              channels_last=self.channels_last, bf16=self.bf16)
        confident = probs.max(1) >= cfg.pseudo_label
        rows, classes = self.pseudo_pool[confident], probs.argmax(1)[confident]
        self.targets[pool] = -1
        self.targets[torch.from_numpy(rows).to(self.device)] = torch.from_numpy(classes).to(self.device)
        self._epoch_rows(np.concatenate([self.labeled_rows, rows]))
        in_val = rows < len(self.labels_np)
        val_acc = float((classes[in_val] == self.labels_np[rows[in_val]]).mean()) if in_val.any() else math.nan
        return {"pseudo_rows": int(len(rows)), "pseudo_val_accuracy": val_acc}

    def _compiled(self, model):
        try:
            return torch.compile(model)
        except Exception as exc:  # torch.compile is optional; fall back to eager
            tqdm.write(f"warning: torch.compile unavailable ({type(exc).__name__}: {exc}); running eagerly")
            return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass; a compiled model that fails to build at its first call falls back to eager."""
        if self.compiled is None:
            return self.model(x)
        if self.state["step"] > 0:
            return self.compiled(x)
        try:
            return self.compiled(x)
        except Exception as exc:  # compilation happens lazily, at the first call (missing compiler, unsupported op)
            tqdm.write(f"warning: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); running eagerly")
            self.compiled = None
            return self.model(x)

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    # ---- checkpointing ---------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "best_state": self.best_state,
            "best_probs": torch.from_numpy(self.best_probs) if self.best_probs is not None else torch.empty(0),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "shuffle_rng": self.shuffle.get_state(),
            "state_json": json.dumps(self.state),
        }
        with atomic_path(self.work_dir / CHECKPOINT) as tmp:
            try:
                torch.save(payload, tmp)
            except RuntimeError as exc:  # a full disk: "[enforce fail at inline_container.cc] ... file write failed"
                raise _write_failed(self.work_dir / CHECKPOINT, exc) from None

    def load_checkpoint(self) -> bool:
        path = self.work_dir / CHECKPOINT
        if not path.exists():
            return False
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
            missing = [key for key in CHECKPOINT_KEYS if not isinstance(payload, dict) or key not in payload]
            if missing:
                raise KeyError(f"missing {', '.join(missing)}")
            state = json.loads(payload["state_json"])
            if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
                raise ValueError(f"state_json lacks {', '.join(k for k in STATE_KEYS if not isinstance(state, dict) or k not in state)}")
            if not isinstance(state["epoch"], int) or not 0 <= state["epoch"] <= self.cfg.epochs:
                raise ValueError(f"epoch {state['epoch']!r} outside 0..{self.cfg.epochs}")
            cpu_rng, shuffle_rng = payload["cpu_rng"].cpu(), payload["shuffle_rng"].cpu()
            for name, rng in (("cpu_rng", cpu_rng), ("shuffle_rng", shuffle_rng)):
                if rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
                    raise ValueError(f"{name} has shape {tuple(rng.shape)} of {rng.dtype}, not an RNG state")
            if not isinstance(payload["best_state"], dict) or not isinstance(payload["best_probs"], torch.Tensor):
                raise TypeError("best_state/best_probs have the wrong type")
            mine = {"bf16": self.bf16, "channels_last": self.channels_last}
            if state.setdefault("precision", mine) != mine:  # (an older checkpoint has none: this fold's choice)
                raise ValueError(f"it was trained with {state['precision']}, this fold now runs with {mine}")
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
            best_probs = payload["best_probs"].cpu().numpy() if payload["best_probs"].numel() else None
            if best_probs is not None and self.val_rows is not None and best_probs.shape != (len(self.val_rows), self.num_classes):
                raise ValueError(f"best_probs has shape {best_probs.shape}")
            torch.set_rng_state(cpu_rng)
            if self.device.type == "cuda" and payload["cuda_rng"]:
                torch.cuda.set_rng_state_all([s.cpu() for s in payload["cuda_rng"]])
            self.shuffle.set_state(shuffle_rng)
        except Exception as exc:  # a checkpoint from another model, a damaged or a hand-edited file
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DataError(f"{path}: cannot resume from this checkpoint ({type(exc).__name__}: {detail}); "
                            "delete it to restart the fold") from None
        self.best_state = payload["best_state"]
        self.best_probs = best_probs
        self.state = state
        return True

    # ---- one epoch ---------------------------------------------------------------------------
    def _batches_device(self):
        """Yield (x in [0,1] augmented, y) from the device-resident tensor; no per-sample Python."""
        order = torch.from_numpy(self.train_rows)[torch.randperm(len(self.train_rows), generator=self.shuffle)].to(self.device)
        bs = self.cfg.batch_size
        for step in range(self.steps_per_epoch):
            rows = order[step * bs:(step + 1) * bs] if self.drop_last else order
            yield self._resized(self.augment(to_unit_float(self.images[rows]))), self.targets[rows]

    def _resized(self, x: torch.Tensor) -> torch.Tensor:
        """Progressive resizing: during the first ``low_res_epochs`` epochs, the batch downscaled to ``low_res``."""
        side = self.cfg.low_res
        if not side or self.state["epoch"] >= self.cfg.low_res_epochs or side >= max(x.shape[-2:]):
            return x
        return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)

    def _batches_loader(self):
        """Yield batches from a torch DataLoader with per-image albumentations in worker processes."""
        order = self.train_rows[torch.randperm(len(self.train_rows), generator=self.shuffle).numpy()]
        transform = image_transform(self.policy, image_size=min(self.images_np.shape[1:3]))
        dataset = _ImageDataset(self.images_np, self.targets.cpu().numpy(), transform)
        worker_seed = torch.Generator().manual_seed(self.seed * 100_003 + self.state["epoch"])
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.cfg.batch_size, sampler=order.tolist(), drop_last=self.drop_last,
            num_workers=self.cfg.num_workers, generator=worker_seed,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        for x, y in loader:
            yield self._resized(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)

    def train_epoch(self) -> tuple[float, float]:
        cfg = self.cfg
        self.model.train()
        batches = self._batches_device() if cfg.aug_backend == "kornia" else self._batches_loader()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = 0
        bar = tqdm(batches, total=self.steps_per_epoch, leave=False, disable=None if self.progress else True,
                   desc=f"{self.desc} epoch {self.state['epoch'] + 1}/{cfg.epochs}")
        for index, (x, y) in enumerate(bar):
            self.last_lr = cfg.lr * lr_factor(cfg, self.state["epoch"] + (index + 0.5) / self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = self.last_lr
            x = (x - self._mean) / self._std
            x, y_a, y_b, lam = mix_batch(x, y, cfg)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.bf16):
                logits = self.forward(x)
                loss = lam * self._loss(logits, y_a)
                if lam < 1.0:
                    loss = loss + (1 - lam) * self._loss(logits, y_b)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.state["step"] += 1
            total_loss += loss.detach() * len(y)
            if self.multilabel:  # the share of right (image, tag) decisions at 0.5
                correct += ((logits > 0).float() == y_a).float().mean(dim=1).sum()
            else:
                correct += (logits.argmax(1) == y_a).sum()
            seen += len(y)
        return float(total_loss) / seen, float(correct) / seen

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of one class per image; binary cross-entropy per tag (targets smoothed towards 0.5)."""
        smoothing = self.cfg.label_smoothing
        if not self.multilabel:
            return F.cross_entropy(logits, y, label_smoothing=smoothing)
        return F.binary_cross_entropy_with_logits(logits.float(), y * (1 - smoothing) + 0.5 * smoothing)

    def evaluate(self) -> tuple[float, float, np.ndarray]:
        probs = predict_proba(self.eval_model, self.images[torch.from_numpy(self.val_rows).to(self.device)], self.mean, self.std,
                              self.device, self.cfg.eval_batch_size, channels_last=self.channels_last, bf16=self.bf16,
                              multilabel=self.multilabel)
        labels = self.labels_np[self.val_rows]
        if self.multilabel:  # binary cross-entropy, and the share of right (image, tag) decisions at 0.5
            clipped = np.clip(probs.astype(np.float64), 1e-12, 1 - 1e-12)
            loss = float(-(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)).mean())
            return loss, float(((probs >= 0.5) == labels).mean()), probs
        loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
        return loss, float((probs.argmax(1) == labels).mean()), probs

    # ---- the whole fold ----------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FoldResult:
        if resume and self.load_checkpoint():  # replaces self.state: take the reference only afterwards
            tqdm.write(f"{self.desc}: resuming after epoch {self.state['epoch']}")
        cfg, state = self.cfg, self.state
        while state["epoch"] < cfg.epochs:
            start = time.perf_counter()
            pseudo = self.refresh_pseudo_labels()
            train_loss, train_acc = self.train_epoch()
            if not math.isfinite(train_loss):  # diverged: every later number (and file) would be NaN
                raise UsageError(f"{self.desc}: training diverged in epoch {state['epoch'] + 1} (loss {train_loss}); "
                                 f"lower the learning rate (lr={cfg.lr:g})")
            state["epoch"] += 1
            row = dict(epoch=state["epoch"], train_loss=train_loss, train_accuracy=train_acc,
                       val_loss=math.nan, val_accuracy=math.nan, lr=self.last_lr, **pseudo)
            if self.val_rows is not None and (state["epoch"] == cfg.epochs or cfg.val_every and state["epoch"] % cfg.val_every == 0):
                row["val_loss"], row["val_accuracy"], probs = self.evaluate()
                better = cfg.keep == "last" or (row["val_accuracy"], -row["val_loss"]) > (state["best_acc"], -state["best_loss"])
                if better:
                    state.update(best_epoch=state["epoch"], best_acc=row["val_accuracy"], best_loss=row["val_loss"], stale=0)
                    self.best_state = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}
                    self.best_probs = probs
                else:
                    state["stale"] += 1
            row["seconds"] = time.perf_counter() - start
            state["seconds"] += row["seconds"]
            state["history"].append(row)
            tqdm.write(self._epoch_line(row))
            stop = cfg.early_stopping and state["stale"] >= cfg.early_stopping
            if stop:
                tqdm.write(f"{self.desc}: early stop, no improvement for {cfg.early_stopping} epochs")
                break
            self.save_checkpoint()
        if self.val_rows is None:  # full-data training keeps the last epoch
            state["best_epoch"] = state["epoch"]
            self.best_state = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}
        return FoldResult(
            best_epoch=state["best_epoch"],
            val_accuracy=state["best_acc"] if self.val_rows is not None else None,
            val_loss=state["best_loss"] if self.val_rows is not None else None,
            history=state["history"], val_probs=self.best_probs, seconds=state["seconds"], state_dict=self.best_state,
        )

    def _epoch_line(self, row: dict) -> str:
        val = "" if math.isnan(row["val_loss"]) else f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}"
        pseudo = f" pseudo {row['pseudo_rows']}" if "pseudo_rows" in row else ""
        return (f"{self.desc} epoch {row['epoch']:>3}/{self.cfg.epochs} loss {row['train_loss']:.4f} "
                f"acc {row['train_accuracy']:.4f}{val}{pseudo} lr {row['lr']:.2e} {row['seconds']:.1f}s")


def save_weights(path: Path, state_dict: dict, meta: dict) -> None:
    """Weights as safetensors, with the metadata needed to rebuild and normalize in the header."""
    from safetensors import SafetensorError

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"kfold": json.dumps(meta)})
        except SafetensorError as exc:  # a full disk
            raise _write_failed(path, exc) from None


def _write_failed(path: Path, exc: BaseException) -> OSError:
    """One line naming ``path`` for a writer that reports a failed write (disk full) as its own exception."""
    import errno
    import os
    import shutil

    detail = " ".join(str(exc).split())
    try:
        full = shutil.disk_usage(path.parent).free < 1 << 20 or "No space" in detail or "write failed" in detail
    except OSError:
        full = "No space" in detail
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"could not write ({detail[:200]})", str(path))
