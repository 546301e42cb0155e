"""Tokenizers: characters, and byte-pair encoding over characters.

Both share one interface (``encode``/``decode``, ``encode_batch``/``decode_batch``,
``to_dict``/``from_dict``, ``save``/``load``) and the same id layout: the special
tokens come first, in the order given (``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2 by
default), then the learned vocabulary.

>>> tok = CharTokenizer().fit(["12+34", "5-6"])
>>> tok.chars
'+-123456'
>>> tok.encode("12+3", add_eos=True)
[5, 6, 3, 7, 2]
>>> tok.decode([1, 5, 6, 3, 7, 2, 0, 0])
'12+3'
>>> tok.encode_batch(["1", "+23"])
array([[5, 0, 0],
       [3, 6, 7]])
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from fluxion.core.checks import check_count, check_output_path, check_path
from fluxion.errors import ArgumentTypeError, InvalidArgumentError

__all__ = ["BPETokenizer", "CharTokenizer", "Tokenizer", "load_tokenizer", "tokenizer_from_dict"]

DEFAULT_SPECIALS = ("<pad>", "<bos>", "<eos>")


def _as_texts(texts: str | Iterable[str], op: str) -> list[str]:
    # A bare string is one text, not an iterable of one-character texts.
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    bad = [type(t).__name__ for t in out if not isinstance(t, str)]
    if bad:
        raise InvalidArgumentError(
            f"{op}: texts must be strings, got {bad[0]}; pass a str or a list of str"
        )
    return out


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


class Tokenizer:
    """What every fluxion tokenizer shares: specials, padding, batches, JSON files.

    A subclass sets ``self._tokens`` (the string of every id; specials first) and
    implements ``_encode_text(text) -> list[int]``, ``_fit(texts)``, ``_state()``
    and ``_from_state(d)``.
    """

    def __init__(self, specials: Sequence[str] = DEFAULT_SPECIALS):
        what = (
            f"{type(self).__name__}: specials must be distinct non-empty strings, got {specials!r}"
        )
        if isinstance(specials, str) or not isinstance(specials, Iterable):
            raise ArgumentTypeError(what)
        specials = tuple(specials)
        if not all(isinstance(s, str) for s in specials):
            raise ArgumentTypeError(what)
        if len(set(specials)) != len(specials) or not all(specials):
            raise InvalidArgumentError(what)
        self.specials = specials
        self._tokens: list[str] = list(specials)

    # ------------------------------------------------------------ ids of the specials
    def _special_id(self, name: str) -> int | None:
        return self.specials.index(name) if name in self.specials else None

    @property
    def pad_id(self) -> int | None:
        """Id of ``<pad>`` (``None`` if the specials have none)."""
        return self._special_id("<pad>")

    @property
    def bos_id(self) -> int | None:
        """Id of ``<bos>`` (``None`` if the specials have none)."""
        return self._special_id("<bos>")

    @property
    def eos_id(self) -> int | None:
        """Id of ``<eos>`` (``None`` if the specials have none)."""
        return self._special_id("<eos>")

    @property
    def vocab_size(self) -> int:
        """Number of ids: the specials plus the learned vocabulary."""
        return len(self._tokens)

    @property
    def fitted(self) -> bool:
        return len(self._tokens) > len(self.specials)

    def id_to_token(self, i: int) -> str:
        """The string of one id (a special's name for a special)."""
        self._check_ids([i], "id_to_token")
        return self._tokens[i]

    # ------------------------------------------------------------ encode / decode
    def fit(self, texts: str | Iterable[str]):
        """Learn the vocabulary from ``texts`` (a str or an iterable of str); returns self."""
        self._fit(_as_texts(texts, f"{type(self).__name__}.fit"))
        return self

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """The ids of ``text``, optionally framed by ``<bos>`` / ``<eos>``."""
        if not isinstance(text, str):
            raise InvalidArgumentError(
                f"{type(self).__name__}.encode: text must be a str, got {type(text).__name__}"
            )
        self._check_fitted("encode")
        ids = self._encode_text(text)
        if add_bos:
            ids.insert(0, self._require("<bos>", "encode(add_bos=True)"))
        if add_eos:
            ids.append(self._require("<eos>", "encode(add_eos=True)"))
        return ids

    def decode(self, ids, skip_special: bool = True) -> str:
        """The text of ``ids`` (list, 1-d array); specials are dropped when ``skip_special``.

        Decoding does not stop at ``<eos>``: cut the ids first if that is what you want.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise InvalidArgumentError(
                f"{type(self).__name__}.decode: ids must be 1-d, got shape {ids.shape}; "
                "use decode_batch for a 2-d array"
            )
        ids = ids.tolist()
        self._check_ids(ids, "decode")
        n_special = len(self.specials)
        tokens = self._tokens
        if skip_special:
            return "".join(tokens[i] for i in ids if i >= n_special)
        return "".join(tokens[i] for i in ids)

    def encode_batch(
        self,
        texts: Iterable[str],
        length: int | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
    ) -> np.ndarray:
        """Encode texts into one int64 array ``(batch, length)``, right-padded with ``<pad>``.

        ``length`` defaults to the longest encoding; a text longer than ``length`` is an
        error (nothing is truncated silently).
        """
        name = f"{type(self).__name__}.encode_batch"
        texts = _as_texts(texts, name)
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        longest = max((len(r) for r in rows), default=0)
        if length is None:
            length = longest
        elif length < longest:
            i = max(range(len(rows)), key=lambda j: len(rows[j]))
            raise InvalidArgumentError(
                f"{name}: text {i} ({_short(texts[i])}) encodes to {len(rows[i])} tokens, "
                f"longer than length={length}; pass a larger length or shorter texts"
            )
        out = np.empty((len(rows), length), dtype=np.int64)
        if any(len(r) < length for r in rows):
            out.fill(self._require("<pad>", "encode_batch (padding)"))
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def decode_batch(self, array, skip_special: bool = True) -> list[str]:
        """Decode each row of a 2-d id array (or list of id lists)."""
        if isinstance(array, np.ndarray) and array.ndim != 2:
            raise InvalidArgumentError(
                f"{type(self).__name__}.decode_batch: expected a 2-d array, got shape {array.shape}"
            )
        return [self.decode(row, skip_special=skip_special) for row in array]

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """A JSON-able description, enough to rebuild the tokenizer with ``from_dict``."""
        return {"type": type(self).__name__, "specials": list(self.specials), **self._state()}

    @classmethod
    def from_dict(cls, d: dict):
        """Rebuild a tokenizer written by ``to_dict``."""
        kind = d.get("type")
        if kind != cls.__name__:
            raise InvalidArgumentError(
                f"{cls.__name__}.from_dict: the dict describes a {kind!r}, not a {cls.__name__}; "
                "use fluxion.data.tokenizer_from_dict to rebuild any kind"
            )
        return cls._from_state(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file."""
        path = check_output_path(f"{type(self).__name__}.save", "path", path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a tokenizer written by ``save``."""
        path = check_path(f"{cls.__name__}.load", "path", path)
        if not os.path.exists(path):
            raise InvalidArgumentError(
                f"{cls.__name__}.load: no file at {os.fspath(path)!r}; check the path"
            )
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    # ------------------------------------------------------------ helpers
    def _require(self, name: str, what: str) -> int:
        i = self._special_id(name)
        if i is None:
            raise InvalidArgumentError(
                f"{type(self).__name__}.{what}: needs the special token {name!r}, but the "
                f"specials are {self.specials}; build the tokenizer with {name!r} among its specials"
            )
        return i

    def _check_fitted(self, op: str) -> None:
        if not self.fitted:
            raise InvalidArgumentError(
                f"{type(self).__name__}.{op}: the tokenizer has no vocabulary yet; "
                "call .fit(texts) first (or build it from characters / load a saved one)"
            )

    def _check_ids(self, ids: list, op: str) -> None:
        n = len(self._tokens)
        for i in ids:
            if not isinstance(i, int) or not 0 <= i < n:
                raise InvalidArgumentError(
                    f"{type(self).__name__}.{op}: id {i!r} is not in the vocabulary "
                    f"(ids 0..{n - 1}); decode ids produced by this tokenizer"
                )

    def _unknown(self, text: str, unknown: Iterable[str]) -> InvalidArgumentError:
        chars = "".join(sorted(set(unknown)))
        return InvalidArgumentError(
            f"{type(self).__name__}.encode: character(s) {chars!r} of text {_short(text)} "
            "are not in the vocabulary; refit the tokenizer on texts that contain them, or use "
            "a tokenizer fitted on this kind of text"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, specials={self.specials})"

    # subclass hooks
    def _fit(self, texts: list[str]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_text(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_state(cls, d: dict):  # pragma: no cover - abstract
        raise NotImplementedError


class CharTokenizer(Tokenizer):
    """One id per character, after the specials.

    ``chars`` fixes the vocabulary and its order (e.g. ``"0123456789+#"``); otherwise
    ``fit(texts)`` takes the sorted set of characters in ``texts``.

    >>> tok = CharTokenizer("ab")
    >>> tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id
    (5, 0, 1, 2)
    >>> tok.encode("abba", add_bos=True)
    [1, 3, 4, 4, 3]
    >>> tok.decode(tok.encode("abba", add_bos=True), skip_special=False)
    '<bos>abba'
    """

    def __init__(self, chars: str | None = None, specials: Sequence[str] = DEFAULT_SPECIALS):
        super().__init__(specials)
        self.chars = ""
        self._index: dict[str, int] = {}
        if chars is not None:
            what = f"CharTokenizer: chars must be a str of distinct characters, got {chars!r}"
            if not isinstance(chars, str):
                raise ArgumentTypeError(what)
            if len(set(chars)) != len(chars):
                raise InvalidArgumentError(what)
            self._set_chars(chars)

    def _set_chars(self, chars: str) -> None:
        self.chars = chars
        self._tokens = list(self.specials) + list(chars)
        offset = len(self.specials)
        self._index = {c: offset + i for i, c in enumerate(chars)}

    def _fit(self, texts: list[str]) -> None:
        self._set_chars("".join(sorted(set().union(*texts))))

    def _encode_text(self, text: str) -> list[int]:
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            raise self._unknown(text, (c for c in text if c not in index)) from None

    def _state(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def _from_state(cls, d: dict):
        return cls(d["chars"], specials=d["specials"])


# Pre-tokenization (as in GPT-2): merges never cross the boundary between a word (with
# its leading space), a run of digits, a run of punctuation and whitespace. Every
# character matches one alternative, so the chunks concatenate back to the text.
_CHUNK = re.compile(r" ?[^\W\d]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")


class BPETokenizer(Tokenizer):
    """Byte-pair encoding over characters, trained on a corpus.

    ``fit`` starts from the sorted set of characters and merges, greedily, the most
    frequent adjacent pair of tokens (ties: the pair with the smallest ids), until
    ``vocab_size`` ids exist or no pair occurs twice. Encoding applies the merges in
    the order they were learned, so any text made of characters seen in training
    round-trips exactly; unseen characters raise.

    >>> tok = BPETokenizer(vocab_size=18).fit("low lower lowest " * 10)
    >>> [tok.id_to_token(i) for i in tok.encode(" lowest slow")]
    [' lowest', ' ', 's', 'low']
    >>> tok.decode(tok.encode(" lowest slow"))
    ' lowest slow'
    """

    def __init__(self, vocab_size: int, specials: Sequence[str] = DEFAULT_SPECIALS):
        super().__init__(specials)
        self.target_vocab_size = check_count("BPETokenizer", "vocab_size", vocab_size)
        self.chars = ""
        self.merges: list[tuple[int, int]] = []
        self._char_index: dict[str, int] = {}
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        self._cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------ vocabulary
    def _set_vocab(self, chars: str, merges: Iterable[tuple[int, int]]) -> None:
        self.chars = chars
        self._tokens = list(self.specials) + list(chars)
        self._char_index = {c: len(self.specials) + i for i, c in enumerate(chars)}
        self.merges, self._ranks, self._cache = [], {}, {}
        by_string = {t: i for i, t in enumerate(self._tokens) if i >= len(self.specials)}
        for a, b in merges:
            self._add_merge(int(a), int(b), by_string)

    def _add_merge(self, a: int, b: int, by_string: dict[str, int]) -> int:
        # Two merges can spell the same string ("ab"+"c", "a"+"bc"): they share one id.
        s = self._tokens[a] + self._tokens[b]
        c = by_string.get(s)
        if c is None:
            c = by_string[s] = len(self._tokens)
            self._tokens.append(s)
        self._ranks[(a, b)] = (len(self.merges), c)
        self.merges.append((a, b))
        return c

    def _fit(self, texts: list[str]) -> None:
        chars = "".join(sorted(set().union(*texts)))
        base = len(self.specials) + len(chars)
        if base > self.target_vocab_size:
            raise InvalidArgumentError(
                f"BPETokenizer.fit: the corpus has {len(chars)} distinct characters, which with "
                f"{len(self.specials)} specials needs vocab_size >= {base}, got "
                f"{self.target_vocab_size}; raise vocab_size or use a smaller alphabet"
            )
        self._set_vocab(chars, [])
        counts = Counter(chunk for t in texts for chunk in _CHUNK.findall(t))
        index = self._char_index
        words = [[index[c] for c in w] for w in counts]
        freqs = list(counts.values())

        # Pair counts weighted by word frequency, the words each pair occurs in, and a
        # max-heap of (-count, a, b) with lazy deletion of stale entries.
        pair_count: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = {}
        for w, (word, f) in enumerate(zip(words, freqs)):
            for p in zip(word, word[1:]):
                pair_count[p] += f
                where.setdefault(p, set()).add(w)
        heap = [(-n, a, b) for (a, b), n in pair_count.items()]
        heapq.heapify(heap)
        by_string = {t: i for i, t in enumerate(self._tokens) if i >= len(self.specials)}

        while len(self._tokens) < self.target_vocab_size and heap:
            neg, a, b = heapq.heappop(heap)
            if pair_count.get((a, b), 0) != -neg:
                continue  # stale entry
            if -neg < 2:
                break  # merging a pair seen once compresses nothing
            c = self._add_merge(a, b, by_string)
            delta: Counter = Counter()
            for w in where.pop((a, b)):
                word, f = words[w], freqs[w]
                merged = _merge_pair(word, a, b, c)
                if len(merged) == len(word):
                    continue  # stale membership: the pair left this word earlier
                for p in zip(word, word[1:]):
                    delta[p] -= f
                for p in zip(merged, merged[1:]):
                    delta[p] += f
                    where.setdefault(p, set()).add(w)
                words[w] = merged
            for p, d in delta.items():
                if d:
                    n = pair_count[p] + d
                    if n:
                        pair_count[p] = n
                        heapq.heappush(heap, (-n, *p))
                    else:
                        del pair_count[p]

    # ------------------------------------------------------------ encoding
    def _encode_chunk(self, chunk: str) -> list[int]:
        index, ranks = self._char_index, self._ranks
        word = [index[c] for c in chunk]
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: ranks.get(p, (np.inf,))[0])
            if best not in ranks:
                break
            word = _merge_pair(word, best[0], best[1], ranks[best][1])
        return word

    def _encode_text(self, text: str) -> list[int]:
        if not set(text) <= self._char_index.keys():
            raise self._unknown(text, (c for c in text if c not in self._char_index))
        cache, ids = self._cache, []
        for chunk in _CHUNK.findall(text):
            enc = cache.get(chunk)
            if enc is None:
                enc = cache[chunk] = self._encode_chunk(chunk)
            ids.extend(enc)
        return ids

    # ------------------------------------------------------------ files
    def _state(self) -> dict:
        return {
            "vocab_size": self.target_vocab_size,
            "chars": self.chars,
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def _from_state(cls, d: dict):
        tok = cls(d["vocab_size"], specials=d["specials"])
        tok._set_vocab(d["chars"], d["merges"])
        return tok


def _merge_pair(word: list[int], a: int, b: int, c: int) -> list[int]:
    """``word`` with each non-overlapping (a, b), scanned left to right, replaced by c."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(c)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


_KINDS = {"CharTokenizer": CharTokenizer, "BPETokenizer": BPETokenizer}


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild any fluxion tokenizer from its ``to_dict()``."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise InvalidArgumentError(
            f"tokenizer_from_dict: unknown tokenizer type {kind!r}; expected one of {sorted(_KINDS)}"
        )
    return _KINDS[kind].from_dict(d)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Read any fluxion tokenizer saved with ``.save(path)``."""
    path = check_path("load_tokenizer", "path", path)
    if not os.path.exists(path):
        raise InvalidArgumentError(
            f"load_tokenizer: no file at {os.fspath(path)!r}; check the path"
        )
    with open(path, encoding="utf-8") as f:
        return tokenizer_from_dict(json.load(f))
