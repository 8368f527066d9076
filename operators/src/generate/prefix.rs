//! Shared-prefix reuse: the KV cache of prompt prefixes the engine has computed, kept in blocks
//! of [`BLOCK`] tokens, so a prompt that starts like an earlier one (every prompt of a stage
//! starts with the stage's few-shot template: 150-250 tokens) prefills only the rest.
//!
//! The blocks form a radix tree at block granularity: block k of a prompt is keyed by the hash
//! chain of its tokens and all tokens before it, and holds that block's keys and values for
//! every layer. A lookup walks the prompt block by block and stops at the first block not held;
//! prompts that share a prefix share its blocks. Memory is bounded by a number of blocks; the
//! least recently used go first (a block whose parent went is unreachable and ages out).
//!
//! **Exact, not approximate.** The model attends in the same aligned blocks whether or not a
//! prefix came from here (`Model::forward`: a block's queries see the keys up to the block's
//! end, whatever follows), and its matrix products compute each row alone (batch invariance),
//! so a block's keys and values are the same bits in every prompt that starts with the same
//! tokens. A sequence's tokens are therefore the same with and without the cache (tested in
//! tests/it/generate.rs against the real model).
//!
//! Plain logic, generic over what a block holds, so the tree is tested without a model.

use std::collections::HashMap;

/// Tokens per block: the unit of reuse and of the model's blocked attention. 64 keeps the
/// attention's per-block overhead under ~5% of a prefill on CPU while losing at most 63
/// tokens of a shared prefix.
pub const BLOCK: usize = 64;

struct Entry<T> {
    /// The chain key of the block before (0 for the first block).
    parent: u64,
    tokens: Vec<u32>,
    value: T,
    used: u64,
}

pub struct PrefixCache<T> {
    capacity: usize,
    blocks: HashMap<u64, Entry<T>>,
    clock: u64,
    /// Blocks found and blocks computed, since the start.
    pub hits: u64,
    pub inserted: u64,
}

fn chain(parent: u64, tokens: &[u32]) -> u64 {
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    // 0 is the root's key: a block never hashes to it.
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, parent).max(1)
}

impl<T: Clone> PrefixCache<T> {
    /// A cache of at most `capacity` blocks (0: off).
    pub fn new(capacity: usize) -> PrefixCache<T> {
        PrefixCache { capacity, blocks: HashMap::new(), clock: 0, hits: 0, inserted: 0 }
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The held blocks that `tokens` starts with, in order; at most `max_blocks` of them.
    pub fn lookup(&mut self, tokens: &[u32], max_blocks: usize) -> Vec<T> {
        let mut found = Vec::new();
        let mut parent = 0;
        for block in tokens.chunks_exact(BLOCK).take(max_blocks) {
            let key = chain(parent, block);
            let Some(e) = self.blocks.get_mut(&key) else { break };
            // Hash chains are 64-bit: check the tokens and the parent, so a collision is a miss.
            if e.parent != parent || e.tokens != block {
                break;
            }
            self.clock += 1;
            e.used = self.clock;
            found.push(e.value.clone());
            parent = key;
        }
        self.hits += found.len() as u64;
        found
    }

    /// Holds block `k` of `tokens` (its tokens `k * BLOCK ..(k + 1) * BLOCK`), computed by
    /// `value` unless it is held already (`None`: nothing to hold); evicts the least recently
    /// used beyond capacity.
    pub fn insert(&mut self, tokens: &[u32], k: usize, value: impl FnOnce() -> Option<T>) {
        if self.capacity == 0 || tokens.len() < (k + 1) * BLOCK {
            return;
        }
        let parent = tokens[..k * BLOCK].chunks_exact(BLOCK).fold(0, chain);
        let block = &tokens[k * BLOCK..(k + 1) * BLOCK];
        let key = chain(parent, block);
        self.clock += 1;
        if let Some(e) = self.blocks.get_mut(&key) {
            e.used = self.clock;
            return;
        }
        let Some(value) = value() else { return };
        while self.blocks.len() >= self.capacity {
            let Some(oldest) = self.blocks.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) else { break };
            self.blocks.remove(&oldest);
        }
        self.blocks.insert(key, Entry { parent, tokens: block.to_vec(), value, used: self.clock });
        self.inserted += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(prefix: &[u32], rest: u32, len: usize) -> Vec<u32> {
        prefix.iter().copied().chain((0..).map(|i| rest * 10_000 + i)).take(len).collect()
    }

    /// The oracle: a lookup returns the blocks of the longest block-aligned prefix shared with
    /// a prompt inserted before (and still held), in order.
    #[test]
    fn a_prompt_finds_the_blocks_of_its_longest_shared_prefix() {
        let mut c = PrefixCache::new(1000);
        let template: Vec<u32> = (0..200).collect();
        let a = prompt(&template, 1, 400);
        for k in 0..a.len() / BLOCK {
            c.insert(&a, k, || Some((1, k)));
        }
        assert_eq!(c.len(), 6);
        // Shares 200 tokens: the 3 whole blocks within them.
        let b = prompt(&template, 2, 300);
        assert_eq!(c.lookup(&b, usize::MAX), vec![(1, 0), (1, 1), (1, 2)]);
        assert_eq!(c.lookup(&b, 2), vec![(1, 0), (1, 1)], "bounded by the caller");
        // The same prompt finds all of its whole blocks.
        assert_eq!(c.lookup(&a, usize::MAX).len(), 6);
        // A prompt that differs in its first token shares nothing.
        let mut other = a.clone();
        other[0] = 99_999;
        assert!(c.lookup(&other, usize::MAX).is_empty());
        // One that differs inside block 1 shares block 0 only: a block depends on all before.
        let mut late = a.clone();
        late[100] = 99_999;
        assert_eq!(c.lookup(&late, usize::MAX), vec![(1, 0)]);
        // Inserting a block held already keeps the first value (the same bits by construction).
        c.insert(&b, 0, || Some((2, 0)));
        assert_eq!(c.lookup(&b, 1), vec![(1, 0)]);
        assert_eq!(c.inserted, 6);
    }

    #[test]
    fn the_least_recently_used_blocks_go_first_and_zero_capacity_holds_nothing() {
        let mut c = PrefixCache::new(4);
        let (a, b) = (prompt(&[], 1, 128), prompt(&[], 2, 128));
        c.insert(&a, 0, || Some('a'));
        c.insert(&a, 1, || Some('A'));
        c.insert(&b, 0, || Some('b'));
        c.insert(&b, 1, || Some('B'));
        assert_eq!(c.lookup(&a, usize::MAX), vec!['a', 'A'], "a is used again");
        let d = prompt(&[], 3, 128);
        c.insert(&d, 0, || Some('d'));
        c.insert(&d, 1, || Some('D'));
        assert_eq!(c.len(), 4);
        assert!(c.lookup(&b, usize::MAX).is_empty(), "b was the least recently used");
        assert_eq!(c.lookup(&a, usize::MAX), vec!['a', 'A']);
        assert_eq!(c.lookup(&d, usize::MAX), vec!['d', 'D']);

        let mut off = PrefixCache::new(0);
        off.insert(&a, 0, || Some('a'));
        assert!(off.is_empty() && off.lookup(&a, usize::MAX).is_empty());
    }
}
