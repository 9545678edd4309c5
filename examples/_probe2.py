import time, warnings
warnings.simplefilter("ignore")
import numpy as np
import graphxfer as gx
from graphxfer import datasets, graphs
from privacy import PrivacyConfig
from sklearn.metrics import roc_auc_score
T=time.perf_counter
d = datasets.load_diabetes_130()
er = d.select_groups("Emergency Room")
rng = np.random.default_rng(0)
src = er.subset(np.sort(rng.choice(len(er), 12000, replace=False)))
print("src", len(src), src.n_persons)
t=T()
g = graphs.project_code_graph(src, ["diag_1","diag_2","diag_3"], max_degree=10, random_state=0)
print("graph", g, T()-t)
import cProfile, pstats
t=T()
pr = cProfile.Profile(); pr.enable()
enc = gx.pretrain(src, "graphsage", "supervised", graph=g, knn_method="exact", epochs=3, fanout=(5,5), batch_size=1024, random_state=0, progress=False)
pr.disable()
print("pretrain 3 ep", T()-t, enc.history)
pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
tgt = d.select_groups("Transfer from a hospital")
tr, te = tgt.split(test_size=tgt.n_persons-400, random_state=0)
clf = gx.TransferClassifier(enc, strategy="lp-ft", privacy=PrivacyConfig(epsilon=3.0, epochs=10, batch_size=64, learning_rate=1e-2), random_state=0)
t=T()
clf.fit(tr)
print("dp fit", T()-t)
t=T()
p = clf.predict_proba(te)[:,1]
print("predict", T()-t, roc_auc_score(te.y, p))
t=T()
sub = te.subset(np.arange(10))
ex = gx.explain(clf, sub, n_background=20, max_evals=2*len(clf.feature_names_in_)+1, random_state=0, progress=False)
print("explain 10", T()-t)
