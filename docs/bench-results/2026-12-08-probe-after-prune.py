import sys, time, copy
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, "/work/main/bench")
from fashion_mnist import load
from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.sparcl.masks import MaskSet, shrink, importance
torch.set_num_threads(2)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 10
S = 0.75
rng = np.random.default_rng(seed)
xtr, ytr = load("train"); xte, yte = load("test")
tr = np.concatenate([rng.permutation(np.flatnonzero(ytr == c))[:100] for c in range(10)])
te = np.concatenate([rng.permutation(np.flatnonzero(yte == c))[:200] for c in range(10)])
bb = create_backbone("efficientnet_lite0")
mean = torch.tensor(bb.mean).view(1,3,1,1); std = torch.tensor(bb.std).view(1,3,1,1)
def prep(x):
    t = torch.from_numpy(x).float()[:, None] / 255.0
    t = F.interpolate(t, size=96, mode="bilinear", align_corners=False).repeat(1,3,1,1)
    return (t - mean) / std
Xtr, Xte = prep(xtr[tr]), prep(xte[te])
Ytr, Yte = torch.from_numpy(ytr[tr]).long(), torch.from_numpy(yte[te]).long()

@torch.no_grad()
def feats(model, X):
    model.eval()
    return torch.cat([model(X[i:i+250]) for i in range(0, len(X), 250)])

@torch.no_grad()
def recal(model, X):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats(); m.momentum = None
    model.train()
    for i in range(0, len(X), 100): model(X[i:i+100])
    model.eval()

def probe(Ftr, Fte):
    mu, sd = Ftr.mean(0), Ftr.std(0) + 1e-6
    a, b = (Ftr - mu) / sd, (Fte - mu) / sd
    best = 0
    for wd in (1e-3, 1e-2):
        lin = torch.nn.Linear(a.shape[1], 10)
        opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")
        def closure():
            opt.zero_grad(); l = F.cross_entropy(lin(a), Ytr) + wd * lin.weight.pow(2).sum(); l.backward(); return l
        opt.step(closure)
        acc = (lin(b).argmax(1) == Yte).float().mean().item()
        best = max(best, acc); print(f"    wd={wd}: {acc:.4f}", flush=True)
    return best

@torch.no_grad()
def act_norms(model, layers, X):
    norms = {n: 0 for n in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, n=n: norms.__setitem__(n, norms[n] + inp[0].float().pow(2).sum((0,2,3))))
             for n, m in layers.items()]
    model.eval()
    for i in range(0, len(X), 100): model(X[i:i+100])
    for h in hooks: h.remove()
    return {n: v.sqrt() for n, v in norms.items()}

def run(name, prune):
    model = copy.deepcopy(bb.model)
    prune(model)
    for rc in (False, True):
        if rc: recal(model, Xtr)
        t = time.time(); acc = probe(feats(model, Xtr), feats(model, Xte))
        print(f"{name} recal={rc}: {acc:.4f}", flush=True)

def magnitude(model):
    MaskSet(model).prune_to(S)

def wanda(model, per_output=False):
    ms = MaskSet(model)
    norms = act_norms(model, ms.layers, Xtr)
    for n, m in ms.layers.items():
        imp = m.weight.detach().abs() * norms[n].view(1, -1, 1, 1)
        if per_output:
            k = int(S * imp[0].numel())
            flat = imp.flatten(1)
            thr = flat.kthvalue(k, dim=1).values.view(-1, 1, 1, 1)
            ms.masks[n] = imp > thr
        else:
            ms.masks[n] = shrink(ms.masks[n], imp, S)
    ms.apply_to_weights()

run("dense", lambda m: None)
run("magnitude", magnitude)
run("wanda-layer", wanda)
run("wanda-per-output", lambda m: wanda(m, True))
