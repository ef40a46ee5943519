"""Train the lab's convolutional network on MNIST and watch it learn.

    python train_mnist.py                      # the lab: 8 epochs, batch 50, lr 0.1/0.01/0.001/0.0001
    python train_mnist.py --limit 5000 --epochs 1 --out runs/quick
    python train_mnist.py --resume             # continue a run stopped by Ctrl-C

Leaves in --out: the first layer's filters during training (filters/), training_plot.png,
metrics.json (history, confusion matrix, per-class precision and recall), worst_test.png
(the 20 worst test mistakes), checkpoint.npz and model.npz (minidl.io.load gives the net back).
"""
import sys

from minidl import io, models, runs
from minidl.data import load_mnist
from minidl.layers import L2Regularizer, RegularizedLoss, SoftmaxCrossEntropy
from minidl.optim import SGD, EpochPolicy
from minidl.trainer import Trainer, evaluate


def train(options, data):
    """One run of the recipe; returns the trained net and its metrics."""
    run = runs.RunDirectory(options)  # --out: config.json, checkpoint.npz, the outputs

    # conv 5x5 -> pool -> ReLU -> conv 5x5 -> pool -> ReLU -> FC 512 -> ReLU -> FC 10
    net = models.lab_net(conv1_width=options.conv1_width, conv2_width=options.conv2_width,
                         fc_width=options.fc_width, kernel_size=options.kernel_size, rng=options.seed)
    loss = SoftmaxCrossEntropy()
    if options.weight_decay:  # train_l2reg.py: an L2 penalty on the conv1, conv2 and fc3 weights
        loss = RegularizedLoss(loss, [L2Regularizer(layer.weights, options.weight_decay, name=f"l2_{layer.name}")
                                      for layer in net if layer.name in ("conv1", "conv2", "fc3")])
    schedule = EpochPolicy(options.lr_policy)  # the lab's: 0.1 for epochs 1-2, 0.01 for 3-4, ...
    optimizer = SGD(lr=schedule(1), momentum=options.momentum)
    callbacks = run.callbacks(first_conv=net[0])  # a progress bar; conv1's filters as images every N steps
    trainer = Trainer(net, loss, optimizer, schedule, batch_size=options.batch_size, seed=options.seed,
                      callbacks=callbacks, checkpoint_path=run.checkpoint)
    if options.resume:
        trainer.load_checkpoint(run.checkpoint)

    x, y = data.train_x[:options.limit], data.train_y[:options.limit]  # --limit N: the first N images
    trainer.fit(x, y, options.epochs, data.val_x, data.val_y)
    if trainer.stopped_by_user:  # Ctrl-C: the step finished and the checkpoint is saved
        raise runs.Interrupted(run.checkpoint)

    test = evaluate(net, loss, data.test_x, data.test_y)
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
    results = run.write_results(trainer.history, test, data, loss)  # metrics.json and the figures
    io.save(net, run.file("model.npz"))
    return net, results


@runs.exit_status  # main returns 0, or 130 after Ctrl-C, 1 if the loss diverged, 2 for bad options
def main(argv=None):
    options = runs.parser(__doc__, out="runs/mnist").parse_args(argv)
    data = load_mnist(data_dir=options.data_dir, dataset=options.dataset)
    train(options, data)


if __name__ == "__main__":
    sys.exit(main())
