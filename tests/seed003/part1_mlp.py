# Seed 003, Part I: an MLP regression in PyTorch, its loss compiled, gradients by autograd,
# and a training loop of plain SGD updates under no_grad (the tutorial's cells, blanks
# filled in). Run by tests/test_seed_003.py under torch and under `import fluxion as torch`.
import numpy as np
import torch

torch.set_default_dtype(torch.float32)
torch.set_float32_matmul_precision("high")
seed = 2024
np.random.seed(seed)
generator = torch.Generator()
generator.manual_seed(seed)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(device.type)


def predict(params, inputs):
    outputs = None
    for W, b in params:
        outputs = inputs @ W + b
        inputs = torch.relu(outputs)
    return outputs


def loss(params, batch):
    inputs, targets = batch
    preds = predict(params, inputs)
    return torch.mean((preds - targets) ** 2)


num_examples, dim = 256, 16
x_train = np.random.randn(num_examples, dim)
w = np.random.randn(dim)
y_train = np.dot(x_train, w) + 0.2 * np.random.randn(num_examples)
x_train, y_train = x_train.astype(np.float32), y_train.astype(np.float32)
W1, b1 = np.identity(dim), 0.0
W2, b2 = np.random.randn(dim), 0.0

x_train_tensor = torch.tensor(x_train)
y_train_tensor = torch.tensor(y_train)
W1_tensor = torch.tensor(W1).float()
b1_tensor = torch.tensor(b1).float()
W2_tensor = torch.tensor(W2).float()
b2_tensor = torch.tensor(b2).float()
batch = (x_train_tensor, y_train_tensor)
params = [(W1_tensor, b1_tensor), (W2_tensor, b2_tensor)]
print(f"loss {loss(params, batch).item():.6f}")

jit_loss = torch.compile(loss)
print(f"jit loss {jit_loss(params, batch).item():.6f}")


def grad_loss(params, batch):
    for W, b in params:
        W.requires_grad_(True)
        b.requires_grad_(True)
    loss_value = jit_loss(params, batch)
    loss_value.backward()
    grads = []
    for W, b in params:
        grads.append((W.grad, b.grad))
        W.requires_grad_(False)
        b.requires_grad_(False)
        W.grad, b.grad = None, None
    return grads


grads = grad_loss(params, batch)
print(f"grad norms {grads[0][0].norm().item():.6f} {grads[1][0].norm().item():.6f}")

num_steps, lr = 20, 0.001
modelparams = params
history = []
for _ in range(num_steps):
    new_loss = jit_loss(modelparams, batch)
    history.append(new_loss.item())
    grads = grad_loss(modelparams, batch)
    with torch.no_grad():
        for lyr in range(len(modelparams)):
            modelparams[lyr] = (
                modelparams[lyr][0] - lr * grads[lyr][0],
                modelparams[lyr][1] - lr * grads[lyr][1],
            )
print("history " + " ".join(f"{h:.6f}" for h in history))
