"""A classifier trained the way the "Optimizing Model Parameters" chapter trains one: an
``nn.Module`` with ``Flatten`` and a ``Sequential`` of ``Linear``/``ReLU`` layers,
``CrossEntropyLoss``, ``optim.SGD``, and a train loop and a test loop over ``DataLoader``s.

FashionMNIST cannot be downloaded here, so the data set is made in the process with the
same shapes: 28 x 28 images in 10 classes, each class a fixed random pattern plus noise.
It is drawn with numpy from a fixed seed, so every library sees the same images.

    python docs/examples/nn_classifier.py
"""
import numpy as np


def make_data(torch, n_train=1024, n_test=256, seed=0):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(10, 28, 28))

    def split(n):
        labels = rng.integers(0, 10, size=n)
        images = patterns[labels] + 8.0 * rng.normal(size=(n, 28, 28))
        return torch.utils.data.TensorDataset(
            torch.tensor(images.astype(np.float32)), torch.tensor(labels))
    return split(n_train), split(n_test)


def make_model(torch):
    class NeuralNetwork(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = torch.nn.Flatten()
            self.linear_relu_stack = torch.nn.Sequential(
                torch.nn.Linear(28 * 28, 128), torch.nn.ReLU(),
                torch.nn.Linear(128, 128), torch.nn.ReLU(),
                torch.nn.Linear(128, 10))

        def forward(self, x):
            return self.linear_relu_stack(self.flatten(x))
    return NeuralNetwork()


def train_loop(dataloader, model, loss_fn, optimizer):
    model.train()
    for X, y in dataloader:
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss.item()


def test_loop(torch, dataloader, model, loss_fn):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    return loss / len(dataloader), correct / len(dataloader.dataset)


def main(torch, epochs=3, batch_size=64, lr=0.05, weights=None, verbose=True):
    """Train; returns the test loss and accuracy after each epoch. ``weights`` (a
    state_dict of numpy arrays) sets the starting point, so libraries can be compared."""
    train_data, test_data = make_data(torch)
    train = torch.utils.data.DataLoader(train_data, batch_size=batch_size)   # fixed order
    test = torch.utils.data.DataLoader(test_data, batch_size=batch_size)
    model = make_model(torch)
    if weights is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        last = train_loop(train, model, loss_fn, optimizer)
        test_loss, accuracy = test_loop(torch, test, model, loss_fn)
        history.append((last, test_loss, accuracy))
        if verbose:
            print(f"epoch {epoch + 1}: train loss {last:.4f}, test loss {test_loss:.4f}, "
                  f"accuracy {100 * accuracy:.1f}%")
    return {"history": history,
            "weights": {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}}


if __name__ == "__main__":
    import tapegrad
    tapegrad.manual_seed(0)
    main(tapegrad)
