//! A decoder-only transformer for batched generation: Gemma 3 / Gemma 2 / Gemma, Llama and
//! Qwen2, from GGUF (quantized) or a Hugging Face safetensors snapshot.
//!
//! candle-transformers' models keep one KV cache per model and one position for the whole batch,
//! so sequences of different lengths cannot share a forward pass without padding. This model
//! instead takes a *flat* batch: the new tokens of many sequences, each with its own KV cache and
//! position, as one `[tokens, hidden]` matrix. The weight matmuls (nearly all the work) run once
//! over all rows; attention runs per sequence on exactly that sequence's keys, so a sequence's
//! result does not depend on what else is in the batch. Prefill of new prompts and single-token
//! decode steps of running sequences mix in one pass (continuous batching).

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::path::Path;
use std::sync::Arc;
use xinstruct_kernels::q8gemm;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Gemma,
    Gemma2,
    Gemma3,
    Llama,
    Qwen2,
}

impl Arch {
    pub fn parse(s: &str) -> Option<Arch> {
        Some(match s {
            "gemma" => Arch::Gemma,
            "gemma2" => Arch::Gemma2,
            "gemma3" | "gemma3_text" => Arch::Gemma3,
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gemma => "gemma",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
    fn is_gemma(self) -> bool {
        matches!(self, Arch::Gemma | Arch::Gemma2 | Arch::Gemma3)
    }
}

pub const SUPPORTED: &str = "gemma, gemma2, gemma3, llama (incl. mistral/SmolLM), qwen2";

/// A real model's architecture and size, for [`Model::synthetic`].
#[derive(Clone, Debug)]
pub struct SyntheticShape {
    pub name: &'static str,
    pub config: ModelConfig,
    pub intermediate: usize,
}

/// Gemma 3 models by name (`gemma3-270m`, `gemma3-1b`, `gemma3-4b`): the shapes of Google's
/// config.json files (text model; the parameter counts are checked against the published ones
/// in the tests).
pub fn synthetic_shape(name: &str) -> Option<SyntheticShape> {
    let (name, hidden, layers, heads, kv_heads, intermediate) = match name {
        "gemma3-270m" => ("gemma3-270m", 640, 18, 4, 1, 2048),
        "gemma3-1b" => ("gemma3-1b", 1152, 26, 4, 1, 6912),
        "gemma3-4b" => ("gemma3-4b", 2560, 34, 8, 4, 10240),
        _ => return None,
    };
    // Every sixth layer global (RoPE base 1M), the others a 512-token window (base 10k).
    let sliding: Vec<bool> = (0..layers).map(|i| (i + 1) % 6 != 0).collect();
    let config = ModelConfig {
        arch: Arch::Gemma3,
        hidden,
        layers,
        heads,
        kv_heads,
        head_dim: 256,
        vocab: 262_144,
        rms_eps: 1e-6,
        context_length: 32_768,
        rope_theta: sliding.iter().map(|&s| if s { 10_000. } else { 1_000_000. }).collect(),
        rope_interleaved: false,
        window: sliding.iter().map(|&s| s.then_some(512)).collect(),
        query_scale: 1.0 / 256f64.sqrt(),
        attn_softcap: None,
        final_softcap: None,
    };
    Some(SyntheticShape { name, config, intermediate })
}

impl SyntheticShape {
    /// The model's parameters (tied embedding counted once), as model cards count them.
    pub fn parameters(&self) -> usize {
        let c = &self.config;
        let (h, q, kv) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let norms = if c.arch == Arch::Gemma3 { 4 * h + 2 * c.head_dim } else { 2 * h };
        let layer = 2 * h * q + 2 * h * kv + 3 * h * self.intermediate + norms;
        c.layers * layer + c.vocab * h + h
    }
}

/// The names [`synthetic_shape`] knows.
pub const SYNTHETIC: &str = "gemma3-270m, gemma3-1b, gemma3-4b";

/// Shape and numerics of a model, read from GGUF metadata or config.json.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub context_length: usize,
    /// RoPE base per layer (Gemma 3 uses a smaller base on its sliding-window layers).
    pub rope_theta: Vec<f32>,
    /// Pairs (2i, 2i+1) (GGUF llama's permuted weights) instead of (i, i + d/2).
    pub rope_interleaved: bool,
    /// Sliding window per layer (None = global attention).
    pub window: Vec<Option<usize>>,
    pub query_scale: f64,
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
}

/// A weight matrix, the kernel that multiplies by it, and the width its input is zero-padded
/// to (see [`fast_qmatmul`]).
struct Lin {
    mm: Kernel,
    k: usize,
    k_pad: usize,
}

enum Kernel {
    Candle(QMatMul),
    /// Q8_0 on an AVX2 CPU without VNNI ([`q8gemm`]).
    Q8(q8gemm::Q8Matrix),
}

impl Lin {
    fn plain(mm: QMatMul) -> Lin {
        Lin { mm: Kernel::Candle(mm), k: 0, k_pad: 0 }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.k_pad > self.k {
            &x.pad_with_zeros(candle_core::D::Minus1, 0, self.k_pad - self.k)?
        } else {
            x
        };
        match &self.mm {
            Kernel::Candle(mm) => mm.forward(x),
            Kernel::Q8(m) => {
                let (rows, k) = x.dims2()?;
                let out = m.matmul(&x.flatten_all()?.to_vec1::<f32>()?, rows);
                debug_assert_eq!(k, self.k_pad.max(self.k));
                Tensor::from_vec(out, (rows, m.rows()), x.device())
            }
        }
    }

    /// Bytes of the weights (Q8_0 counted as stored in a GGUF).
    fn bytes(&self) -> usize {
        match &self.mm {
            Kernel::Candle(QMatMul::QTensor(q)) => q.storage_size_in_bytes(),
            Kernel::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
            Kernel::Q8(m) => m.q8_0_bytes(),
        }
    }
}

enum Act {
    Silu,
    GeluTanh,
}

struct Layer {
    attn_norm: Tensor,
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    qkv_bias: Option<(Tensor, Tensor, Tensor)>,
    qk_norm: Option<(Tensor, Tensor)>,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: Lin,
    up: Lin,
    down: Lin,
    post_ffn_norm: Option<Tensor>,
}

enum Embedding {
    Quantized(Arc<QTensor>),
    Dense(Tensor),
}

pub struct Model {
    pub config: ModelConfig,
    embed: Embedding,
    embed_scale: Option<f64>,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Lin,
    act: Act,
    /// cos/sin tables per distinct RoPE base: `[context, head_dim / 2]`.
    rope: Vec<(f32, Tensor, Tensor)>,
    dtype: DType,
    device: Device,
}

/// One sequence's attention state: a KV cache per layer and the number of tokens it holds.
pub struct SeqCache {
    kv: Vec<candle_nn::kv_cache::KvCache>,
    pub len: usize,
}

/// One block of [`super::prefix::BLOCK`] positions of a sequence's KV cache: each layer's keys
/// and values, `(kv_heads, BLOCK, head_dim)` each.
pub type KvBlock = Arc<Vec<(Tensor, Tensor)>>;

impl SeqCache {
    pub fn new(model: &Model, capacity: usize) -> SeqCache {
        let cap = capacity.max(16);
        SeqCache {
            kv: (0..model.config.layers).map(|_| candle_nn::kv_cache::KvCache::new(1, cap)).collect(),
            len: 0,
        }
    }

    /// A cache that starts with `blocks` (a prompt's first positions, from the prefix cache).
    pub fn from_blocks(model: &Model, capacity: usize, blocks: &[KvBlock]) -> Result<SeqCache> {
        let mut cache = SeqCache::new(model, capacity);
        for block in blocks {
            for (kv, (k, v)) in cache.kv.iter_mut().zip(block.iter()) {
                kv.append(k, v)?;
            }
            cache.len += super::prefix::BLOCK;
        }
        Ok(cache)
    }

    /// A copy of block `k` (positions `k * BLOCK .. (k + 1) * BLOCK`, which the cache holds).
    pub fn block(&self, k: usize) -> Result<KvBlock> {
        let b = super::prefix::BLOCK;
        let layers = self
            .kv
            .iter()
            .map(|kv| {
                let (Some(keys), Some(values)) = (kv.k()?, kv.v()?) else {
                    candle_core::bail!("block {k} of an empty cache");
                };
                Ok((keys.narrow(1, k * b, b)?.copy()?, values.narrow(1, k * b, b)?.copy()?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(layers))
    }
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata.get(key).ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata has no {key}")))
}

impl Model {
    /// Loads a GGUF file whose header `ct` the caller has read from `file`; its architecture
    /// must be one of [`SUPPORTED`].
    pub fn from_gguf(
        path: &Path,
        ct: &gguf_file::Content,
        file: &mut std::fs::File,
        device: &Device,
        batch_invariant: bool,
    ) -> Result<Model> {
        let arch_name = md(&ct, "general.architecture")?.to_string()?.clone();
        let arch = Arch::parse(&arch_name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: GGUF architecture '{arch_name}' is not supported (supported: {SUPPORTED})",
                path.display()
            ))
        })?;
        let p = arch_name.as_str();
        let u = |k: &str| -> Result<usize> { Ok(md(&ct, &format!("{p}.{k}"))?.to_u32()? as usize) };
        let f = |k: &str| -> Option<f32> { md(&ct, &format!("{p}.{k}")).and_then(|v| v.to_f32()).ok() };
        let hidden = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let layers = u("block_count")?;
        let head_dim = u("attention.key_length").unwrap_or(hidden / heads);
        let kv_heads = u("attention.head_count_kv").unwrap_or(heads);
        let rms_eps = f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6) as f64;
        let context_length = u("context_length").unwrap_or(8192);
        let base = f("rope.freq_base").unwrap_or(if arch == Arch::Gemma3 { 1_000_000. } else { 10_000. });
        let (window, rope_theta) = match arch {
            Arch::Gemma3 => {
                let w = u("attention.sliding_window").unwrap_or(512);
                let pattern = u("attention.sliding_window_type").unwrap_or(6);
                let local = f("rope.local_freq_base").unwrap_or(10_000.);
                let sliding: Vec<bool> = (0..layers).map(|i| (i + 1) % pattern != 0).collect();
                (
                    sliding.iter().map(|&s| s.then_some(w)).collect(),
                    sliding.iter().map(|&s| if s { local } else { base }).collect(),
                )
            }
            Arch::Gemma2 => {
                let w = u("attention.sliding_window").unwrap_or(4096);
                ((0..layers).map(|i| (i % 2 == 0).then_some(w)).collect(), vec![base; layers])
            }
            _ => (vec![None; layers], vec![base; layers]),
        };
        let vocab = md(&ct, "tokenizer.ggml.tokens").and_then(|v| Ok(v.to_vec()?.len())).unwrap_or(0);
        let config = ModelConfig {
            arch,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            vocab,
            rms_eps,
            context_length,
            rope_theta,
            rope_interleaved: arch == Arch::Llama,
            window,
            query_scale: 1.0 / (head_dim as f64).sqrt(),
            attn_softcap: f("attn_logit_softcapping").map(|v| v as f64),
            final_softcap: f("final_logit_softcapping").map(|v| v as f64),
        };
        let mut t = |name: &str| -> Result<QTensor> {
            ct.tensor(file, name, device)
                .map_err(|e| candle_core::Error::Msg(format!("{}: tensor {name}: {e}", path.display())))
        };
        let has = |name: &str| ct.tensor_infos.contains_key(name);
        let dense = |q: QTensor| q.dequantize(device);
        let qmm = |q: QTensor| fast_qmatmul(q, device, batch_invariant);
        let embed = Arc::new(t("token_embd.weight")?);
        let lm_head = if has("output.weight") {
            qmm(t("output.weight")?)?
        } else {
            fast_qmatmul(t("token_embd.weight")?, device, batch_invariant)?
        };
        let norm = dense(t("output_norm.weight")?)?;
        let mut layer_ws = Vec::with_capacity(layers);
        for i in 0..layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            let qkv_bias = if has(&n("attn_q.bias")) {
                Some((
                    dense(t(&n("attn_q.bias"))?)?,
                    dense(t(&n("attn_k.bias"))?)?,
                    dense(t(&n("attn_v.bias"))?)?,
                ))
            } else {
                None
            };
            let qk_norm = if has(&n("attn_q_norm.weight")) {
                Some((dense(t(&n("attn_q_norm.weight"))?)?, dense(t(&n("attn_k_norm.weight"))?)?))
            } else {
                None
            };
            let opt = |t: &mut dyn FnMut(&str) -> Result<QTensor>, name: String| -> Result<Option<Tensor>> {
                if has(&name) {
                    Ok(Some(t(&name)?.dequantize(device)?))
                } else {
                    Ok(None)
                }
            };
            layer_ws.push(Layer {
                attn_norm: dense(t(&n("attn_norm.weight"))?)?,
                q: qmm(t(&n("attn_q.weight"))?)?,
                k: qmm(t(&n("attn_k.weight"))?)?,
                v: qmm(t(&n("attn_v.weight"))?)?,
                o: qmm(t(&n("attn_output.weight"))?)?,
                qkv_bias,
                qk_norm,
                post_attn_norm: opt(&mut t, n("post_attention_norm.weight"))?,
                ffn_norm: dense(t(&n("ffn_norm.weight"))?)?,
                gate: qmm(t(&n("ffn_gate.weight"))?)?,
                up: qmm(t(&n("ffn_up.weight"))?)?,
                down: qmm(t(&n("ffn_down.weight"))?)?,
                post_ffn_norm: opt(&mut t, n("post_ffw_norm.weight"))?,
            });
        }
        Model::assemble(config, Embedding::Quantized(embed), lm_head, norm, layer_ws, DType::F32, device)
    }

