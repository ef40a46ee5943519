"""train_mnist.py stopped halfway through an optimiser step, for test_runs.py.

    python tests/interruptible_train.py K [train_mnist.py options]

Runs ``train_mnist.main`` on the synthetic digits of test_runs.py. In its K-th step
the SGD update changes the first half of the parameters, prints "halfway through
step K" and waits there (a minute at most) until a signal arrives, then changes
the rest. A signal sent when that line appears thus lands in the middle of a step.
"""
import os
import select
import signal
import sys

import train_mnist
from minidl.optim import SGD
from test_runs import skip_slow_figures, synthetic_digits


def main():
    stop_at, argv = int(sys.argv[1]), sys.argv[2:]
    data = synthetic_digits(n_train=200)
    train_mnist.load_mnist = lambda **kwargs: data
    skip_slow_figures(setattr)

    # the interpreter writes a byte to this pipe when a signal arrives, whatever its handler does
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    sgd_step = SGD.step
    steps = 0

    def step_with_a_pause_halfway(self, pairs):
        nonlocal steps
        steps += 1
        if steps != stop_at:
            return sgd_step(self, pairs)
        pairs = list(pairs)
        sgd_step(self, pairs[:len(pairs) // 2])
        print(f"halfway through step {steps}", flush=True)
        if not select.select([wakeup_read], [], [], 60)[0]:
            sys.exit("no signal came within a minute")
        sgd_step(self, pairs[len(pairs) // 2:])

    SGD.step = step_with_a_pause_halfway
    sys.exit(train_mnist.main(argv))


if __name__ == "__main__":
    main()
