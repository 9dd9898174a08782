"""The seed PyTorch sine example as a function, for comparison with rnntrain.

This is NOT rnntrain code: it is the reference program (Hjorth-Jensen, "Advanced
machine learning and data analysis for the physical sciences", RNN week, "Corresponding
example using PyTorch") written down line by line, minus plotting and printing. Its
Dataset, DataLoader loop, model, optimiser, per-epoch validation and recursive forecast
are kept as they are, so its wall time is what a user of the seed program sees.
"""
from __future__ import annotations

import time
from typing import Dict

import numpy as np
import torch
import torch.nn as nn


class SineDataset(torch.utils.data.Dataset):
    def __init__(self, data, seq_len):
        self.data = data
        self.seq_len = seq_len

    def __len__(self):
        return len(self.data) - self.seq_len

    def __getitem__(self, idx):
        x = self.data[idx:idx + self.seq_len]
        y = self.data[idx + self.seq_len]
        return x.unsqueeze(-1), y  # Add feature dimension


class RNNModel(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        out, _ = self.rnn(x)  # (batch, seq_len, hidden)
        return self.fc(out[:, -1, :])  # last time step


def run_seed(seed: int, num_epochs: int = 100) -> Dict[str, float]:
    """Train the seed program with ``torch.manual_seed(seed)`` (the reference sets no seed).

    Returns seconds (train + per-epoch validation loop), val_loss (last epoch's, the
    seed's definition: mean over val batches of the batch MSE; the last batch holds 20
    of the 180 windows but weighs as much as a full one), val_loss_windows (the same
    epoch's MSE with every window weighted equally, rnntrain's definition) and
    recursive_mse (the seed's 200-step recursive forecast against val_data).
    """
    torch.manual_seed(seed)
    t = torch.linspace(0, 4 * np.pi, 1000)
    data = torch.sin(t)
    train_data, val_data = data[:800], data[800:]
    seq_len, batch_size, hidden_size, learning_rate = 20, 32, 64, 0.001

    train_loader = torch.utils.data.DataLoader(SineDataset(train_data, seq_len),
                                               batch_size=batch_size, shuffle=True)
    val_loader = torch.utils.data.DataLoader(SineDataset(val_data, seq_len),
                                             batch_size=batch_size, shuffle=False)
    model = RNNModel(input_size=1, hidden_size=hidden_size, output_size=1)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    start = time.perf_counter()
    for epoch in range(num_epochs):
        model.train()
        epoch_train_loss = 0
        for x_batch, y_batch in train_loader:
            optimizer.zero_grad()
            y_pred = model(x_batch)
            loss = criterion(y_pred, y_batch.unsqueeze(-1))
            loss.backward()
            optimizer.step()
            epoch_train_loss += loss.item()
        model.eval()
        epoch_val_loss = 0
        val_sum = 0.0  # not in the seed: the same MSE weighting every window equally
        with torch.no_grad():
            for x_val, y_val in val_loader:
                y_pred_val = model(x_val)
                val_loss = criterion(y_pred_val, y_val.unsqueeze(-1))
                epoch_val_loss += val_loss.item()
                val_sum += val_loss.item() * len(x_val)
        val_loss = epoch_val_loss / len(val_loader)
    seconds = time.perf_counter() - start

    model.eval()
    current_sequence = train_data[-seq_len:].reshape(1, seq_len, 1).clone()
    predictions = []
    with torch.no_grad():
        for _ in range(len(val_data)):
            pred = model(current_sequence)
            predictions.append(pred.item())
            current_sequence = torch.cat([current_sequence[:, 1:, :], pred.unsqueeze(1)], dim=1)
    recursive_mse = float(np.mean((np.array(predictions) - val_data.numpy()) ** 2))
    return {"seconds": seconds, "val_loss": val_loss,
            "val_loss_windows": val_sum / len(val_loader.dataset), "recursive_mse": recursive_mse}


if __name__ == "__main__":
    print(run_seed(0))
