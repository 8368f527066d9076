//! The CPU engine behind `embed`: a BERT encoder forward pass over unpadded token rows.
//!
//! candle's `BertModel` pads every batch to its longest text, runs each small product through
//! its shared thread pool and spends a sixth of the time in a scalar `erf`; on two cores that
//! made it 3x slower than sentence-transformers. This engine loads the same weights through
//! candle's `VarBuilder` and computes the same function with three changes that do not change
//! the result: the texts of a batch are stacked without padding (attention stays within each
//! text, which is what the padding mask does), each linear layer is one single-threaded
//! `gemm` call (the crate candle's CPU matmul uses, with its AVX-512 kernels enabled) and
//! parallelism comes from whole batches on separate threads, and GELU uses a rational `erf`
//! approximation accurate to ~1e-7 that vectorizes. `Engine::Candle` keeps candle's model
//! (the reference the tests compare against, and the path for other devices).
//!
//! Memory per thread while a batch runs: `tokens x (3 hidden + intermediate + 3 hidden)` f32s
//! (all-MiniLM-L6-v2, 32 texts of 12 tokens: 2.6 MB); weights are held once, transposed.

use candle_core::{DType, Result};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// A linear layer `y = x W^T + b`, with `W^T` stored row-major as `(inputs, outputs)`.
struct Linear {
    w_t: Vec<f32>,
    b: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    /// Several layers with the same input stacked into one (the fused query/key/value product).
    fn load(vbs: &[VarBuilder], inputs: usize, outputs: usize) -> Result<Linear> {
        let total = outputs * vbs.len();
        let mut w_t = vec![0f32; inputs * total];
        let mut b = Vec::with_capacity(total);
        for (part, vb) in vbs.iter().enumerate() {
            let w = vb.get((outputs, inputs), "weight")?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (o, row) in w.iter().enumerate() {
                for (i, v) in row.iter().enumerate() {
                    w_t[i * total + part * outputs + o] = *v;
                }
            }
            b.extend(vb.get(outputs, "bias")?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        }
        Ok(Linear { w_t, b, inputs, outputs: total })
    }

    /// `out = x W^T + b` for `rows` rows of `x`.
    fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let (k, n) = (self.inputs, self.outputs);
        assert!(x.len() >= rows * k && out.len() >= rows * n);
        for row in out[..rows * n].chunks_exact_mut(n) {
            row.copy_from_slice(&self.b);
        }
        // SAFETY: the asserts above keep every index gemm touches inside `x`, `w_t` (k x n,
        // checked at load) and `out`; the three buffers do not overlap.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.w_t.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}

struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
        // Old BERT checkpoints name the parameters gamma and beta.
        let (w, b) = if vb.contains_tensor("weight") { ("weight", "bias") } else { ("gamma", "beta") };
        Ok(LayerNorm {
            w: vb.get(size, w)?.to_dtype(DType::F32)?.to_vec1()?,
            b: vb.get(size, b)?.to_dtype(DType::F32)?.to_vec1()?,
            eps: eps as f32,
        })
    }