    /// Loads a Hugging Face snapshot directory: config.json + model.safetensors (or the sharded
    /// `model.safetensors.index.json`). Weights and activations use `dtype`.
    pub fn from_safetensors(dir: &Path, dtype: DType, device: &Device) -> Result<Model> {
        let err = |m: String| candle_core::Error::Msg(m);
        let cfg_path = dir.join("config.json");
        let raw = std::fs::read(&cfg_path).map_err(|e| err(format!("{}: {e}", cfg_path.display())))?;
        let cfg: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| err(format!("{}: {e}", cfg_path.display())))?;
        let cfg = cfg.get("text_config").cloned().unwrap_or(cfg);
        let arch_name = cfg["model_type"].as_str().unwrap_or("");
        let arch = Arch::parse(arch_name).ok_or_else(|| {
            err(format!(
                "{}: model_type '{arch_name}' is not supported (supported: {SUPPORTED})",
                cfg_path.display()
            ))
        })?;
        let u = |k: &str| cfg[k].as_u64().map(|v| v as usize);
        let need = |k: &str| u(k).ok_or_else(|| err(format!("{}: no {k}", cfg_path.display())));
        let hidden = need("hidden_size")?;
        let heads = need("num_attention_heads")?;
        let layers = need("num_hidden_layers")?;
        let head_dim = u("head_dim").unwrap_or(hidden / heads);
        let base = cfg["rope_theta"].as_f64().unwrap_or(10_000.) as f32;
        let sliding = u("sliding_window");
        let (window, rope_theta) = match arch {
            Arch::Gemma3 => {
                let pattern = u("sliding_window_pattern").unwrap_or(6);
                let local = cfg["rope_local_base_freq"].as_f64().unwrap_or(10_000.) as f32;
                let types: Option<Vec<bool>> = cfg["layer_types"]
                    .as_array()
                    .map(|a| a.iter().map(|t| t.as_str() == Some("sliding_attention")).collect());
                let is_sliding =
                    types.unwrap_or_else(|| (0..layers).map(|i| (i + 1) % pattern != 0).collect());
                (
                    is_sliding.iter().map(|&s| if s { sliding.or(Some(512)) } else { None }).collect(),
                    is_sliding.iter().map(|&s| if s { local } else { base }).collect(),
                )
            }
            Arch::Gemma2 => (
                (0..layers).map(|i| (i % 2 == 0).then(|| sliding.unwrap_or(4096))).collect(),
                vec![base; layers],
            ),
            _ => (vec![None; layers], vec![base; layers]),
        };
        let query_scale = match cfg["query_pre_attn_scalar"].as_f64() {
            Some(s) if matches!(arch, Arch::Gemma2 | Arch::Gemma3) => 1.0 / s.sqrt(),
            _ => 1.0 / (head_dim as f64).sqrt(),
        };
        let config = ModelConfig {
            arch,
            hidden,
            layers,
            heads,
            kv_heads: u("num_key_value_heads").unwrap_or(heads),
            head_dim,
            vocab: need("vocab_size")?,
            rms_eps: cfg["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            context_length: u("max_position_embeddings").unwrap_or(8192),
            rope_theta,
            rope_interleaved: false,
            window,
            query_scale,
            attn_softcap: cfg["attn_logit_softcapping"].as_f64(),
            final_softcap: cfg["final_logit_softcapping"].as_f64(),
        };
        let files = safetensors_files(dir)?;
        // SAFETY: the files are memory-mapped read-only; nothing here writes them while mapped.
        let vb = unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&files, dtype, device)? };
        let get = |name: &str| -> Result<Tensor> {
            vb.get_unchecked(name).map_err(|e| err(format!("{}: tensor {name}: {e}", dir.display())))
        };
        // Gemma's RMSNorm multiplies by (1 + w); GGUF conversion bakes the 1 in, do the same here.
        let norm_w = |name: &str| -> Result<Tensor> {
            let w = get(name)?;
            if arch.is_gemma() {
                w + 1.0
            } else {
                Ok(w)
            }
        };
        let lin = |name: &str| -> Result<Lin> { Ok(Lin::plain(QMatMul::Tensor(get(name)?))) };
        let embed = get("model.embed_tokens.weight")?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            lin("lm_head.weight")?
        } else {
            Lin::plain(QMatMul::Tensor(embed.clone()))
        };
        let mut layer_ws = Vec::with_capacity(layers);
        for i in 0..layers {
            let n = |s: &str| format!("model.layers.{i}.{s}");
            let sandwich = matches!(arch, Arch::Gemma2 | Arch::Gemma3);
            layer_ws.push(Layer {
                attn_norm: norm_w(&n("input_layernorm.weight"))?,
                q: lin(&n("self_attn.q_proj.weight"))?,
                k: lin(&n("self_attn.k_proj.weight"))?,
                v: lin(&n("self_attn.v_proj.weight"))?,
                o: lin(&n("self_attn.o_proj.weight"))?,
                qkv_bias: if vb.contains_tensor(&n("self_attn.q_proj.bias")) {
                    Some((
                        get(&n("self_attn.q_proj.bias"))?,
                        get(&n("self_attn.k_proj.bias"))?,
                        get(&n("self_attn.v_proj.bias"))?,
                    ))
                } else {
                    None
                },
                qk_norm: if arch == Arch::Gemma3 {
                    Some((norm_w(&n("self_attn.q_norm.weight"))?, norm_w(&n("self_attn.k_norm.weight"))?))
                } else {
                    None
                },
                post_attn_norm: if sandwich {
                    Some(norm_w(&n("post_attention_layernorm.weight"))?)
                } else {
                    None
                },
                ffn_norm: if sandwich {
                    norm_w(&n("pre_feedforward_layernorm.weight"))?
                } else {
                    norm_w(&n("post_attention_layernorm.weight"))?
                },
                gate: lin(&n("mlp.gate_proj.weight"))?,
                up: lin(&n("mlp.up_proj.weight"))?,
                down: lin(&n("mlp.down_proj.weight"))?,
                post_ffn_norm: if sandwich {
                    Some(norm_w(&n("post_feedforward_layernorm.weight"))?)
                } else {
                    None
                },
            });
        }
        let norm = norm_w("model.norm.weight")?;
        Model::assemble(config, Embedding::Dense(embed), lm_head, norm, layer_ws, dtype, device)
    }

    /// A model of a real architecture and size with random weights, built on `device`: for
    /// benchmarks where the weights file cannot travel (the GPU machine gets ≤ 64 MiB of tree)
    /// and the values do not matter, only the shapes and the bytes each step reads. On CPU the
    /// matrices are Q8_0 like a GGUF's on this engine ([`fast_qmatmul`]); elsewhere dense in
    /// `dtype` (bf16 on a GPU, what vLLM serves). Not seeded: no figure depends on the values.
    pub fn synthetic(shape: &SyntheticShape, dtype: DType, device: &Device) -> Result<Model> {
        let cfg = &shape.config;
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        // Uniform with the usual 0.02 standard deviation (cheaper to draw than normal).
        let a = 0.02 * 3f64.sqrt();
        let dense = |rows: usize, cols: usize| -> Result<Tensor> {
            Tensor::rand(-a as f32, a as f32, (rows, cols), device)?.to_dtype(if device.is_cpu() {
                DType::F32
            } else {
                dtype
            })
        };
        let lin = |rows: usize, cols: usize| -> Result<Lin> {
            let w = dense(rows, cols)?;
            if device.is_cpu() {
                let q = QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q8_0)?;
                fast_qmatmul(q, device, true)
            } else {
                Ok(Lin::plain(QMatMul::Tensor(w)))
            }
        };
        let act_dtype = if device.is_cpu() { DType::F32 } else { dtype };
        let ones = |n: usize| Tensor::ones(n, act_dtype, device);
        let mut layers = Vec::with_capacity(cfg.layers);
        for _ in 0..cfg.layers {
            layers.push(Layer {
                attn_norm: ones(h)?,
                q: lin(cfg.heads * hd, h)?,
                k: lin(cfg.kv_heads * hd, h)?,
                v: lin(cfg.kv_heads * hd, h)?,
                o: lin(h, cfg.heads * hd)?,
                qkv_bias: None,
                qk_norm: (cfg.arch == Arch::Gemma3)
                    .then(|| Ok::<_, candle_core::Error>((ones(hd)?, ones(hd)?)))
                    .transpose()?,
                post_attn_norm: matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3)
                    .then(|| ones(h))
                    .transpose()?,
                ffn_norm: ones(h)?,
                gate: lin(shape.intermediate, h)?,
                up: lin(shape.intermediate, h)?,
                down: lin(h, shape.intermediate)?,
                post_ffn_norm: matches!(cfg.arch, Arch::Gemma2 | Arch::Gemma3)
                    .then(|| ones(h))
                    .transpose()?,
            });
        }
        // Tied embedding and LM head, as in Gemma: one table, read whole by the head each step.
        let (embed, lm_head) = if device.is_cpu() {
            let w = dense(cfg.vocab, h)?;
            let q = || QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q8_0);
            (Embedding::Quantized(Arc::new(q()?)), fast_qmatmul(q()?, device, true)?)
        } else {
            let e = dense(cfg.vocab, h)?;
            (Embedding::Dense(e.clone()), Lin::plain(QMatMul::Tensor(e)))
        };
        Model::assemble(cfg.clone(), embed, lm_head, ones(h)?, layers, act_dtype, device)
    }

    /// Bytes of weights one forward step reads: every layer's matrices and norms, the LM head
    /// and the final norm (the embedding table only for the batch's rows: not counted).
    pub fn weight_bytes(&self) -> usize {
        let lin = Lin::bytes;
        let t = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].into_iter().map(lin).sum::<usize>()
                    + t(&l.attn_norm)
                    + t(&l.ffn_norm)
                    + l.qk_norm.as_ref().map(|(a, b)| t(a) + t(b)).unwrap_or(0)
                    + l.post_attn_norm.as_ref().map(t).unwrap_or(0)
                    + l.post_ffn_norm.as_ref().map(t).unwrap_or(0)
            })
            .sum();
        layers + lin(&self.lm_head) + t(&self.norm)
    }

    /// Bytes of keys and values a decode step reads for one sequence holding `ctx` positions:
    /// per layer, the window's (or all) positions × kv heads × head size, keys and values.
    pub fn kv_bytes_read(&self, ctx: usize) -> usize {
        let cfg = &self.config;
        let per_pos = 2 * cfg.kv_heads * cfg.head_dim * self.dtype.size_in_bytes();
        cfg.window.iter().map(|w| w.map_or(ctx, |w| w.min(ctx)) * per_pos).sum()
    }

    fn assemble(
        config: ModelConfig,
        embed: Embedding,
        lm_head: Lin,
        norm: Tensor,
        layers: Vec<Layer>,
        dtype: DType,
        device: &Device,
    ) -> Result<Model> {
        let mut rope = Vec::new();
        let max_pos = config.context_length.min(1 << 16);
        for &theta in &config.rope_theta {
            if rope.iter().any(|(t, _, _)| *t == theta) {
                continue;
            }
            let half = config.head_dim / 2;
            let inv: Vec<f32> =
                (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / config.head_dim as f32)).collect();
            let inv = Tensor::from_vec(inv, (1, half), device)?;
            let pos =
                Tensor::arange(0u32, max_pos as u32, device)?.to_dtype(DType::F32)?.reshape((max_pos, 1))?;
            let freqs = pos.matmul(&inv)?;
            rope.push((theta, freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?));
        }
        let embed_scale = config.arch.is_gemma().then(|| (config.hidden as f64).sqrt());
        let act = if config.arch.is_gemma() { Act::GeluTanh } else { Act::Silu };
        Ok(Model {
            config,
            embed,
            embed_scale,
            layers,
            norm,
            lm_head,
            act,
            rope,
            dtype,
            device: device.clone(),
        })
    }

    /// Longest sequence (prompt + generated) the position tables cover.
    pub fn max_positions(&self) -> usize {
        self.config.context_length.min(1 << 16)
    }

    /// Rows of the embedding table: the largest token id + 1 the model accepts.
    pub fn embedding_rows(&self) -> usize {
        match &self.embed {
            Embedding::Quantized(q) => q.shape().dims().first().copied().unwrap_or(0),
            Embedding::Dense(e) => e.dims().first().copied().unwrap_or(0),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the new tokens of several sequences in one pass and returns the next-token logits of
    /// each sequence, `[sequences, vocab]` in f32. Each entry is (cache, new tokens); the cache
    /// grows by the tokens.
    pub fn forward(&self, batch: &mut [(&mut SeqCache, &[u32])]) -> Result<Tensor> {
        let dev = &self.device;
        let cfg = &self.config;
        let ids: Vec<u32> = batch.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        if ids.is_empty() || batch.iter().any(|(_, t)| t.is_empty()) {
            candle_core::bail!("forward needs at least one new token per sequence");
        }
        let n_tok = ids.len();
        let positions: Vec<u32> =
            batch.iter().flat_map(|(c, t)| (c.len..c.len + t.len()).map(|p| p as u32)).collect();
        if positions.iter().any(|&p| p as usize >= self.max_positions()) {
            candle_core::bail!("sequence longer than the model's {} positions", self.max_positions());
        }
        let ids_t = Tensor::from_vec(ids, n_tok, dev)?;
        let pos_t = Tensor::from_vec(positions, n_tok, dev)?;
        let mut x = match &self.embed {
            Embedding::Quantized(q) => q.embedding(&ids_t)?.to_dtype(self.dtype)?,
            Embedding::Dense(e) => e.index_select(&ids_t, 0)?,
        };
        if let Some(s) = self.embed_scale {
            // Gemma scales by sqrt(hidden) rounded to the activation dtype.
            x = (x * s)?;
        }
        let eps = cfg.rms_eps as f32;
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        // Per distinct RoPE base: cos/sin rows at each token's position, shaped (tokens, 1, hd/2).
        let ropes: Vec<(f32, Tensor, Tensor)> = self
            .rope
            .iter()
            .map(|(theta, cos, sin)| {
                Ok((
                    *theta,
                    cos.index_select(&pos_t, 0)?.unsqueeze(1)?,
                    sin.index_select(&pos_t, 0)?.unsqueeze(1)?,
                ))
            })
            .collect::<Result<_>>()?;
        for (li, layer) in self.layers.iter().enumerate() {
            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let mut q = layer.q.forward(&h)?;
            let mut k = layer.k.forward(&h)?;
            let mut v = layer.v.forward(&h)?;
            if let Some((bq, bk, bv)) = &layer.qkv_bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let mut q = q.reshape((n_tok, nh, hd))?;
            let mut k = k.reshape((n_tok, nkv, hd))?;
            let v = v.reshape((n_tok, nkv, hd))?;
            if let Some((qn, kn)) = &layer.qk_norm {
                q = candle_nn::ops::rms_norm(&q.contiguous()?, qn, eps)?;
                k = candle_nn::ops::rms_norm(&k.contiguous()?, kn, eps)?;
            }
            let (_, cos, sin) = ropes
                .iter()
                .find(|(t, _, _)| *t == cfg.rope_theta[li])
                .ok_or_else(|| candle_core::Error::Msg("rope table".into()))?;
            // Each token is its own batch entry of length 1: (tokens, heads, 1, hd).
            let rope = |t: &Tensor, heads: usize| -> Result<Tensor> {
                let t = t.reshape((n_tok, heads, 1, hd))?.contiguous()?;
                let r = if cfg.rope_interleaved {
                    candle_nn::rotary_emb::rope_i(&t, cos, sin)?
                } else {
                    candle_nn::rotary_emb::rope(&t, cos, sin)?
                };
                r.reshape((n_tok, heads, hd))
            };
            let q = rope(&q, nh)?;
            let k = rope(&k, nkv)?;
            // Attention in aligned blocks of positions (`prefix::BLOCK`): a block's queries see
            // the keys from the window's start to the block's end, whatever follows. A block's
            // outputs then depend only on the tokens up to its end, so its keys and values are
            // the same bits whether the prompt was prefilled at once, after a cached prefix, or
            // next to other sequences: what makes prefix reuse exact. A decode step is one
            // block of one query, as before.
            let mut outs = Vec::with_capacity(batch.len());
            let mut offset = 0;
            let group = nh / nkv;
            for (cache, toks) in batch.iter_mut() {
                let n = toks.len();
                let ki = k.narrow(0, offset, n)?.transpose(0, 1)?.contiguous()?; // (nkv, n, hd)
                let vi = v.narrow(0, offset, n)?.transpose(0, 1)?.contiguous()?;
                let (kc, vc) = cache.kv[li].append(&ki, &vi)?;
                let start = cache.len; // absolute position of the first new token
                let mut from = start;
                while from < start + n {
                    let to = ((from / super::prefix::BLOCK + 1) * super::prefix::BLOCK).min(start + n);
                    let m = to - from;
                    // The block's queries: (nh, m, hd).
                    let qi = q.narrow(0, offset + from - start, m)?.transpose(0, 1)?.contiguous()?;
                    // Keys a query of the block may see: the window (if any) ending at its first
                    // query, up to the block's last position.
                    let first_key = match cfg.window[li] {
                        Some(w) => (from + 1).saturating_sub(w),
                        None => 0,
                    };
                    let keys = to - first_key;
                    let kb = kc.narrow(1, first_key, keys)?.contiguous()?;
                    let vb = vc.narrow(1, first_key, keys)?.contiguous()?;
                    // Grouped-query attention without copying K/V per head: (nkv, group * m, hd).
                    let qg = qi.reshape((nkv, group * m, hd))?;
                    let mut att = (qg.matmul(&kb.t()?)? * cfg.query_scale)?;
                    if let Some(cap) = cfg.attn_softcap {
                        att = ((att / cap)?.tanh()? * cap)?;
                    }
                    if m > 1 || cfg.window[li].is_some() {
                        let mut mask = vec![0f32; m * keys];
                        for t in 0..m {
                            let qpos = from + t;
                            for j in 0..keys {
                                let kpos = first_key + j;
                                let visible =
                                    kpos <= qpos && cfg.window[li].map(|w| qpos - kpos < w).unwrap_or(true);
                                if !visible {
                                    mask[t * keys + j] = f32::NEG_INFINITY;
                                }
                            }
                        }
                        if mask.iter().any(|m| m.is_infinite()) {
                            let mask = Tensor::from_vec(mask, (1, 1, m, keys), dev)?.to_dtype(att.dtype())?;
                            att = att.reshape((nkv, group, m, keys))?.broadcast_add(&mask)?.reshape((
                                nkv,
                                group * m,
                                keys,
                            ))?;
                        }
                    }
                    let att = candle_nn::ops::softmax_last_dim(&att)?;
                    let o = att.matmul(&vb)?.reshape((nh, m, hd))?.transpose(0, 1)?.reshape((m, nh * hd))?;
                    outs.push(o);
                    from = to;
                }
                offset += n;
            }
            let attn = Tensor::cat(&outs, 0)?;
            let mut a = layer.o.forward(&attn)?;
            if let Some(w) = &layer.post_attn_norm {
                a = candle_nn::ops::rms_norm(&a, w, eps)?;
            }
            x = (a + residual)?;
            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = layer.gate.forward(&h)?;
            let gate = match self.act {
                Act::Silu => candle_nn::ops::silu(&gate)?,
                Act::GeluTanh => gate.gelu()?,
            };
            let mut f = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            if let Some(w) = &layer.post_ffn_norm {
                f = candle_nn::ops::rms_norm(&f, w, eps)?;
            }
            x = (f + residual)?;
        }
        for (cache, toks) in batch.iter_mut() {
            cache.len += toks.len();
        }
        // Only each sequence's last token needs logits.
        let mut last = Vec::with_capacity(batch.len());
        let mut end = 0;
        for (_, toks) in batch.iter() {
            end += toks.len();
            last.push(end as u32 - 1);
        }
        let last = Tensor::from_vec(last, batch.len(), dev)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        let mut logits = self.lm_head.forward(&x)?.to_dtype(DType::F32)?;
        if let Some(cap) = cfg.final_softcap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        logits.contiguous()
    }
}

/// Makes a quantized matrix fast and batch-invariant on CPU.
///
/// candle's CPU kernels for Q4_1, Q5_0, Q5_1 and Q8_1 are scalar, and its fast AVX-512 (VNNI)
/// tiled kernels need rows (`k`) that are a multiple of 256; llama.cpp's Q4_K_M files use Q5_0
/// and Q8_0 for every matrix whose rows are not (all of Gemma-3-270M's 640-wide ones, the
/// embedding included). So on CPU such matrices are requantized once at load to Q8_0 (finer than
/// Q5_0: 8 bits per weight, same 32-weight blocks), with rows zero-padded to a multiple of 256
/// where the tiled kernel runs ([`q8_tiles`]); [`Lin::forward`] pads the input to match: 7x
/// faster per weight than the scalar path.
///
/// With `batch_invariant`, the k-quants (Q4_K, Q6_K, …) become Q8_0 too: candle picks different
/// kernels for them by the number of rows (gemv, tiles, AMX) that sum in different orders, so a
/// sequence's logits would depend on what else is in its batch. The Q8_0 tiled kernel computes
/// every row the same way whatever the batch, so batched output equals one-by-one output (a must
/// for reproducible datasets).
///
/// On an AVX2 CPU without VNNI, where candle has no tiled Q8_0 kernel, Q8_0 matrices go to
/// [`q8gemm`] instead: the same bits as candle's product, register-blocked.
fn fast_qmatmul(q: QTensor, device: &Device, batch_invariant: bool) -> Result<Lin> {
    use candle_core::quantized::GgmlDType as G;
    let (n, k) = q.shape().dims2()?;
    let slow = matches!(q.dtype(), G::Q4_1 | G::Q5_0 | G::Q5_1 | G::Q8_1);
    let varies = matches!(q.dtype(), G::Q2K | G::Q3K | G::Q4K | G::Q5K | G::Q6K | G::Q8K);
    let tiles = q8_tiles();
    let unaligned = q.dtype() == G::Q8_0 && k % 256 != 0 && tiles;
    let quantized = !matches!(q.dtype(), G::F32 | G::F16 | G::BF16);
    let requantize = slow || unaligned || (batch_invariant && varies);
    let cpu = device.is_cpu();
    let (q, k_pad) = if cpu && quantized && requantize && n % 16 == 0 && k % 32 == 0 {
        let k_pad = q8_row_width(k);
        let dense = q.dequantize(device)?.pad_with_zeros(1, 0, k_pad - k)?;
        (QTensor::quantize(&dense, G::Q8_0)?, k_pad)
    } else {
        (q, k)
    };
    if cpu && !tiles && q.dtype() == G::Q8_0 && q8gemm::available() {
        if let Some(m) = q8gemm::Q8Matrix::from_q8_0(&q.data()?, n, k_pad) {
            return Ok(Lin { mm: Kernel::Q8(m), k, k_pad });
        }
    }
    Ok(Lin { mm: Kernel::Candle(QMatMul::from_qtensor(q)?), k, k_pad })
}

/// Whether candle runs Q8_0 matrices through its tiled kernel on this CPU: that needs VNNI dot
/// products (AVX-512 VNNI or AVX-VNNI; plain AVX2's `maddubs` overflows on Q8_0's range) and
/// rows that are a multiple of 256. Without it candle takes row-by-row dot products that accept
/// any multiple of 32 and give each row the same sum whatever the batch, so padding rows there
/// only adds work (Gemma-3-270M's 640-wide rows padded to 768: 20% more).
fn q8_tiles() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The width a requantized Q8_0 row of `k` weights gets (see [`q8_tiles`]).
fn q8_row_width(k: usize) -> usize {
    if q8_tiles() {
        k.div_ceil(256) * 256
    } else {
        k
    }
}

/// The safetensors files of a snapshot: the sharded index's files, or model.safetensors.
fn safetensors_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let raw = std::fs::read(&index)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", index.display())))?;
        let v: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", index.display())))?;
        let mut files: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: no weight_map", index.display())))?
            .values()
            .filter_map(|f| f.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        let paths: Vec<_> = files.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            candle_core::bail!("{}: shard {} is missing", index.display(), missing.display());
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if !single.exists() {
        candle_core::bail!("{}: no model.safetensors or model.safetensors.index.json", dir.display());
    }
    Ok(vec![single])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SyntheticShape {
        let mut s = synthetic_shape("gemma3-270m").unwrap();
        let c = &mut s.config;
        (c.hidden, c.layers, c.heads, c.kv_heads, c.head_dim, c.vocab) = (256, 2, 2, 1, 64, 512);
        // One windowed layer (a window shorter than the prompts) and one global.
        c.window = vec![Some(48), None];
        c.rope_theta = vec![10_000., 1_000_000.];
        s.intermediate = 512;
        s
    }

    fn logits(model: &Model, batch: &mut [(&mut SeqCache, &[u32])]) -> Vec<Vec<f32>> {
        model.forward(batch).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn synthetic_shapes_have_the_published_parameter_counts() {
        // keras-hub's Gemma 3 presets ("params"); gemma3-270m is checked against the bundled
        // GGUF's tensors in tests/it/generate.rs
        // (synthetic_gemma3_270m_has_the_bundled_ggufs_parameter_count).
        assert_eq!(synthetic_shape("gemma3-1b").unwrap().parameters(), 999_885_952);
        assert_eq!(synthetic_shape("gemma3-4b").unwrap().parameters(), 3_880_099_328);
        assert!(synthetic_shape("gemma3-2b").is_none());
    }

    #[test]
    fn a_synthetic_model_is_batch_invariant_and_exact_across_block_aligned_prefills() {
        let shape = tiny();
        let model = Model::synthetic(&shape, DType::F32, &Device::Cpu).unwrap();
        let prompt = |seed: u32, n: usize| -> Vec<u32> {
            (0..n as u32).map(|i| (i * 37 + seed * 101) % 512).collect()
        };
        let (a, b, c) = (prompt(1, 100), prompt(2, 7), prompt(3, 70));
        // One by one.
        let alone: Vec<Vec<f32>> = [&a, &b, &c]
            .iter()
            .map(|p| {
                let mut cache = SeqCache::new(&model, 128);
                logits(&model, &mut [(&mut cache, p.as_slice())]).remove(0)
            })
            .collect();
        assert!(alone.iter().flatten().all(|v| v.is_finite()));
        // Batched: the same bits.
        let mut caches: Vec<SeqCache> = (0..3).map(|_| SeqCache::new(&model, 128)).collect();
        let [ca, cb, cc] = caches.as_mut_slice() else { unreachable!() };
        let batched = logits(&model, &mut [(ca, a.as_slice()), (cb, b.as_slice()), (cc, c.as_slice())]);
        assert_eq!(batched, alone);
        // The first prompt in two calls split at a block boundary (what the prefix cache does),
        // then one decode step: the same as at once.
        let mut split = SeqCache::new(&model, 128);
        logits(&model, &mut [(&mut split, &a[..super::super::prefix::BLOCK])]);
        let rest = logits(&model, &mut [(&mut split, &a[super::super::prefix::BLOCK..])]).remove(0);
        assert_eq!(rest, alone[0]);
        let mut once = SeqCache::new(&model, 128);
        logits(&model, &mut [(&mut once, &a)]);
        let next = [7u32];
        assert_eq!(logits(&model, &mut [(&mut split, &next)]), logits(&model, &mut [(&mut once, &next)]));
    }

    #[test]
    fn bytes_read_per_step_count_weights_once_and_the_window_of_keys() {
        let shape = tiny();
        let model = Model::synthetic(&shape, DType::F32, &Device::Cpu).unwrap();
        // Q8_0 on CPU: 34 bytes per 32 weights; rows are 256 wide already except the 128-wide
        // attention output (q heads × head size), padded to 256 where the tiled kernel runs.
        let q8 = |rows: usize, k: usize| rows * q8_row_width(k) / 32 * 34;
        let per_layer = q8(128, 256) + 2 * q8(64, 256) + q8(256, 128) + 2 * q8(512, 256) + q8(256, 512);
        let norms = 4 * (4 * 256 + 2 * 64);
        let head = q8(512, 256) + 4 * 256;
        assert_eq!(model.weight_bytes(), 2 * (per_layer + norms) + head);
        // Keys and values, f32, one kv head of 64: the windowed layer reads at most 48 positions.
        let per_pos = 2 * 64 * 4;
        assert_eq!(model.kv_bytes_read(10), 2 * 10 * per_pos);
        assert_eq!(model.kv_bytes_read(100), (48 + 100) * per_pos);
    }
}
