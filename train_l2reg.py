"""The lab network with an L2 penalty on the conv1, conv2 and fc3 weights.

    python train_l2reg.py --weight-decay 1e-2               # one run
    python train_l2reg.py --lambdas 1e-3 1e-2 1e-1          # the lab's experiment: one run per lambda,
                                                            # then filters side by side and an accuracy table
"""
import os
import sys

from minidl import runs
from minidl.data import load_mnist
from train_mnist import train  # the same recipe; options.weight_decay adds the penalty to the loss


@runs.exit_status  # main returns 0, or 130 after Ctrl-C, 1 if the loss diverged, 2 for bad options
def main(argv=None):
    parser = runs.parser(__doc__, out="runs/l2reg")
    parser.set_defaults(weight_decay=1e-2)
    parser.add_argument("--lambdas", type=float, nargs="+",
                        help="one run per lambda in OUT/lambda_<value> (instead of --weight-decay), then "
                             "filters_by_lambda.png and lambda_table.md in OUT")
    options = parser.parse_args(argv)
    data = load_mnist(data_dir=options.data_dir, dataset=options.dataset)
    if not options.lambdas:
        train(options, data)
        return
    results = {}
    for lam in options.lambdas:
        print(f"=== lambda = {lam:g} ===")
        results[lam] = train(runs.replace(options, weight_decay=lam, lambdas=None,
                                          out=os.path.join(options.out, f"lambda_{lam:g}")), data)
    runs.compare_lambdas(results, options.out)


if __name__ == "__main__":
    sys.exit(main())