    /// Normalizes each row of `x` in place.
    #[inline(always)]
    fn forward(&self, x: &mut [f32]) {
        let n = self.w.len();
        for row in x.chunks_exact_mut(n) {
            let mean = lanes_sum(row, |v| v) / n as f32;
            let var = lanes_sum(row, |v| (v - mean) * (v - mean)) / n as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// Reusable buffers of one thread.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
    scores: Vec<f32>,
}

pub struct CpuBert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    act: HiddenAct,
    vocab: usize,
    positions: usize,
    types: usize,
}

impl CpuBert {
    /// The weights of a BERT checkpoint (optionally under a `bert.` or `<model_type>.` prefix).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<CpuBert> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb.pp(cfg.model_type.as_deref().unwrap_or("bert"))
        };
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || h % cfg.num_attention_heads != 0 {
            candle_core::bail!("hidden size {h} is not a multiple of {} heads", cfg.num_attention_heads);
        }
        let e = vb.pp("embeddings");
        let table = |name: &str, rows: usize| -> Result<Vec<f32>> {
            e.get((rows, h), name)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{l}"));
            let a = vb.pp("attention");
            let s = a.pp("self");
            layers.push(Layer {
                qkv: Linear::load(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
                attn_out: Linear::load(&[a.pp("output").pp("dense")], h, h)?,
                attn_norm: LayerNorm::load(a.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
                inter: Linear::load(&[vb.pp("intermediate").pp("dense")], h, cfg.intermediate_size)?,
                out: Linear::load(&[vb.pp("output").pp("dense")], cfg.intermediate_size, h)?,
                out_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            });
        }
        Ok(CpuBert {
            word: table("word_embeddings.weight", cfg.vocab_size)?,
            position: table("position_embeddings.weight", cfg.max_position_embeddings)?,
            token_type: table("token_type_embeddings.weight", cfg.type_vocab_size)?,
            emb_norm: LayerNorm::load(e.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            layers,
            hidden: h,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
            vocab: cfg.vocab_size,
            positions: cfg.max_position_embeddings,
            types: cfg.type_vocab_size,
        })
    }

    /// Mean-pooled, L2-normalized embeddings of tokenized texts (`(ids, type ids)` each, no
    /// padding). Every text is computed as if alone: the result does not depend on the batch.
    pub fn embed(&self, texts: &[(&[u32], &[u32])], s: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        // The loops between the products (attention, norms, activation) compiled for the
        // widest vector unit the CPU has.
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked above).
                return unsafe { self.embed_avx512(texts, s) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { self.embed_avx2(texts, s) };
            }
        }
        self.embed_portable(texts, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn embed_avx512(&self, texts: &[(&[u32], &[u32])], s: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        self.embed_portable(texts, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn embed_avx2(&self, texts: &[(&[u32], &[u32])], s: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        self.embed_portable(texts, s)
    }

    #[inline(always)]
    fn embed_portable(&self, texts: &[(&[u32], &[u32])], s: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let rows: usize = texts.iter().map(|(ids, _)| ids.len()).sum();
        let inter_size = self.layers.first().map_or(0, |l| l.inter.outputs);
        s.x.resize(rows * h, 0.0);
        s.qkv.resize(rows * 3 * h, 0.0);
        s.ctx.resize(rows * h, 0.0);
        s.tmp.resize(rows * h, 0.0);
        s.inter.resize(rows * inter_size, 0.0);

        let mut row = 0;
        for (ids, types) in texts {
            if types.len() != ids.len() {
                candle_core::bail!("{} token ids but {} type ids", ids.len(), types.len());
            }
            if ids.len() > self.positions {
                candle_core::bail!(
                    "{} tokens, more than the model's {} positions",
                    ids.len(),
                    self.positions
                );
            }
            for (pos, (&id, &ty)) in ids.iter().zip(types.iter()).enumerate() {
                let (id, ty) = (id as usize, ty as usize);
                if id >= self.vocab || ty >= self.types {
                    candle_core::bail!("token {id} (type {ty}) outside the model's vocabulary");
                }
                let x = &mut s.x[row * h..][..h];
                let (w, p, t) = (
                    &self.word[id * h..][..h],
                    &self.position[pos * h..][..h],
                    &self.token_type[ty * h..][..h],
                );
                for i in 0..h {
                    x[i] = w[i] + p[i] + t[i];
                }
                row += 1;
            }
        }
        self.emb_norm.forward(&mut s.x);

        for layer in &self.layers {
            layer.qkv.forward(&s.x, rows, &mut s.qkv);
            self.attention(texts, s);
            layer.attn_out.forward(&s.ctx, rows, &mut s.tmp);
            add_assign(&mut s.tmp, &s.x);
            layer.attn_norm.forward(&mut s.tmp);
            std::mem::swap(&mut s.x, &mut s.tmp);
            layer.inter.forward(&s.x, rows, &mut s.inter);
            activate(self.act, &mut s.inter);
            layer.out.forward(&s.inter, rows, &mut s.tmp);
            add_assign(&mut s.tmp, &s.x);
            layer.out_norm.forward(&mut s.tmp);
            std::mem::swap(&mut s.x, &mut s.tmp);
        }

        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        for (ids, _) in texts {
            let mut mean = vec![0f32; h];
            for r in start..start + ids.len() {
                add_assign(&mut mean, &s.x[r * h..][..h]);
            }
            start += ids.len();
            let count = (ids.len() as f32).max(1e-9);
            mean.iter_mut().for_each(|v| *v /= count);
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|v| *v /= norm);
            out.push(mean);
        }
        Ok(out)
    }

    /// Scaled dot-product attention of every head, within each text, from `s.qkv` into `s.ctx`.
    #[inline(always)]
    fn attention(&self, texts: &[(&[u32], &[u32])], s: &mut Scratch) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut start = 0;
        for (ids, _) in texts {
            let len = ids.len();
            s.scores.resize(len, 0.0);
            for head in 0..self.heads {
                for i in 0..len {
                    let q = &s.qkv[(start + i) * 3 * h + head * d..][..d];
                    let mut max = f32::NEG_INFINITY;
                    for (j, score) in s.scores.iter_mut().enumerate() {
                        let k = &s.qkv[(start + j) * 3 * h + h + head * d..][..d];
                        *score = dot(q, k) * scale;
                        max = max.max(*score);
                    }
                    s.scores.iter_mut().for_each(|v| *v = exp_nonpositive(*v - max));
                    let inv = 1.0 / lanes_sum(&s.scores, |v| v);
                    let ctx = &mut s.ctx[(start + i) * h + head * d..][..d];
                    ctx.fill(0.0);
                    for (j, p) in s.scores.iter().enumerate() {
                        let v = &s.qkv[(start + j) * 3 * h + 2 * h + head * d..][..d];
                        let p = p * inv;
                        for (c, v) in ctx.iter_mut().zip(v) {
                            *c += p * v;
                        }
                    }
                }
            }
            start += len;
        }
    }
}

/// Sum of `f` over `xs` in sixteen lanes, so the loop vectorizes (a single accumulator would
/// pin the order of the additions).
#[inline(always)]
fn lanes_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The hidden activation over a buffer (inlined into the `embed_*` variant the CPU runs, so
/// it is compiled for that vector unit).
#[inline(always)]
fn activate(act: HiddenAct, xs: &mut [f32]) {
    match act {
        HiddenAct::Gelu => {
            xs.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2)))
        }
        HiddenAct::GeluApproximate => xs.iter_mut().for_each(|x| {
            let inner = 0.797_884_6 * (*x + 0.044715 * *x * *x * *x);
            *x = 0.5 * *x * (1.0 + inner.tanh())
        }),
        HiddenAct::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
    }
}

