"""Peer side of benches/embed.rs: sentence-transformers embeddings and scikit-learn KMeans on
the same inputs. Usage: st_embed.py MODEL_DIR SENTENCES.txt VECTORS.f32 K OUT_PREFIX"""
import sys, time, json
import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sklearn.cluster import KMeans

model_dir, sentences_path, vectors_path, k, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(2)
sentences = open(sentences_path, encoding="utf-8").read().splitlines()
m = SentenceTransformer(model_dir, device="cpu")
m.max_seq_length = 256
m.encode(sentences[:64], batch_size=32)  # warm-up
st_secs = float("inf")
for _ in range(3):  # best of three, as on the Rust side (the machine is shared)
    t = time.perf_counter()
    emb = m.encode(sentences, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    st_secs = min(st_secs, time.perf_counter() - t)
emb.astype("<f4").tofile(out + ".st.f32")
x = np.fromfile(vectors_path, dtype="<f4").reshape(-1, emb.shape[1])
t = time.perf_counter()
km = KMeans(n_clusters=k, n_init=1, random_state=0, max_iter=100, tol=1e-6).fit(x)
km_secs = time.perf_counter() - t
json.dump({"st_secs": st_secs, "n": len(sentences), "km_secs": km_secs, "km_iter": int(km.n_iter_)}, open(out + ".json", "w"))
