"""Check every layer's backprop against float64 central differences.

    python check_grads.py                       # every built-in case
    python check_grads.py --select conv         # only the cases whose name contains "conv"
    python check_grads.py --layer mypkg.mymod:MyLayer --args '{"size": 3}' --input-shape 2,3,8,8

Prints one row per checked tensor. Exit status: 0 if every tensor passed, 1 if any
failed, 2 for a usage error (including a --select that matches no case).
"""
import argparse
import sys

from minidl.gradcheck import check_user_layer, print_table
from minidl.gradcheck_cases import run_cases, select


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer", help="a layer class to check, as package.module:ClassName")
    parser.add_argument("--args", default="{}", help="JSON object of keyword arguments for the layer")
    parser.add_argument("--input-shape", help="input shape, e.g. 2,3,8,8 (needed with --layer)")
    parser.add_argument("--select", help="run only built-in cases whose name contains this text")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print the worst entry of failing tensors")
    args = parser.parse_args(argv)
    if args.layer:
        try:
            results = [check_user_layer(args.layer, args.args, args.input_shape, args.tol, args.seed)]
        except (ValueError, ImportError) as exc:
            parser.error(str(exc))
    else:
        cases = select(args.select)
        if not cases:
            parser.error(f"no built-in case matches --select {args.select!r}")
        results = run_cases(cases, seed=args.seed, tol=args.tol)
    failures = print_table(results, verbose=args.verbose)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
