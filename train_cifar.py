"""Train the CIFAR-10 network of the lab's last task, and look at what it learned.

    python train_cifar.py                                   # CIFAR-10: 10 epochs, batch 50, L2 1e-4
    python train_cifar.py --augment                         # with random crops and flips
    python train_cifar.py --dataset fashion-mnist-as-cifar  # the offline stand-in (not CIFAR-10)
    python train_cifar.py --limit 5000 --epochs 1 --out runs/quick
    python train_cifar.py --resume                          # continue a run stopped by Ctrl-C

CIFAR-10 is read from its python archive (fetched, or placed by hand in
~/.cache/minidl/cifar-10/, see the README). Where it cannot be had,
``--dataset fashion-mnist-as-cifar`` trains on Fashion-MNIST padded to 32x32 and
repeated over three channels: a stand-in with CIFAR-10's shapes, named as such in
every output. Leaves in --out: filters/ (the first layer's filters during
training), filters_start_end.png, training_plot.png, metrics.json (history with
the validation confusion matrix, precision and recall of every epoch; test
metrics), worst_test.png (the 20 worst test mistakes with their top 3
predictions), checkpoint.npz and model.npz.
"""
import sys

from minidl import io, models, runs, transforms
from minidl.data import DataUnavailableError, load_cifar10, load_fashion_mnist_as_cifar
from minidl.layers import FC, Conv, L2Regularizer, RegularizedLoss, SoftmaxCrossEntropy
from minidl.optim import SGD, EpochPolicy
from minidl.trainer import Trainer, evaluate

LOADERS = {"cifar10": load_cifar10, "fashion-mnist-as-cifar": load_fashion_mnist_as_cifar}


def load_data(options):
    """The data set of ``--dataset``: images (N, 3, 32, 32) standardised per channel with the
    training split's mean and standard deviation; a validation split of ``--validation-size``
    drawn at random (with ``--seed``) from the 50,000 (or 60,000) training images."""
    return LOADERS[options.dataset](data_dir=options.data_dir, validation_size=options.validation_size,
                                    split_seed=options.seed)


def augmentation(options):
    """With ``--augment``: each training image moved by up to 4 pixels (a random 32x32 window
    of the image padded with zeros, the mean colour after standardisation) and mirrored
    left-right half of the time; otherwise None."""
    if not options.augment:
        return None
    return transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])


def train(options, data):
    """One run of the recipe; returns the trained net and its metrics."""
    run = runs.RunDirectory(options)  # --out: config.json, checkpoint.npz, the outputs

    # conv 16 5x5 -> ReLU -> maxpool 3/2 -> conv 32 5x5 -> ReLU -> maxpool 3/2 -> FC 256 -> FC 128 -> FC 10
    net = models.cifar_net(rng=options.seed)
    initial_filters = net[0].weights.copy()  # the same after --resume: the seed fixes the initialisation
    loss = SoftmaxCrossEntropy()
    if options.weight_decay:  # L2 on every weight matrix and filter bank, not on the biases
        loss = RegularizedLoss(loss, [L2Regularizer(layer.weights, options.weight_decay, name=f"l2_{layer.name}")
                                      for layer in net if isinstance(layer, (Conv, FC))])
    schedule = EpochPolicy(options.lr_policy)
    optimizer = SGD(lr=schedule(1), momentum=options.momentum)
    # after every epoch: validation loss, accuracy, confusion matrix, precision and recall
    callbacks = run.callbacks(first_conv=net[0], validation=(data.val_x, data.val_y, data.class_names))
    trainer = Trainer(net, loss, optimizer, schedule, batch_size=options.batch_size, seed=options.seed,
                      callbacks=callbacks, checkpoint_path=run.checkpoint, transform=augmentation(options))
    if options.resume:
        trainer.load_checkpoint(run.checkpoint)

    x, y = data.train_x[:options.limit], data.train_y[:options.limit]  # --limit N: the first N images
    trainer.fit(x, y, options.epochs)  # validation is the callback's
    if trainer.stopped_by_user:  # Ctrl-C: the step finished and the checkpoint is saved
        raise runs.Interrupted(run.checkpoint)

    test = evaluate(net, loss, data.test_x, data.test_y)
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f} on {run.dataset}")
    results = run.write_results(trainer.history, test, data, loss)  # metrics.json and the figures
    run.write_filters(initial_filters, net[0].weights)
    io.save(net, run.file("model.npz"))
    return net, results


@runs.exit_status  # main returns 0, or 130 after Ctrl-C, 1 if the loss diverged, 2 for bad options
def main(argv=None):
    options = runs.parser(__doc__, out="runs/cifar", script="cifar").parse_args(argv)
    try:
        data = load_data(options)
    except DataUnavailableError:
        if options.dataset == "cifar10":
            print("CIFAR-10 is not available here; --dataset fashion-mnist-as-cifar trains on an offline "
                  "stand-in (not CIFAR-10)", file=sys.stderr)
        raise
    train(options, data)


if __name__ == "__main__":
    sys.exit(main())
