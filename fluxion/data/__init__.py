"""Data for the curriculum: tokenizers, seeded task generators, batching.

>>> from fluxion.data import CharTokenizer, AdditionTask
>>> task = AdditionTask()
>>> tok = CharTokenizer(task.vocab)
>>> tok.encode_batch(["21+9", "3+4"], length=5)
array([[ 5,  4, 13, 12,  0],
       [ 6, 13,  7,  0,  0]])
"""

from fluxion.data.datasets import (
    AdditionTask,
    DifferenceTask,
    LMDataset,
    batches,
    char_corpus,
    sum_mod_dataset,
)
from fluxion.data.sampler import DistributedSampler, shard_batch
from fluxion.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

__all__ = [
    "AdditionTask",
    "BPETokenizer",
    "CharTokenizer",
    "DifferenceTask",
    "DistributedSampler",
    "LMDataset",
    "Tokenizer",
    "batches",
    "char_corpus",
    "load_tokenizer",
    "shard_batch",
    "sum_mod_dataset",
    "tokenizer_from_dict",
]
