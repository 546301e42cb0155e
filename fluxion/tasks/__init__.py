"""The curriculum: one recipe per task (data + model + loss + evaluation) and the loop
that trains any of them, compiled (``fx.jit``) or eager.

* ``classify``: sum of tokens mod 3 (the seed-000 task), ``EncoderClassifier``;
* ``difference``: is a > b in "a-b"? ``EncoderClassifier`` over characters, accuracy in
  and out of distribution by length;
* ``addition``: "a+b" -> the sum, ``Seq2Seq`` with teacher forcing, exact match by length
  with greedy decoding;
* ``gpt``: a character language model (``GPT``) on a text corpus, validation loss
  against the unigram baseline, samples.

>>> from fluxion.tasks import make_config, train
>>> config = make_config("classify", steps=20, eval_every=10)
>>> result = train(config, "runs/classify", progress=False)   # doctest: +SKIP

From the shell: ``fluxion train classify``, ``fluxion eval --checkpoint ...``.
"""

from fluxion.tasks import addition, classify, difference, gpt
from fluxion.tasks.base import TASKS, Task, TaskError, TrainConfig, make_config, make_task
from fluxion.tasks.checkpoint import Checkpoint, load_checkpoint
from fluxion.tasks.loop import TrainResult, evaluate_checkpoint, load_for_inference, train

__all__ = [
    "TASKS",
    "Checkpoint",
    "Task",
    "TaskError",
    "TrainConfig",
    "TrainResult",
    "addition",
    "classify",
    "difference",
    "evaluate_checkpoint",
    "gpt",
    "load_checkpoint",
    "load_for_inference",
    "make_config",
    "make_task",
    "train",
]
