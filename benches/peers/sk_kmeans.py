"""Peer side of benches/kmeans.rs: scikit-learn's KMeans or MiniBatchKMeans on the same vectors.
Usage: sk_kmeans.py VECTORS.f32 DIM K ALGORITHM MAX_ITER OUT.json, ALGORITHM = kmeans | minibatch,
optionally with "-random" (init="random" instead of scikit-learn's greedy k-means++, whose
k x (2 + ln k) passes over the points take most of the time at k = 32,000).
KMeans: one init, Lloyd, tol=0 so that it runs MAX_ITER iterations like our side;
MiniBatchKMeans: its defaults (batch 1024, early stop) besides one init and MAX_ITER epochs.
Reports wall time, iterations, peak RSS above the loaded vectors and the spherical objective (mean
cosine of each point to its cluster's normalized mean), the figure our side reports."""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits


def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


path, dim, k, algorithm, max_iter, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
x = np.fromfile(path, dtype="<f4").reshape(-1, dim)
base = rss_kb("VmRSS")
with threadpool_limits(limits=2):
    from sklearn.cluster import KMeans, MiniBatchKMeans
    init = "random" if algorithm.endswith("-random") else "k-means++"
    if algorithm.startswith("kmeans"):
        model = KMeans(n_clusters=k, init=init, n_init=1, random_state=0, max_iter=max_iter, tol=0.0, algorithm="lloyd")
    else:
        model = MiniBatchKMeans(n_clusters=k, init=init, n_init=1, random_state=0, max_iter=max_iter)
    t = time.perf_counter()
    model.fit(x)
    secs = time.perf_counter() - t
peak = rss_kb("VmHWM")
labels = model.labels_
sums = np.zeros((k, dim), dtype=np.float64)
np.add.at(sums, labels, x)
norms = np.linalg.norm(sums, axis=1)
norms[norms == 0] = 1
centres = (sums / norms[:, None]).astype(np.float32)
similarity = float(np.mean(np.einsum("ij,ij->i", x, centres[labels])))
json.dump({"secs": secs, "iterations": int(model.n_iter_), "steps": int(getattr(model, "n_steps_", 0)),
           "peak_mb": (peak - base) / 1024, "mean_similarity": similarity,
           "clusters_used": int(len(np.unique(labels)))}, open(out, "w"))
