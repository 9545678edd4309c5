import time, warnings
warnings.simplefilter("ignore")
import numpy as np
import torch, sys
torch.set_num_threads(int(sys.argv[1]))
import graphxfer as gx
from graphxfer import datasets, graphs
from privacy import PrivacyConfig
T=time.perf_counter
d = datasets.load_diabetes_130()
er = d.select_groups("Emergency Room")
rng = np.random.default_rng(0)
src = er.subset(np.sort(rng.choice(len(er), 3000, replace=False)))
enc = gx.pretrain(src, "graphsage", "supervised", knn_method="exact", epochs=1, random_state=0, progress=False)
tgt = d.select_groups("Transfer from a hospital")
tr, te = tgt.split(test_size=tgt.n_persons-400, random_state=0)
clf = gx.TransferClassifier(enc, strategy="linear-probe", epochs=1, random_state=0)
clf.fit(tr)
import cProfile, pstats
X = te.X[list(clf.feature_names_in_)]
pr = cProfile.Profile(); pr.enable()
t=T(); clf.predict_proba(X); print("predict X", T()-t)
pr.disable()
pstats.Stats(pr).sort_stats("cumulative").print_stats(0)
