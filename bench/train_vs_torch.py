#!/usr/bin/env python3
"""Training-step time of pare against PyTorch CPU, measured in the same run on this machine.

Both frameworks train the same architectures (LeNet-5 of Caffe/Han et al. at batch 64 and the
CIFAR ResNet-20 with 1x1 projection shortcuts at batch 128, as in pare's zoo) on random data
with SGD + momentum, with 2 threads. Each case alternates pare and PyTorch rounds and reports
the median step time of each and their ratio.

Usage: python3 bench/train_vs_torch.py [--rounds 3] [--steps 30] [--threads 2]
Needs: torch (pip install torch), and builds pare's `train_step` example in release mode.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pare_steps(model, batch, steps, threads):
    exe = os.path.join(ROOT, "target", "release", "examples", "train_step")
    out = subprocess.run([exe, f"{model}:{batch}", "--steps", str(steps), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"]


def torch_model(name):
    import torch.nn as nn
    if name == "lenet-5":
        return nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)), (1, 28, 28)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.sc = None
            if stride != 1 or cin != cout:
                self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return self.relu(y + (x if self.sc is None else self.sc(x)))

    n = {"resnet-20": 3, "resnet-56": 9}[name]
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for s, planes in enumerate([16, 32, 64]):
        for i in range(n):
            layers.append(Block(cin, planes, 2 if s > 0 and i == 0 else 1))
            cin = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers), (3, 32, 32)


def torch_steps(name, batch, steps):
    import torch
    model, shape = torch_model(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(steps + 5):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= 5:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    subprocess.run(["cargo", "build", "--release", "--example", "train_step"], cwd=ROOT, check=True)
    print(f"torch {torch.__version__}, {a.threads} threads, {a.rounds} rounds x {a.steps} steps")
    print(f"{'case':<16} {'pare ms':>9} {'torch ms':>9} {'pare/torch':>11}")
    for model, batch in [("lenet-5", 64), ("resnet-20", 128)]:
        p, t = [], []
        for _ in range(a.rounds):
            p.append(pare_steps(model, batch, a.steps, a.threads))
            t.append(torch_steps(model, batch, a.steps))
        pm, tm = statistics.median(p), statistics.median(t)
        print(f"{model + ' b' + str(batch):<16} {pm:9.2f} {tm:9.2f} {pm / tm:10.2f}x")


if __name__ == "__main__":
    sys.exit(main())
