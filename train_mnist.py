"""Train the lab's convolutional network on MNIST and watch it learn.

    python train_mnist.py                      # the lab: 8 epochs, batch 50, lr 0.1/0.01/0.001/0.0001
    python train_mnist.py --limit 5000 --epochs 1 --out runs/quick
    python train_mnist.py --out runs/mnist --resume

Leaves filter images, a training plot, metrics.json (history, confusion matrix,
per-class precision and recall) and the 20 worst test mistakes in --out.
"""
import argparse
import sys

from minidl.runs import add_common_arguments, config_from_args, main_guard, train_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out_default="runs/mnist")
    args = parser.parse_args(argv)

    def run():
        result = train_run(config_from_args(args))
        return 130 if result.get("interrupted") else 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
