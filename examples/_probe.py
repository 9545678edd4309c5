import time, warnings
t=time.perf_counter()
import graphxfer as gx
from graphxfer import datasets
from privacy import PrivacyConfig
import torch; print("threads", torch.get_num_threads())
heart = datasets.load_heart_disease()
src = heart.select_groups(["cleveland","hungarian"])
t=time.perf_counter()
enc = gx.pretrain(src, "mlp", "supervised+masked", epochs=40, random_state=0, progress=False)
print("pretrain mlp", time.perf_counter()-t)
t=time.perf_counter()
enc2 = gx.pretrain(src, "ft-transformer", "supervised", epochs=10, random_state=0, progress=False)
print("pretrain ftt 10 sup", time.perf_counter()-t)
for e in (enc, enc2):
    tgt = heart.select_groups("va")
    tr, te = tgt.split(test_size=0.3, random_state=0)
    t=time.perf_counter()
    clf = gx.TransferClassifier(e, strategy="lp-ft", privacy=PrivacyConfig(epsilon=3.0, epochs=20, batch_size=32, learning_rate=1e-2), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(tr)
    print("fit", time.perf_counter()-t)
    from sklearn.metrics import roc_auc_score
    print("auc", roc_auc_score(te.y, clf.predict_proba(te)[:,1]))
    t=time.perf_counter()
    p = gx.report(clf, te, "/work/main/examples/_r.html", progress=False, n_global=60)
    print("report", time.perf_counter()-t)
