"""Tokenizers: round trips, specials, padding, batches, files, unknown characters."""

from __future__ import annotations

import json
import string
from collections import Counter

import numpy as np
import pytest

from fluxion.data import (
    BPETokenizer,
    CharTokenizer,
    char_corpus,
    load_tokenizer,
    tokenizer_from_dict,
)
from fluxion.errors import InvalidArgumentError

TEXTS = ["321+54000", "hello, world", "a-b", ""]


@pytest.fixture(scope="module")
def corpus():
    return char_corpus(max_bytes=200_000)


@pytest.fixture(scope="module")
def bpe(corpus):
    return BPETokenizer(vocab_size=500).fit(corpus)


def random_texts(alphabet: str, rng, n=50, max_len=40):
    return ["".join(rng.choice(list(alphabet), size=rng.integers(0, max_len))) for _ in range(n)]


# ---------------------------------------------------------------- CharTokenizer
def test_char_fit_layout():
    tok = CharTokenizer().fit(["cab", "ba"])
    assert tok.chars == "abc"
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab_size == 6
    assert tok.encode("abc") == [3, 4, 5]
    assert [tok.id_to_token(i) for i in range(6)] == ["<pad>", "<bos>", "<eos>", "a", "b", "c"]


def test_char_fit_is_order_independent_and_accepts_a_string():
    a = CharTokenizer().fit(["xyz", "abc"])
    b = CharTokenizer().fit(["abc", "xyz"])
    c = CharTokenizer().fit("abcxyz")
    assert a.chars == b.chars == c.chars == "abcxyz"


def test_char_given_chars_keep_their_order():
    tok = CharTokenizer("0123456789+#")
    assert tok.encode("10+#") == [4, 3, 13, 14]
    assert tok.vocab_size == 15


def test_char_round_trip_random_texts():
    rng = np.random.default_rng(0)
    alphabet = string.printable
    tok = CharTokenizer().fit(alphabet)
    for text in random_texts(alphabet, rng):
        assert tok.decode(tok.encode(text)) == text
        ids = tok.encode(text, add_bos=True, add_eos=True)
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and len(ids) == len(text) + 2
        assert tok.decode(ids) == text


def test_char_specials_in_decode():
    tok = CharTokenizer("ab")
    ids = [tok.bos_id, 3, 4, tok.eos_id, tok.pad_id, tok.pad_id]
    assert tok.decode(ids) == "ab"
    assert tok.decode(ids, skip_special=False) == "<bos>ab<eos><pad><pad>"
    # decoding does not stop at <eos>
    assert tok.decode([3, tok.eos_id, 4]) == "ab"
    # text that spells a special is ordinary characters
    tok2 = CharTokenizer().fit("<pad>")
    assert tok2.decode(tok2.encode("<pad>")) == "<pad>"
    assert tok2.pad_id not in tok2.encode("<pad>")


def test_char_custom_specials():
    tok = CharTokenizer("ab", specials=("<pad>", "<sep>"))
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, None, None)
    assert tok.encode("a") == [2]
    with pytest.raises(InvalidArgumentError, match="<bos>"):
        tok.encode("a", add_bos=True)
    nopad = CharTokenizer("ab", specials=())
    assert nopad.encode_batch(["ab", "ba"]).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(InvalidArgumentError, match="<pad>"):
        nopad.encode_batch(["ab", "a"])


def test_char_encode_batch_padding():
    tok = CharTokenizer().fit(TEXTS)
    arr = tok.encode_batch(TEXTS)
    assert arr.dtype == np.int64 and arr.shape == (4, 12)
    for row, text in zip(arr, TEXTS):
        n = len(text)
        assert row[:n].tolist() == tok.encode(text)
        assert (row[n:] == tok.pad_id).all()
    assert tok.decode_batch(arr) == TEXTS
    wide = tok.encode_batch(TEXTS, length=20, add_bos=True, add_eos=True)
    assert wide.shape == (4, 20)
    assert wide[3, :3].tolist() == [tok.bos_id, tok.eos_id, tok.pad_id]
    assert tok.decode_batch(wide) == TEXTS
    assert tok.encode_batch([], length=5).shape == (0, 5)


def test_char_encode_batch_too_long_is_an_error():
    tok = CharTokenizer().fit(TEXTS)
    with pytest.raises(InvalidArgumentError, match="hello, world"):
        tok.encode_batch(TEXTS, length=5)
    with pytest.raises(InvalidArgumentError, match="length=12"):
        tok.encode_batch(TEXTS, length=12, add_eos=True)


def test_char_unknown_character_error():
    tok = CharTokenizer().fit("0123456789+")
    with pytest.raises(InvalidArgumentError) as e:
        tok.encode("12-3x")
    msg = str(e.value)
    assert "'-x'" in msg and "12-3x" in msg and "refit" in msg
    assert isinstance(e.value, ValueError)
    with pytest.raises(InvalidArgumentError, match="not in the vocabulary"):
        tok.encode_batch(["12", "a"])