/// `e^x` for `x <= 0` (softmax weights after the maximum is subtracted): Cephes' `expf`
/// (range reduction by ln 2, degree-5 polynomial, relative error ~2e-7), branch-free so it
/// vectorizes where `f32::exp` is a call per element. Below -87 the result is 2^-126 rather
/// than a denormal, which softmax does not notice.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    // Round x / ln 2 to the nearest integer by adding and removing 1.5 * 2^23.
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = r.mul_add(1.987_569_1e-4, 1.398_199_9e-3);
    p = r.mul_add(p, 8.333_452e-3);
    p = r.mul_add(p, 4.166_579_6e-2);
    p = r.mul_add(p, 1.666_666_5e-1);
    p = r.mul_add(p, 5.000_000_1e-1);
    let e = (r * r).mul_add(p, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf` as a rational function of odd/even polynomials on [-4, 4] (outside, erf is +-1 in
/// f32): Eigen's single-precision approximation, maximum error ~1e-7, branch-free so it
/// vectorizes.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_600_1e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329_2e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            worst = worst.max((erf(x) as f64 - libm::erf(x as f64)).abs());
        }
        assert!(worst < 5e-7, "max |erf - libm::erf| = {worst}");
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn exp_nonpositive_matches_f64() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let want = (x as f64).exp();
            worst = worst.max((exp_nonpositive(x) as f64 - want).abs() / want);
        }
        assert!(worst < 3e-7, "max relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e30) > 0.0 && exp_nonpositive(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn activations_match_their_formulas() {
        let xs: Vec<f32> = (-500..500).map(|i| i as f32 / 97.0).collect();
        let exact = |act: HiddenAct, x: f64| match act {
            HiddenAct::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            HiddenAct::GeluApproximate => {
                0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
            }
            HiddenAct::Relu => x.max(0.0),
        };
        for act in [HiddenAct::Gelu, HiddenAct::GeluApproximate, HiddenAct::Relu] {
            let mut got = xs.clone();
            activate(act, &mut got);
            for (x, y) in xs.iter().zip(&got) {
                let want = exact(act, *x as f64);
                assert!(
                    (*y as f64 - want).abs() <= 2e-6 * want.abs().max(1.0),
                    "{act:?}({x}): {y} vs {want}"
                );
            }
        }
    }

    #[test]
    fn dot_is_a_dot_product() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-3);
    }

    #[test]
    fn fused_linear_stacks_layers_and_adds_bias() {
        let dev = candle_core::Device::Cpu;
        let w1: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let w2: Vec<f32> = (0..12).map(|i| i as f32 * -0.5).collect();
        let (b1, b2) = ([1f32, 2.0, 3.0], [0f32, -1.0, 0.5]);
        let mut map = std::collections::HashMap::new();
        map.insert("a.weight".to_string(), Tensor::from_vec(w1.clone(), (3, 4), &dev).unwrap());
        map.insert("a.bias".to_string(), Tensor::new(&b1, &dev).unwrap());
        map.insert("b.weight".to_string(), Tensor::from_vec(w2.clone(), (3, 4), &dev).unwrap());
        map.insert("b.bias".to_string(), Tensor::new(&b2, &dev).unwrap());
        let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
        let lin = Linear::load(&[vb.pp("a"), vb.pp("b")], 4, 3).unwrap();
        let x = [1f32, 0.5, -1.0, 2.0, 0.0, 3.0, 1.0, -2.0];
        let mut out = vec![0f32; 2 * 6];
        lin.forward(&x, 2, &mut out);
        for r in 0..2 {
            for (o, (w, b)) in (0..3).map(|o| (&w1, b1[o])).chain((0..3).map(|o| (&w2, b2[o]))).enumerate() {
                let want = b + (0..4).map(|i| x[r * 4 + i] * w[(o % 3) * 4 + i]).sum::<f32>();
                assert!(
                    (out[r * 6 + o] - want).abs() < 1e-5,
                    "row {r} output {o}: {} vs {want}",
                    out[r * 6 + o]
                );
            }
        }
    }
}
