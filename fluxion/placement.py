"""JAX's device placement names; the NumPy backend has one device, ``cpu(0)``.

>>> x = fx.device_put({"w": np.ones(2)})
>>> x["w"], fx.device_get(x)["w"], fx.local_device_count()
([1. 1.]:f64[2]:cpu(0), array([1., 1.]), 1)
"""

from __future__ import annotations

from fluxion.core.pytree import tree_map
from fluxion.core.tensor import CPU, Tensor, _device_of, devices, to_tensor


def device_put(x, device=None):
    """The leaves of the pytree ``x`` as tensors on ``device`` (the cpu)."""
    if device is not None:
        _device_of("device_put", device)
    return tree_map(to_tensor, x)


def device_get(x):
    """The tensors of the pytree ``x`` as NumPy arrays (other leaves unchanged)."""
    return tree_map(lambda leaf: leaf.numpy() if isinstance(leaf, Tensor) else leaf, x)


def local_devices() -> list:
    return devices()


def device_count() -> int:
    return len(devices())


def local_device_count() -> int:
    return len(local_devices())


def default_backend() -> str:
    return CPU.kind