def test_char_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="no vocabulary"):
        CharTokenizer().encode("a")
    with pytest.raises(InvalidArgumentError, match="distinct"):
        CharTokenizer("aa")
    with pytest.raises(InvalidArgumentError, match="distinct"):
        CharTokenizer("ab", specials=("<pad>", "<pad>"))
    tok = CharTokenizer("ab")
    with pytest.raises(InvalidArgumentError, match="id 5"):
        tok.decode([3, 5])
    with pytest.raises(InvalidArgumentError, match="1-d"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(InvalidArgumentError, match="str"):
        tok.encode(["a"])


def test_char_save_load(tmp_path):
    tok = CharTokenizer(specials=("<pad>", "<bos>", "<eos>", "<sep>")).fit(TEXTS)
    d = tok.to_dict()
    assert json.loads(json.dumps(d)) == d
    path = tmp_path / "tok.json"
    tok.save(path)
    for loaded in (CharTokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(d)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.specials == tok.specials and loaded.chars == tok.chars
        assert (loaded.encode_batch(TEXTS) == tok.encode_batch(TEXTS)).all()
    with pytest.raises(InvalidArgumentError, match="BPETokenizer"):
        BPETokenizer.from_dict(d)
    with pytest.raises(InvalidArgumentError, match="no file"):
        CharTokenizer.load(tmp_path / "missing.json")


# ---------------------------------------------------------------- BPETokenizer
def test_bpe_reaches_vocab_size_and_compresses(bpe, corpus):
    assert bpe.vocab_size == 500
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2)
    piece = corpus[:20_000]
    ids = bpe.encode(piece)
    assert len(ids) < len(piece) / 2  # Python source compresses well
    assert bpe.decode(ids) == piece


def test_bpe_round_trip_on_any_text_of_seen_characters(bpe):
    rng = np.random.default_rng(1)
    texts = random_texts(bpe.chars, rng) + random_texts(" \n_a1(", rng) + ["", "  x  ", "\n\n\n"]
    for text in texts:
        assert bpe.decode(bpe.encode(text)) == text
    arr = bpe.encode_batch(texts, add_bos=True, add_eos=True)
    assert arr.dtype == np.int64
    assert bpe.decode_batch(arr) == texts


def test_bpe_first_merge_is_the_most_frequent_pair():
    text = "aaab abab ab cd cd"
    tok = BPETokenizer(vocab_size=3 + 5 + 1).fit(text)  # specials + chars " abcd" + 1 merge
    # independent count of adjacent pairs within words (with their leading space)
    pairs = Counter()
    for word in ["aaab", " abab", " ab", " cd", " cd"]:
        pairs.update(zip(word, word[1:]))
    ((best, n),) = pairs.most_common(1)
    assert n == 4 and best == ("a", "b")
    assert tok.vocab_size == 9 and tok.id_to_token(8) == "ab"
    assert [tok.id_to_token(i) for i in tok.encode(" abab")] == [" ", "ab", "ab"]


def test_bpe_tie_break_is_deterministic_and_independent_of_text_order():
    texts = ["xy zw", "zw xy", "qq rr", "rr qq"]
    a = BPETokenizer(vocab_size=20).fit(texts)
    b = BPETokenizer(vocab_size=20).fit(texts[::-1])
    assert a.merges == b.merges and a.to_dict() == b.to_dict()
    # four pairs occur twice each ("qq", "rr", "xy", "zw"); the smallest ids (characters
    # in sorted order) go first; then no pair repeats and fitting stops short of 20
    first = len(a.specials) + len(a.chars)
    assert [a.id_to_token(i) for i in range(first, a.vocab_size)] == ["qq", "rr", "xy", "zw"]


def test_bpe_stops_when_no_pair_repeats():
    tok = BPETokenizer(vocab_size=1000).fit("abcdef")
    assert tok.vocab_size == 3 + 6 and tok.merges == []
    assert tok.encode("fed") == [8, 7, 6]


def test_bpe_unknown_and_bad_arguments(bpe):
    with pytest.raises(InvalidArgumentError, match="refit"):
        bpe.encode("caf\u00e9")
    with pytest.raises(InvalidArgumentError, match="vocab_size >= 9"):
        BPETokenizer(vocab_size=5).fit("abcdef")
    with pytest.raises(InvalidArgumentError, match="vocab_size must be an int >= 1"):
        BPETokenizer(vocab_size=0)


def test_bpe_save_load(bpe, corpus, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    for loaded in (BPETokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.vocab_size == bpe.vocab_size and loaded.merges == bpe.merges
        piece = corpus[50_000:60_000]
        assert loaded.encode(piece) == bpe.encode(piece)
    with pytest.raises(InvalidArgumentError, match="unknown tokenizer type"):
        tokenizer_from_dict({"type": "WordPiece"})


def test_bpe_fit_is_deterministic(corpus):
    a = BPETokenizer(vocab_size=300).fit(corpus[:50_000])
    b = BPETokenizer(vocab_size=300).fit(corpus[:50_000])
    assert a.merges == b.merges


def test_bpe_merges_spelling_the_same_string_share_one_id():
    # "ab"+"c" and "a"+"bc" both spell "abc": one id, and encoding still round-trips.
    d = {"type": "BPETokenizer", "specials": ["<pad>"], "vocab_size": 10, "chars": "abc"}
    d["merges"] = [[1, 2], [2, 3], [4, 3], [1, 5]]  # ab=4, bc=5, abc=6, abc again
    tok = BPETokenizer.from_dict(d)
    assert tok.vocab_size == 7 and len(tok.merges) == 4
    assert tok.encode("abc") == [6] and tok.encode("abcbc") == [6, 5]
    assert tok.decode(tok.encode("cabcab")) == "cabcab"
