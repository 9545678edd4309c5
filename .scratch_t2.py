import time, torch, numpy as np
torch.set_num_threads(2)
from graphxfer.datasets import make_multisite
c = make_multisite(n_sites=3, n_per_site=10_000, random_state=0)
from tabular import Featurizer
from tabular.encoders import ResidualMLP
from tabular.objectives import make_objective
fz = Featurizer().fit(c.X, c.schema.features)
b = fz.transform(c.X.iloc[:256])
net = ResidualMLP.from_featurizer(fz)
for objname in ["masked","supervised"]:
    obj = make_objective(objname, net, fz, mask_rate=0.3)
    opt = torch.optim.AdamW([*net.parameters(), *obj.parameters()])
    g = torch.Generator().manual_seed(0)
    t = b.to_tensors()
    y = torch.zeros(256)
    for i in range(3):
        loss = obj.loss(net, t, y, g); opt.zero_grad(); loss.backward(); opt.step()
    t0=time.perf_counter()
    for i in range(50):
        loss = obj.loss(net, t, y, g); opt.zero_grad(); loss.backward(); opt.step()
    print(objname, (time.perf_counter()-t0)/50*1000, "ms/step")
with torch.no_grad():
    t0=time.perf_counter()
    for i in range(50): net(*t)
    print("fwd", (time.perf_counter()-t0)/50*1000)
print(net)
