"""Training strategies: how a model's gradients become optimizer updates.

A strategy wraps one trainable module into a ``Trainable`` with a micro-batch API that the workers use
whatever the backend:

    loss = ...                               # already normalised for the whole minibatch (see algorithms)
    grad_norm = trainable.micro_step(loss, boundary)   # backward; at a minibatch boundary: clip + step

``torch``: a plain torch optimizer in one process. ``deepspeed``: ZeRO-2/3 data-parallel engines
(``trainer.strategy.deepspeed_strategy``). Both produce the gradient of the *sum* of the per-rank losses, so a
loss normalised by a global token count gives the same update for any number of ranks and micro-batches.
"""
from trainer.strategy.torch_strategy import Trainable, TorchTrainable, build_optimizer  # noqa: F401
