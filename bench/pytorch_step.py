"""PyTorch reference of the classifier's training step (optional; no test needs it).

    /usr/bin/python3 bench/pytorch_step.py [--experts 16,64,400] [--steps 20] [--warmup 3]

(Debian's interpreter: the python3-torch package installs into it.)

The same model and recipe as `deno task bench:step`'s classifier: batch 200
Fashion-MNIST training images (a fixed seeded draw from moge's data cache,
$MOGE_CACHE_DIR or .cache/moge, else random pixels), router without bias,
softmax then top-1 with noise std 1/E, capacity k*floor(C_f*ceil(N/E)) with
C_f 4 and batch-prioritized routing, experts 784 -> 64 -> 784 with GELU (tanh
form), linear head, cross-entropy + 0.01 * V-MoE load-balancing loss
(importance on the clean softmax, load from the noisy logits), + lambda *
mean R(z) for MoGE (3x3 Gaussian, sigma 1.5, on the r x c map of the
experts), AdamW (learning rate 0, as the TypeScript benchmark: the weights
stay put so every step does the same work). One thread. Prints the median
step time per E and mode.

Install: apt-get install -y python3-torch libopenblas0-pthread
"""

import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def load_batch(n=200, seed=11):
    cache = os.environ.get("MOGE_CACHE_DIR", ".cache/moge")
    path = os.path.join(cache, "fashion-mnist-v1.bin")
    g = torch.Generator().manual_seed(seed)
    if not os.path.exists(path):
        return torch.rand(n, 784, generator=g), torch.arange(n) % 10, "random"
    data = open(path, "rb").read()
    (h,) = struct.unpack_from("<I", data, 8)
    header = json.loads(data[12:12 + h])
    start = 12 + h
    n_train = header["nTrain"]
    images = torch.frombuffer(bytearray(data[start:start + n_train * 784]), dtype=torch.uint8)
    labels = torch.frombuffer(
        bytearray(data[start + n_train * 784:start + n_train * 785]), dtype=torch.uint8)
    idx = torch.randperm(n_train, generator=g)[:n]
    x = images.view(n_train, 784)[idx].float() / 255
    return x, labels[idx].long(), "fashion-mnist"


def layout(E):
    r = int(math.isqrt(E))
    while E % r:
        r -= 1
    return r, E // r


def gaussian(h=3, sigma=1.5):
    ax = torch.arange(h, dtype=torch.float32) - (h - 1) / 2
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).view(1, 1, h, h)


class Model(torch.nn.Module):
    def __init__(self, E, d=784, f=64, classes=10):
        super().__init__()
        self.E = E
        self.router = torch.nn.Linear(d, E, bias=False)
        self.w1 = torch.nn.ModuleList(torch.nn.Linear(d, f) for _ in range(E))
        self.w2 = torch.nn.ModuleList(torch.nn.Linear(f, d) for _ in range(E))
        self.head = torch.nn.Linear(d, classes)
        self.filt = gaussian()

    def forward(self, x, y, lam):
        N, E = x.shape[0], self.E
        logits = self.router(x)
        std = 1 / E
        noisy = logits + torch.randn_like(logits) * std
        probs = F.softmax(noisy, dim=1)
        gate, expert = probs.max(dim=1)
        cap = 1 * math.floor(4 * math.ceil(N / E))
        order = torch.argsort(gate.detach(), descending=True)
        keep = torch.zeros(N, dtype=torch.bool)
        counts = torch.zeros(E, dtype=torch.long)
        for n in order.tolist():  # batch-prioritized capacity
            e = int(expert[n])
            if counts[e] < cap:
                counts[e] += 1
                keep[n] = True
        out = torch.zeros_like(x)
        for e in torch.unique(expert[keep]).tolist():
            rows = torch.nonzero(keep & (expert == e)).squeeze(1)
            h = F.gelu(self.w1[e](x[rows]), approximate="tanh")
            out.index_add_(0, rows, self.w2[e](h) * gate[rows, None])
        ce = F.cross_entropy(self.head(out), y)
        z = F.softmax(logits, dim=1)

        def cv2(v):
            return v.var(unbiased=False) / (v.mean() ** 2 + 1e-10)

        kth = noisy.gather(1, expert[:, None])
        p_stay = 1 - torch.distributions.Normal(0.0, 1.0).cdf((kth - logits) / std)
        aux = 0.5 * (cv2(z.sum(0)) + cv2(p_stay.sum(0)))
        loss = ce + 0.01 * aux
        if lam > 0:
            r, c = layout(E)
            sq = F.conv2d((z ** 2).view(N, 1, r, c), self.filt, padding=1)
            loss = loss + lam * torch.sqrt(sq + 1e-8).sum(dim=(1, 2, 3)).mean()
        return loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--experts", default="16,64,400")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    x, y, source = load_batch()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch: {source}")
    for E in [int(v) for v in a.experts.split(",")]:
        torch.manual_seed(7)
        model = Model(E)
        opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.05)
        times = {"moe": [], "moge": []}
        for i in range(a.warmup + a.steps):
            for mode in ("moe", "moge"):  # alternate, so load hits both alike
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = model(x, y, 4e-3 if mode == "moge" else 0.0)
                loss.backward()
                opt.step()
                if i >= a.warmup:
                    times[mode].append((time.perf_counter() - t0) * 1000)
        for mode, ts in times.items():
            ts.sort()
            print(f"E={E} {mode}: median {ts[len(ts) // 2]:.1f} ms over {len(ts)} steps")


if __name__ == "__main__":
    main()
