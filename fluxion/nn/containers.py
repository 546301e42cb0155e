"""Sequential, ModuleList, ModuleDict: submodules named ``0``, ``1``... or by key, as in PyTorch.

>>> net = fx.nn.Sequential(fx.nn.Linear(2, 4), fx.nn.ReLU(), fx.nn.Linear(4, 1))
>>> list(net.state_dict())
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

from fluxion.errors import IndexOutOfRangeError, InvalidArgumentError
from fluxion.nn.module import Module, ModuleAttributeError


def _check_module(owner: str, m) -> Module:
    if not isinstance(m, Module):
        raise ModuleAttributeError(f"{owner}: entries must be fx.nn.Module, got {type(m).__name__}")
    return m


class _IndexedModules(Module):
    """Modules kept as attributes named ``"0"``, ``"1"``... (that is where their state-dict
    names come from), in order."""

    def _items(self) -> list[Module]:
        return [v for v in self.__dict__.values() if isinstance(v, Module)]

    def _names(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if isinstance(v, Module)]

    def _reset(self, modules) -> None:
        for name in self._names():
            delattr(self, name)
        for i, m in enumerate(modules):
            setattr(self, str(i), _check_module(type(self).__name__, m))

    def _index(self, idx: int) -> int:
        n = len(self)
        if not -n <= idx < n:
            raise IndexOutOfRangeError(
                f"{type(self).__name__}: index {idx} is out of range for {n} modules"
            )
        return idx % n

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def __getitem__(self, idx):
        items = self._items()
        if isinstance(idx, slice):
            out = type(self).__new__(type(self))
            Module.__init__(out)
            for i, m in enumerate(items[idx]):
                setattr(out, str(i), m)
            return out
        return items[self._index(idx)]

    def __setitem__(self, idx: int, module) -> None:
        setattr(self, self._names()[self._index(idx)], _check_module(type(self).__name__, module))

    def __delitem__(self, idx) -> None:
        items = self._items()
        del items[idx if isinstance(idx, slice) else self._index(idx)]
        self._reset(items)

    def append(self, module) -> _IndexedModules:
        setattr(self, str(len(self)), _check_module(type(self).__name__, module))
        return self

    def extend(self, modules) -> _IndexedModules:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        items = self._items()
        items.insert(index, _check_module(type(self).__name__, module))
        self._reset(items)


class Sequential(_IndexedModules):
    """Modules applied in order; ``Sequential(OrderedDict(name=module))`` names them.

    >>> fx.nn.Sequential(fx.nn.Linear(3, 2), fx.nn.Tanh())(fx.ones((5, 3))).shape
    (5, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for name, m in modules[0].items():
                self._check_name(name, "Sequential")
                setattr(self, name, _check_module("Sequential", m))
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), _check_module("Sequential", m))

    def forward(self, input):
        for m in self._items():
            input = m(input)
        return input


class ModuleList(_IndexedModules):
    """A list of submodules, named ``0``, ``1``... (no forward of its own).

    >>> layers = fx.nn.ModuleList([fx.nn.Linear(2, 2) for _ in range(3)])
    >>> len(layers), list(layers.state_dict())[:2]
    (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)


class ModuleDict(Module):
    """A dict of submodules named by their keys.

    >>> heads = fx.nn.ModuleDict({"cls": fx.nn.Linear(4, 2), "reg": fx.nn.Linear(4, 1)})
    >>> sorted(heads.keys())
    ['cls', 'reg']
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _names(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if isinstance(v, Module)]

    def __getitem__(self, key: str) -> Module:
        if key not in self._names():
            raise KeyError(f"ModuleDict has no module {key!r}; keys: {self._names()}")
        return self.__dict__[key]

    def __setitem__(self, key: str, module) -> None:
        if key not in self._names():
            self._check_name(key, "ModuleDict")
        setattr(self, key, _check_module("ModuleDict", module))

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (raises the KeyError)
        delattr(self, key)

    def __contains__(self, key) -> bool:
        return key in self._names()

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self):
        return iter(self._names())

    def keys(self) -> list[str]:
        return self._names()

    def values(self) -> list[Module]:
        return [self.__dict__[k] for k in self._names()]

    def items(self) -> list[tuple[str, Module]]:
        return [(k, self.__dict__[k]) for k in self._names()]

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            if not isinstance(key, str):
                raise InvalidArgumentError(f"ModuleDict: keys must be strings, got {key!r}")
            self[key] = m

    def pop(self, key: str) -> Module:
        m = self[key]
        delattr(self, key)
        return m
