import time, torch, numpy as np
torch.set_num_threads(2)
from graphxfer.datasets import make_multisite
from graphxfer import Cohort
t=time.perf_counter(); c = make_multisite(n_sites=3, n_per_site=100_000, random_state=0); print("gen", time.perf_counter()-t)
df = c.data.iloc[:65536]
t=time.perf_counter(); c2 = Cohort(df, c.schema, all_missing="keep"); print("cohort 65k", time.perf_counter()-t)
from tabular import Featurizer
t=time.perf_counter(); fz = Featurizer().fit(c.X, c.schema.features); print("fit 300k", time.perf_counter()-t)
t=time.perf_counter(); b = fz.transform(c2.X); print("transform 65k", time.perf_counter()-t)
print(c.data.dtypes)
import tabular
for enc in ["mlp","ft-transformer","tabnet"]:
    t=time.perf_counter()
    e = tabular.pretrain(c.X.iloc[:100000], columns=c.schema.features, encoder=enc, objective="masked", epochs=1, batch_size=256, validation_fraction=0.0, progress=False, device="cpu", random_state=0)
    dt = time.perf_counter()-t
    print(enc, dt, e.history_[0]["seconds"], 100000/e.history_[0]["seconds"])
