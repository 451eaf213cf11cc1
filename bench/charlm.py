#!/usr/bin/python3
"""PyTorch reference of nabla's character-level language models (the
contract both sides follow: a byte-level GPT and a 2-layer LSTM trained on
the fortune cookie files, same data split, schedule, clipping and module
names). Trains one model and prints the validation loss, so nabla's
examples/charlm can be checked against it, or times training steps.

    /usr/bin/python3 bench/charlm.py --model gpt [--steps 2000] [--threads 2]
    /usr/bin/python3 bench/charlm.py --model lstm --eval-every 0
    /usr/bin/python3 bench/charlm.py --bench --model gpt --threads 1 [--bench-steps 20]

Data: every regular file in --data (Debian package `fortunes`) not ending
in .dat or .u8, in byte-wise sorted name order, concatenated; the first
floor(0.9 n) bytes train, the rest validate. A training step: batch
windows at uniform random starts, forward, mean cross-entropy over all
positions, backward, gradients clipped to total L2 norm 1, learning rate
set from the schedule (100 linear warm-up steps from lr/100, then cosine to
0 at the last step), optimizer step.

Output: one line per evaluation (every --eval-every steps and after the
last), `step N/S  train loss X  val loss Y  tokens/s Z`, where train loss
is the mean of the training losses since the previous evaluation and
tokens/s counts training tokens over training time only (evaluations are
not timed); the last line is `val loss: X.XXXX`. --bench prints one JSON
line instead (3 untimed warm-up steps, then --bench-steps timed steps)."""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/games/fortunes"
VOCABULARY = 256
WARMUP_STEPS = 100
CLIP_NORM = 1.0
BENCH_WARMUP_STEPS = 3

# Per-model defaults of the spec: sequence length, batch, learning rate.
CONFIGS = {
    "gpt": {"seq": 128, "batch": 32, "lr": 3e-3},
    "lstm": {"seq": 64, "batch": 32, "lr": 2e-3},
}


# ---- data -----------------------------------------------------------------------
def load_text(directory):
    """The corpus as one uint8 array, or None if there is none."""
    if not os.path.isdir(directory):
        return None
    # sorted() on bytes names is strcmp order, whatever the locale.
    names = sorted(name for name in os.listdir(os.fsencode(directory))
                   if not name.endswith((b".dat", b".u8")))
    chunks = []
    for name in names:
        path = os.path.join(os.fsencode(directory), name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                chunks.append(f.read())
    text = b"".join(chunks)
    return np.frombuffer(text, dtype=np.uint8) if text else None


def split_text(text):
    split = math.floor(0.9 * len(text))
    return text[:split], text[split:]


def random_batch(train, batch, seq, generator):
    """batch windows of seq+1 bytes at uniform starts in [0, len - seq - 1]:
    inputs are the first seq bytes, targets the last seq."""
    starts = generator.integers(0, len(train) - seq, size=batch)   # high is exclusive
    windows = np.stack([train[s:s + seq + 1] for s in starts]).astype(np.int64)
    windows = torch.from_numpy(windows)
    return windows[:, :-1], windows[:, 1:]


def validation_windows(val, seq):
    """Non-overlapping windows at 0, seq, 2 seq, ... that have a target for
    every position, as [count, seq + 1]."""
    count = (len(val) - 1) // seq
    return torch.from_numpy(val[:count * seq + 1].astype(np.int64)).unfold(0, seq + 1, seq)


# ---- models ---------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def split_heads(self, x):
        """[B, T, C] -> [B, heads, T, C / heads]"""
        B, T, C = x.shape
        return x.view(B, T, self.heads, C // self.heads).transpose(1, 2)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.split_heads(f(x)) for f in (self.query, self.key, self.value))
        # PyTorch 1.13 has no fused attention: softmax(q k^T / sqrt(D) + causal mask) v.
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(C // self.heads))
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        weights = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)   # heads back together
        return self.out(y)


class MLP(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(width, 4 * width)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, seq, width=128, layers=4, heads=4):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCABULARY, width)
        self.position_embedding = nn.Embedding(seq, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, VOCABULARY)

    def forward(self, tokens):
        """tokens [B, T] -> logits [B, T, 256]"""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class LSTM(nn.Module):
    def __init__(self, width=64, hidden=256, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, width)
        self.lstm = nn.LSTM(width, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, VOCABULARY)

    def forward(self, tokens):
        """tokens [B, T] -> logits [B, T, 256]; zero initial state."""
        hidden, _ = self.lstm(self.embedding(tokens))
        return self.head(hidden)


def build_model(name, seq):
    return GPT(seq) if name == "gpt" else LSTM()


def build_optimizer(name, model, lr):
    if name == "lstm":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    # Decay the matrices (Linear weights, both embeddings), not biases or LayerNorm.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-8)


# ---- training -------------------------------------------------------------------
def learning_rate(step, steps, lr):
    """PyTorch's SequentialLR([LinearLR(start_factor=1/W, total_iters=W),
    CosineAnnealingLR(T_max=S-1-W)], milestones=[W]) in closed form, as
    nabla's nb_lr_with_warmup(nb_lr_cosine(...)): a linear warm-up over
    the first W steps, then a cosine to 0 at step S-1."""
    if step < WARMUP_STEPS:
        start = 1.0 / WARMUP_STEPS
        return lr * (start + (1.0 - start) * step / WARMUP_STEPS)
    progress = (step - WARMUP_STEPS) / max(1, steps - 1 - WARMUP_STEPS)
    return lr * 0.5 * (1 + math.cos(math.pi * progress))


def loss_of(model, inputs, targets, reduction="mean"):
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1), reduction=reduction)


