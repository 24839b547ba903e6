"""Does unstructured weight sparsity pay on this CPU? Each 3×3 conv shape of the CIFAR ResNet-18 at batch 32:
oneDNN's dense conv against im2col (F.unfold) + a CSR sparse × dense matmul at s = 0.75 / 0.90 / 0.95.
Prints milliseconds per forward, measured in this run. (Only the forward: if it does not pay there, the
backward, which needs two more products, will not either.)

    python bench/sparse_conv_cpu.py --threads 2
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn.functional as F


def ms(fn, repeat: int = 5) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    print(f"{args.threads} threads, batch {args.batch}; ms per forward (sparse = unfold + CSR matmul)")
    for cin, hw in ((64, 32), (128, 16), (256, 8), (512, 4)):
        x = torch.randn(args.batch, cin, hw, hw)
        w = torch.randn(cin, cin, 3, 3)
        xl = x.contiguous(memory_format=torch.channels_last)
        dense = ms(lambda xl=xl, w=w: F.conv2d(xl, w, padding=1))

        def im2col(x: torch.Tensor = x, cin: int = cin) -> torch.Tensor:
            return F.unfold(x, 3, padding=1).transpose(0, 1).reshape(cin * 9, -1).contiguous()

        cols = im2col()
        unfold = ms(im2col)
        parts = [f"{cin}->{cin} @ {hw}x{hw}: dense conv {dense:6.1f}"]
        for s in (0.75, 0.90, 0.95):
            wm = w.reshape(cin, -1).clone()
            wm[torch.rand_like(wm) < s] = 0
            csr = wm.to_sparse_csr()
            sparse = unfold + ms(lambda csr=csr, cols=cols: csr @ cols)
            parts.append(f"s={s:.2f} sparse {sparse:6.1f} ({dense / sparse:4.2f}x)")
        print(" | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
