"""The lab network with L2 regularization of the conv1, conv2 and fc3 weights.

    python train_l2reg.py --weight-decay 1e-2               # one run
    python train_l2reg.py --lambdas 1e-3 1e-2 1e-1          # the lab's experiment: one run per lambda,
                                                            # then filters side by side and an accuracy table
"""
import argparse
import sys

from minidl.runs import add_common_arguments, config_from_args, l2_sweep, main_guard, train_run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out_default="runs/l2reg")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--weight-decay", type=float, default=1e-2, help="lambda of one run (default: %(default)s)")
    group.add_argument("--lambdas", type=float, nargs="+", help="a sweep: one run per lambda")
    args = parser.parse_args(argv)

    def run():
        if args.lambdas:
            result = l2_sweep(config_from_args(args), args.lambdas)
        else:
            result = train_run(config_from_args(args, weight_decay=args.weight_decay))
        return 130 if result.get("interrupted") else 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