def train_step(model, optimizer, inputs, targets, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = loss_of(model, inputs, targets)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def validation_loss(model, windows, batch):
    """Mean cross-entropy over every position of every validation window."""
    total, positions = 0.0, 0
    for first in range(0, len(windows), batch):
        chunk = windows[first:first + batch]
        total += loss_of(model, chunk[:, :-1], chunk[:, 1:], reduction="sum").item()
        positions += chunk[:, 1:].numel()
    return total / positions


def train(args, model, optimizer, train_text, val_windows, generator):
    tokens_per_step = args.batch * args.seq
    losses, train_seconds, loss_value = [], 0.0, None
    for step in range(args.steps):
        inputs, targets = random_batch(train_text, args.batch, args.seq, generator)
        start = time.perf_counter()
        losses.append(train_step(model, optimizer, inputs, targets,
                                 learning_rate(step, args.steps, args.lr)))
        train_seconds += time.perf_counter() - start
        done = step + 1
        if done == args.steps or (args.eval_every > 0 and done % args.eval_every == 0):
            loss_value = validation_loss(model, val_windows, args.batch)
            print(f"step {done}/{args.steps}  train loss {sum(losses) / len(losses):.4f}  "
                  f"val loss {loss_value:.4f}  "
                  f"tokens/s {tokens_per_step * len(losses) / train_seconds:.0f}", flush=True)
            losses, train_seconds = [], 0.0
    return loss_value


def bench(args, model, optimizer, train_text, generator):
    """Times training steps (batch sampling included) at the schedule's
    learning rates for a run of warm-up + timed steps."""
    total = BENCH_WARMUP_STEPS + args.bench_steps

    def step(i):
        inputs, targets = random_batch(train_text, args.batch, args.seq, generator)
        train_step(model, optimizer, inputs, targets, learning_rate(i, total, args.lr))

    for i in range(BENCH_WARMUP_STEPS):
        step(i)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(BENCH_WARMUP_STEPS, total):
        step(i)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"bench": "train", "model": args.model, "threads": args.threads,
                      "batch": args.batch, "seq": args.seq, "steps": args.bench_steps,
                      "tokens_per_s": args.batch * args.seq * args.bench_steps / seconds,
                      "ms_per_step": 1e3 * seconds / args.bench_steps,
                      "cpu_ms_per_step": 1e3 * cpu / args.bench_steps,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(CONFIGS), default="gpt")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, help="windows per step (gpt 32, lstm 32)")
    parser.add_argument("--lr", type=float, help="peak learning rate (gpt 3e-3, lstm 2e-3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--eval-every", type=int, default=500, help="0: only after the last step")
    parser.add_argument("--bench", action="store_true", help="time training steps, print JSON")
    parser.add_argument("--bench-steps", type=int, default=20)
    args = parser.parse_args()
    config = CONFIGS[args.model]
    args.seq = config["seq"]
    args.batch = args.batch or config["batch"]
    args.lr = args.lr if args.lr is not None else config["lr"]
    if args.steps < 1 or args.batch < 1 or args.bench_steps < 1 or args.eval_every < 0:
        parser.error("--steps, --batch and --bench-steps must be positive, --eval-every >= 0")
    return args


def main():
    args = parse_args()
    text = load_text(args.data)
    if text is None:
        sys.stderr.write(f"charlm: no text in {args.data} (install the Debian package "
                         f"`fortunes`, or pass --data DIR)\n")
        return 1
    train_text, val_text = split_text(text)
    if len(train_text) < args.seq + 1 or len(val_text) < args.seq + 1:
        sys.stderr.write(f"charlm: {len(text)} bytes in {args.data} are too few for "
                         f"windows of {args.seq + 1}\n")
        return 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model(args.model, args.seq)
    optimizer = build_optimizer(args.model, model, args.lr)
    generator = np.random.default_rng(args.seed)
    if args.bench:
        bench(args, model, optimizer, train_text, generator)
        return 0
    loss_value = train(args, model, optimizer, train_text,
                       validation_windows(val_text, args.seq), generator)
    print(f"val loss: {loss_value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
