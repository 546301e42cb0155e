"""Models of the curriculum and their decoders.

* ``EncoderClassifier``: a transformer encoder over tokens, pooled into class logits.
* ``Seq2Seq``: encoder-decoder trained with teacher forcing (``shift_right``).
* ``GPT``: a decoder-only language model with a KV cache (``init_cache``, ``forward_cached``).
* decoding: ``sample_logits``, ``generate``, ``greedy_compiled``, ``beam_search``,
  ``best_of_n``, ``seq2seq_greedy``, ``seq2seq_beam_search``.

>>> from fluxion.models import GPT, generate
>>> model = GPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_len=12)
>>> generate(model, fx.tensor([[1, 2]]), max_new_tokens=3, temperature=0).shape
(1, 5)
"""

from fluxion.models.classifier import EncoderClassifier
from fluxion.models.decoding import (
    beam_search,
    best_of_n,
    filter_logits,
    generate,
    greedy_compiled,
    sample_logits,
    seq2seq_beam_search,
    seq2seq_greedy,
    sequence_logprob,
)
from fluxion.models.gpt import GPT, KVCache
from fluxion.models.layers import Attention, Block
from fluxion.models.seq2seq import Seq2Seq, shift_right
