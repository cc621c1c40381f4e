"""Import stable-audio-tools in the light CPU-torch install (no torchaudio, no torchvision).

PyPI serves torchaudio/torchvision only as CUDA builds, which fail to import beside the CPU
torch wheel (and torchaudio stops at 2.11). stable-audio-tools' inference path needs exactly
one name from them (`torchaudio.transforms.Resample`, for init audio at another rate), and
k-diffusion imports torchvision, CLIP, clean-fid and scikit-image only for its image-training
modules. So, only when the real packages cannot be imported: provide `Resample` (soxr), and
stand in empty modules for k-diffusion's `evaluation` / `augmentation` and torchvision's
transforms for the duration of the import. The stand-ins are removed from `sys.modules`
afterwards, so nothing else (e.g. transformers' availability checks) ever sees them. On a CUDA
image with the real packages installed this module does nothing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types
from typing import Any

_MODULES = (
    "k_diffusion",
    "stable_audio_tools.models.factory",
    "stable_audio_tools.models.autoencoders",
    "stable_audio_tools.models.bottleneck",
    "stable_audio_tools.models.pretransforms",
    "stable_audio_tools.models.conditioners",
    "stable_audio_tools.models.dit",
    "stable_audio_tools.models.diffusion",
    "stable_audio_tools.models.utils",
    "stable_audio_tools.inference.sampling",
    "stable_audio_tools.inference.utils",
    "stable_audio_tools.inference.generation",
)
_lock = threading.Lock()
_done = False


def _stub(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name, "stand-in installed by tunesmith (stable_audio/compat.py)")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False


def _resample_module() -> type:
    import numpy as np
    import soxr
    import torch

    class Resample(torch.nn.Module):
        """`torchaudio.transforms.Resample` for (..., time) tensors, computed with soxr (VHQ)."""

        def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, **_: Any) -> None:
            super().__init__()
            self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)

        def forward(self, waveform: torch.Tensor) -> torch.Tensor:
            if self.orig_freq == self.new_freq:
                return waveform
            flat = waveform.detach().float().cpu().numpy().reshape(-1, waveform.shape[-1])
            out = soxr.resample(flat.T, self.orig_freq, self.new_freq).T
            out = np.ascontiguousarray(out).reshape(*waveform.shape[:-1], -1)
            return torch.from_numpy(out).to(waveform.device, waveform.dtype)

    return Resample


def import_stable_audio_tools() -> None:
    """Import stable-audio-tools (and k-diffusion) once, with stand-ins where needed."""
    global _done
    with _lock:
        if _done:
            return
        stubs: dict[str, types.ModuleType] = {}
        if not _importable("torchaudio"):
            transforms = _stub("torchaudio.transforms", Resample=_resample_module())
            stubs["torchaudio"] = _stub("torchaudio", transforms=transforms)
            stubs["torchaudio.transforms"] = transforms
        if not _importable("torchvision"):
            functional = _stub("torchvision.transforms.functional")
            tv_transforms = _stub("torchvision.transforms", functional=functional)
            stubs["torchvision"] = _stub("torchvision", transforms=tv_transforms)
            stubs["torchvision.transforms"] = tv_transforms
            stubs["torchvision.transforms.functional"] = functional
            # Image-training modules of k-diffusion (CLIP, clean-fid, scikit-image): unused.
            stubs["k_diffusion.evaluation"] = _stub("k_diffusion.evaluation")
            stubs["k_diffusion.augmentation"] = _stub("k_diffusion.augmentation")
        added = [name for name in stubs if name not in sys.modules]
        sys.modules.update({name: stubs[name] for name in added})
        try:
            # Everything the factory imports lazily for diffusion_cond models, imported now
            # while the stand-ins are in place.
            for name in _MODULES:
                importlib.import_module(name)
        finally:
            for name in added:
                if not name.startswith("k_diffusion."):  # k_diffusion keeps its attributes
                    sys.modules.pop(name, None)
        _done = True
