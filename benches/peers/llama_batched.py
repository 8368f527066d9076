# Batched greedy decoding with llama.cpp's C API (as in llama.cpp's examples/batched): the
# prompts go in waves of B sequences; each wave is prefilled in one llama_decode call, then
# decoded one token per sequence per call until every sequence has N new tokens.
import sys, json, time, ctypes
import numpy as np
import llama_cpp as L

model_path, prompts_path, B, N = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
prompts = [json.loads(l) for l in open(prompts_path)]
L.llama_backend_init()
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(model_path.encode(), mp)
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)

def tokenize(text):
    b = text.encode()
    buf = (L.llama_token * (len(b) + 16))()
    n = L.llama_tokenize(vocab, b, len(b), buf, len(buf), True, False)
    return list(buf[:n])

toks = [tokenize(p) for p in prompts]
cp = L.llama_context_default_params()
cp.n_ctx = max(len(t) for t in toks) * B + N * B + 64
cp.n_batch = max(sum(len(t) for t in toks), 512)
cp.n_ubatch = cp.n_batch
cp.n_seq_max = B
cp.n_threads = 2
cp.n_threads_batch = 2
cp.kv_unified = True
ctx = L.llama_init_from_model(model, cp)
batch = L.llama_batch_init(cp.n_batch, 0, B)

def add(tok, pos, seq, logits):
    i = batch.n_tokens
    batch.token[i] = tok; batch.pos[i] = pos; batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq; batch.logits[i] = logits
    batch.n_tokens += 1

outs = []
generated = 0
t0 = time.perf_counter()
for w in range(0, len(toks), B):
    wave = toks[w:w + B]
    L.llama_memory_clear(L.llama_get_memory(ctx), True)
    batch.n_tokens = 0
    last = []
    for s, t in enumerate(wave):
        for j, tok in enumerate(t):
            add(tok, j, s, j == len(t) - 1)
        last.append(batch.n_tokens - 1)
    assert L.llama_decode(ctx, batch) == 0
    pos = [len(t) for t in wave]
    gen = [[] for _ in wave]
    for step in range(N):
        nxt = []
        for s in range(len(wave)):
            p = L.llama_get_logits_ith(ctx, last[s])
            logits = np.ctypeslib.as_array(p, shape=(n_vocab,))
            nxt.append(int(logits.argmax()))
        batch.n_tokens = 0
        for s, tok in enumerate(nxt):
            gen[s].append(tok)
            add(tok, pos[s], s, True)
            pos[s] += 1
            last[s] = s
        generated += len(wave)
        if step + 1 < N:
            assert L.llama_decode(ctx, batch) == 0
    outs.extend(gen)
dt = time.perf_counter() - t0
print(json.dumps({"tokens": generated, "seconds": dt, "first": outs[0][:8]}))
