//! A session: one conversation's KV cache, scratch buffers and thread pool over a shared model.
//!
//! Tokens are evaluated in batches of up to `n_batch` (512 by default): each block runs on the
//! whole batch as a matrix (one [`kernels::matmul`] per weight), attention is causal inside the
//! batch and reads the cache, and logits are computed only for the positions asked for, a few
//! rows at a time, and handed to a callback (so perplexity over 512 positions of a 262k-token
//! vocabulary never holds them all).
//!
//! Every buffer is allocated when the session is created; evaluating tokens allocates nothing
//! once the matmul scratch has grown to its working size. Work is split over the session's own
//! rayon pool, and each output element is computed by one thread in a fixed order, so results
//! are bit-identical for any thread count.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::GgmlType;
use crate::kernels::{self, MatMulScratch};
use crate::kv_cache::KvCache;
use crate::ops::attention::{
    AttnParams, attend_many, hadamard_rotate, kv_rotation, quantize_query, query_bytes, row_to_f32,
};
use crate::ops::norm::rms_norm_rows;
use crate::ops::rope::{RopeParams, rope_apply_heads, rope_cache};

use super::cpuload::{CpuIdle, CpuTimes, PoolWaits};
use super::{Config, MatWeight, Model, ModelError};

/// Context used when the caller does not choose one (capped by the training context).
pub const DEFAULT_N_CTX: usize = 4096;
/// Tokens per forward batch unless the caller chooses otherwise.
pub const DEFAULT_N_BATCH: usize = 512;
/// Logit rows computed per output matmul.
const LOGITS_GROUP: usize = 32;
/// Queries per attention work item (all query heads of one KV head over a few tokens).
const ATTN_QUERIES: usize = 64;
/// Attention with fewer multiply-adds than this (queries x keys x (key + value size)) runs on
/// one thread.
const SERIAL_ATTN_WORK: usize = 1 << 17;

/// How to create a [`Session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Positions the KV cache holds. `None`: the training context, at most [`DEFAULT_N_CTX`].
    pub n_ctx: Option<usize>,
    /// Allow `n_ctx` beyond the model's training context (quality degrades there).
    pub allow_beyond_training_context: bool,
    /// KV cache element type: `F32`, `F16`, `Q8_0` or `Q4_0`.
    pub kv_type: GgmlType,
    /// Worker threads; 0 means all available cores.
    pub n_threads: usize,
    /// Largest number of tokens run through the model at once.
    pub n_batch: usize,
    /// With a quantized KV cache (`Q8_0`, `Q4_0`), rotate queries, keys and values by a
    /// Walsh-Hadamard transform before they are stored and rotate the attention output back,
    /// as llama.cpp does by default (its `LLAMA_ATTN_ROT_DISABLE=1` turns it off): scores are
    /// unchanged, quantization error is much smaller. No effect on `F32`/`F16` caches.
    pub kv_rotation: bool,
    /// With several threads, run single-token steps (the decode loop) on a one-thread pool
    /// while another process holds a core, and on the session's pool otherwise. When a core
    /// is taken, a thread of the pool can be descheduled in the middle of a step and every
    /// step waits for it: one thread is then faster than two. On Linux the choice reads the
    /// scheduler's statistics (how long the pool's workers waited for a CPU; how idle the
    /// other CPUs are while one thread runs), so a busy core is seen without trying it;
    /// timing the steps on both pools decides the rest (when two threads gain little) and
    /// everything elsewhere. Batches (prompts) always use the session's pool. Results are
    /// bit-identical either way (see the module docs); only the speed differs.
    pub adaptive_threads: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_ctx: None,
            allow_beyond_training_context: false,
            kv_type: GgmlType::F16,
            n_threads: 0,
            n_batch: DEFAULT_N_BATCH,
            kv_rotation: true,
            adaptive_threads: true,
        }
    }
}

/// Runs a shared [`Model`]: owns the KV cache, scratch buffers and a thread pool.
pub struct Session {
    model: Arc<Model>,
    pool: rayon::ThreadPool,
    kv: KvCache,
    scratch: Scratch,
    n_past: usize,
    n_batch: usize,
    /// Hadamard block sizes for keys/queries and values (see [`SessionOptions::kv_rotation`]).
    rot: (Option<usize>, Option<usize>),
    /// `[n_vocab]`: the logits [`Session::decode`] returns.
    last_logits: Vec<f32>,
    /// Pool choice for single-token steps ([`SessionOptions::adaptive_threads`]).
    adapt: Option<Adapt>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_ctx", &self.kv.n_ctx())
            .field("n_past", &self.n_past)
            .field("kv_type", &self.kv.dtype())
            .field("n_threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

/// Buffers of one forward batch (`nb` = `n_batch`).
pub(crate) struct Scratch {
    /// `[nb][n_embd]` residual stream.
    pub(crate) x: Vec<f32>,
    /// `[nb][n_embd]` normalized input of a block.
    pub(crate) xn: Vec<f32>,
    /// `[nb][n_head * head_dim_k]` queries.
    pub(crate) q: Vec<f32>,
    /// `[nb][n_head_kv * head_dim_k]` keys.
    pub(crate) k: Vec<f32>,
    /// `[nb][n_head_kv * head_dim_v]` values.
    pub(crate) v: Vec<f32>,
    /// `[nb][n_head * head_dim_v]` attention output.
    pub(crate) att: Vec<f32>,
    /// `[n_head_kv][nb][n_head / n_head_kv][head_dim_v]` attention output grouped by KV head.
    pub(crate) att_g: Vec<f32>,
    /// `[nb][n_head]` queries in the KV cache's partner type (bytes, 4-aligned storage).
    pub(crate) qq: Vec<u32>,
    /// `[nb][n_embd]` block output before the residual add.
    pub(crate) o: Vec<f32>,
    /// `[nb][n_ff]` FFN gate.
    pub(crate) gate: Vec<f32>,
    /// `[nb][n_ff]` FFN up projection.
    pub(crate) up: Vec<f32>,
    /// `[LOGITS_GROUP][n_vocab]` logits.
    pub(crate) logits: Vec<f32>,
    /// `[n_rot]` RoPE cos/sin of one position.
    pub(crate) rope: Vec<f32>,
    /// Quantized activations of the matmuls.
    pub(crate) mm: MatMulScratch,
}

/// One forward batch in flight: what a layer function reads and writes.
pub(crate) struct Forward<'a> {
    /// The model's hyperparameters.
    pub(crate) cfg: &'a Config,
    /// The model file's bytes (weights are ranges of it).
    pub(crate) bytes: &'a [u8],
    /// The session's KV cache.
    pub(crate) kv: &'a mut KvCache,
    /// Batch buffers.
    pub(crate) s: &'a mut Scratch,
    /// Tokens in the batch.
    pub(crate) n: usize,
    /// Position of the batch's first token.
    pub(crate) pos0: usize,
    /// Hadamard block sizes for queries/keys and values ([`SessionOptions::kv_rotation`]).
    pub(crate) rot: (Option<usize>, Option<usize>),
}

impl Session {
    /// Creates a session: thread pool, KV cache for the whole context, scratch buffers.
    pub fn new(model: Arc<Model>, opts: &SessionOptions) -> crate::Result<Session> {
        let cfg = model.config();
        let n_ctx = match opts.n_ctx {
            None => cfg.n_ctx_train.min(DEFAULT_N_CTX),
            Some(0) => {
                return Err(ModelError::InvalidOption("n_ctx must be at least 1".into()).into());
            }
            Some(n) if n > cfg.n_ctx_train && !opts.allow_beyond_training_context => {
                return Err(ModelError::ContextTooLarge {
                    requested: n,
                    limit: cfg.n_ctx_train,
                }
                .into());
            }
            Some(n) => n,
        };
        if opts.n_batch == 0 {
            return Err(ModelError::InvalidOption("n_batch must be at least 1".into()).into());
        }
        let n_batch = opts.n_batch.min(n_ctx);
        let n_threads = match opts.n_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let adaptive = opts.adaptive_threads && n_threads > 1;
        // Each worker of the session pool registers its scheduler statistics (run-queue wait),
        // which tell the pool choice when another process holds a core.
        let waits = [PoolWaits::new(n_threads), PoolWaits::new(1)];
        let mut builder = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .thread_name(|i| format!("kiln-{i}"));
        if adaptive {
            let w = waits[0].clone();
            builder = builder.start_handler(move |_| w.register());
        }
        let pool = builder
            .build()
            .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
        let kv = KvCache::new(
            opts.kv_type,
            cfg.n_layer,
            n_ctx,
            cfg.n_head_kv,
            cfg.head_dim_k,
            cfg.head_dim_v,
        )?;
        let scratch = Scratch::new(cfg, n_batch, opts.kv_type)?;
        let last_logits = alloc_f32(cfg.n_vocab, 1, "logits")?;
        // Created here, not on first use: the decode loop allocates nothing.
        let adapt = if adaptive {
            let w = waits[1].clone();
            let single = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "kiln-single".into())
                .start_handler(move |_| w.register())
                .build()
                .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
            Some(Adapt::new(single, n_threads, waits, CpuIdle::new()))
        } else {
            None
        };
        let rot = if opts.kv_rotation {
            kv_rotation(opts.kv_type, cfg.head_dim_k, cfg.head_dim_v)
        } else {
            (None, None)
        };
        Ok(Session {
            model,
            pool,
            kv,
            scratch,
            n_past: 0,
            n_batch,
            rot,
            last_logits,
            adapt,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Positions the session can hold.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// Positions evaluated so far (the next token goes at this position).
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// The KV cache element type.
    pub fn kv_type(&self) -> GgmlType {
        self.kv.dtype()
    }

    /// Worker threads of the session's pool.
    pub fn n_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Forgets positions `n..`: the next token goes at `min(n, n_past)`.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Forgets everything (same as `truncate(0)`).
    pub fn clear(&mut self) {
        self.n_past = 0;
    }

    /// Evaluates `tokens` at the next positions and returns the logits of the last one
    /// (`[n_vocab]`).
    pub fn decode(&mut self, tokens: &[u32]) -> crate::Result<&[f32]> {
        if tokens.is_empty() {
            return Err(ModelError::InvalidOption("decode needs at least one token".into()).into());
        }
        let mut last = std::mem::take(&mut self.last_logits);
        let n = tokens.len();
        let r = self.eval(tokens, n - 1..n, |_, l| {
            last.copy_from_slice(l);
            Ok(())
        });
        self.last_logits = last;
        r?;
        Ok(&self.last_logits)
    }

    /// Evaluates `tokens` at the next positions. For each index `i` in `outputs` (indices into
    /// `tokens`, in order) `sink(i, logits)` receives the logits (`[n_vocab]`) predicting the
    /// token after `tokens[i]`.
    ///
    /// On error the positions of the batches already evaluated stay in the cache.
    pub fn eval<F>(
        &mut self,
        tokens: &[u32],
        outputs: Range<usize>,
        mut sink: F,
    ) -> crate::Result<()>
    where
        F: FnMut(usize, &[f32]) -> crate::Result<()>,
    {
        if outputs.start > outputs.end || outputs.end > tokens.len() {
            return Err(ModelError::InvalidOption(format!(
                "output range {outputs:?} is not within the {} tokens",
                tokens.len()
            ))
            .into());
        }
        let n_ctx = self.kv.n_ctx();
        let needed = self.n_past.saturating_add(tokens.len());
        if needed > n_ctx {
            return Err(ModelError::ContextFull { needed, n_ctx }.into());
        }
        let n_vocab = self.model.config().n_vocab;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::InvalidToken { token, n_vocab }.into());
        }
        let Session {
            model,
            pool,
            kv,
            scratch,
            n_past,
            n_batch,
            rot,
            adapt,
            ..
        } = self;
        for (c, chunk) in tokens.chunks(*n_batch).enumerate() {
            let first = c * *n_batch;
            let out_lo = outputs.start.clamp(first, first + chunk.len()) - first;
            let out_hi = outputs.end.clamp(first, first + chunk.len()) - first;
            // Single-token steps (the decode loop) run on the pool `Adapt` chooses; batches
            // on the session pool, which `Adapt` still watches for contention.
            let one = chunk.len() == 1;
            let single = adapt.as_ref().is_some_and(|a| one && a.use_single());
            if let Some(a) = adapt.as_mut() {
                a.before_step(single);
            }
            let p = match adapt.as_ref() {
                Some(a) if single => &a.single,
                _ => &*pool,
            };
            let t0 = adapt.as_ref().map(|_| Instant::now());
            let r = forward_batch(
                model,
                p,
                kv,
                scratch,
                chunk,
                *n_past,
                *rot,
                out_lo..out_hi,
                &mut |i, l| sink(first + i, l),
            );
            if let (Some(t0), Some(a), true) = (t0, adapt.as_mut(), r.is_ok()) {
                let end = Instant::now();
                let secs = end.duration_since(t0).as_secs_f64();
                if one {
                    a.step(single, secs, end);
                } else {
                    a.record_batch(secs);
                }
            }
            r?;
            *n_past += chunk.len();
        }
        Ok(())
    }
}

/// The run-queue wait of one pool's workers, read around its steps.
struct Watch {
    waits: PoolWaits,
    /// Threads of the pool.
    threads: usize,
    /// Total wait (ns) at the last reading, and how many workers it covered.
    last: Option<(u64, usize)>,
    /// Whether `last` was read right after this pool's last step (no other pool ran since);
    /// if not, it is read again before the next step (workers spinning down after their last
    /// step may have waited since).
    fresh: bool,
}

impl Watch {
    fn new(waits: PoolWaits, threads: usize) -> Watch {
        Watch {
            waits,
            threads,
            last: None,
            fresh: false,
        }
    }

    /// Before a step on this pool.
    fn before(&mut self) {
        if !self.fresh {
            self.last = self.waits.total();
            self.fresh = true;
        }
    }

    /// Takes the workers' total wait (`now`, from [`PoolWaits::total`]) after a step of
    /// `secs` on this pool: the fraction of their time they waited for a CPU (`None`:
    /// unknown, e.g. not every worker registered).
    fn share(&mut self, now: Option<(u64, usize)>, secs: f64) -> Option<f64> {
        let last = std::mem::replace(&mut self.last, now);
        self.fresh = true;
        match (last, now) {
            (Some((w0, n0)), Some((w1, n1))) if n0 == n1 && n1 == self.threads && secs > 0.0 => {
                let waited = w1.saturating_sub(w0) as f64 * 1e-9;
                Some(waited / (secs * self.threads as f64))
            }
            _ => None,
        }
    }
}

/// Chooses the pool of single-token steps: the session's pool or a one-thread pool
/// ([`SessionOptions::adaptive_threads`]).
///
/// Two kinds of evidence, where the system offers them (Linux `/proc`, read by
/// [`super::cpuload`]):
/// - *Contention, seen directly.* After every step on the session pool (batches too) the
///   run-queue wait of its workers is read: time they were runnable but another task held
///   their CPU. Waiting more than [`Adapt::WAIT_SURE`] of the step's thread-time (or more
///   than [`Adapt::WAIT_CONTENDED`] on two steps in a row) means another process holds a
///   core; every step then waits for a descheduled worker, so the next single-token steps
///   run on the one-thread pool at once, without timing a try (even after the very first,
///   cold step, or after a prompt batch).
/// - *Free cores, seen directly.* On the one-thread pool, the idle time of the CPUs this
///   process may use is read over windows of [`Adapt::WINDOW`]. The session pool is tried
///   again only after a window in which the other cores were mostly idle (or, in case the
///   other process is niced and would yield, after [`Adapt::BUSY_EVERY`] steps), so a busy
///   core costs no tries.
/// - *Oversubscription.* The one-thread pool's worker's wait is read too. When it waits as
///   well (more runnable threads than cores, e.g. several busy processes), two threads get a
///   larger share of the CPUs and may win despite their waits: then tries are not held back,
///   a try of the waiting session pool is judged by its time, and once chosen that way only
///   timing leaves it.
///
/// Timing decides the rest, and everything where the statistics cannot be read. The pool in
/// use is timed on every step (an exponential average; the very first step, which pays for
/// cold caches, is not counted); the other one is tried for one step after `every` steps
/// (and, with the statistics, only when the rules above allow it). A try that is faster (the
/// session pool by [`Adapt::MARGIN`], or by [`Adapt::MARGIN_CLEAR`] when its workers did not
/// wait; the one-thread pool at all: when two threads gain little and nothing shows that the
/// cores are free, one thread is the choice that cannot collapse when another process takes
/// a core; but by [`Adapt::MARGIN_SINGLE_CLEAR`] when the session pool's last step was clear)
/// is confirmed by a second try on the next step, and only two wins in a row switch pools
/// (one lucky step must not move the session); after a switch the other pool is tried again
/// soon. A try that loses, or a try of the session pool whose workers waited (unless the one
/// thread waits too), multiplies the
/// interval by [`Adapt::BACKOFF`] up to [`Adapt::MAX_EVERY`], so in a steady state almost
/// every step runs on the better pool. Without the statistics, a step more than twice as
/// slow as the average (another process took a core) brings the next try forward, except
/// right after a try (the other pool's workers may still be spinning then), and the first
/// try comes after [`Adapt::FIRST_TRY`] steps instead of [`Adapt::FIRST_EVERY`].
struct Adapt {
    single: rayon::ThreadPool,
    /// Average seconds per step: `[session pool, one-thread pool]` (0: not measured yet).
    est: [f64; 2],
    /// Whether steps use the one-thread pool now.
    single_now: bool,
    /// Steps since the other pool was last tried.
    since: u32,
    /// Steps between tries.
    every: u32,
    /// The last try won: the next step tries the other pool again.
    confirm: bool,
    /// Whether a step was recorded yet (the first one is not timed).
    warm: bool,
    /// Run-queue wait of the workers: `[session pool, one-thread pool]`.
    watch: [Watch; 2],
    /// The last step on the session pool was contended (a second one in a row leaves it).
    strike: bool,
    /// The last step on the session pool was clear (its workers hardly waited).
    clear: bool,
    /// Average wait share of the one-thread pool's worker since the last switch to it: when
    /// it waits too, the machine is oversubscribed (more runnable threads than cores), the
    /// session pool's larger share of the CPUs may win despite its waits, and timing decides.
    crowd: f64,
    /// The session pool was chosen by timing although contended (oversubscribed machine):
    /// only timing leaves it.
    crowded_choice: bool,
    /// Idle time of the allowed CPUs (`None` where it cannot be read).
    idle: Option<CpuIdle>,
    /// Whether idle windows are measured (`idle` could be read when the session was created).
    has_idle: bool,
    /// Start of the current idle window (on the one-thread pool): when, and the totals then.
    window: Option<(Instant, CpuTimes)>,
    /// Whether the last complete window saw enough idle CPU time for the session pool's
    /// other workers (`None`: no window since the last switch or try).
    free: Option<bool>,
}

impl Adapt {
    /// Steps before the first try without the scheduler statistics.
    const FIRST_TRY: u32 = 2;
    const FIRST_EVERY: u32 = 16;
    const MAX_EVERY: u32 = 256;
    /// A lost try multiplies the interval by this: a try of a pool that shares its cores with
    /// another process can cost several steps, so they must become rare quickly.
    const BACKOFF: u32 = 4;
    /// The other pool must be this much faster (time ratio) to be chosen.
    const MARGIN: f64 = 0.85;
    /// Time ratio the one-thread pool must beat to be chosen.
    const MARGIN_SINGLE: f64 = 1.0;
    /// Time ratio a try of the session pool must beat when its workers hardly waited (less
    /// than [`Adapt::WAIT_CLEAR`]): with direct evidence that no other process holds a core,
    /// a small gain is enough. (A short blip that moved the session to one thread would
    /// otherwise keep it there whenever two threads gain less than [`Adapt::MARGIN`], as on
    /// a host whose memory bandwidth is shared and busy.)
    const MARGIN_CLEAR: f64 = 0.95;
    /// Wait fraction below which a step on the session pool counts as clear.
    const WAIT_CLEAR: f64 = 0.03;
    /// Time ratio a try of the one-thread pool must beat when the session pool's last step
    /// was clear: nothing shows another process on the cores (were one to take a core, the
    /// waits would move the session at once), so only a clear gain is worth one thread. (On
    /// a host whose memory bandwidth comes and goes, a try that happens to run in a good
    /// moment would otherwise beat the session pool's average and park decoding on one
    /// thread.)
    const MARGIN_SINGLE_CLEAR: f64 = 0.9;
    /// Run-queue wait of the session pool's workers, as a fraction of the step's time times
    /// the threads, above which the pool counts as contended: a try of it loses, and two
    /// such steps in a row move the session to the one-thread pool.
    const WAIT_CONTENDED: f64 = 0.1;
    /// Wait fraction above which one step is enough (a core held by a busy process makes
    /// the workers wait for 40-80% of the step; a short blip rarely does).
    const WAIT_SURE: f64 = 0.3;
    /// Length of an idle window on the one-thread pool, seconds (`/proc/stat` counts in
    /// 10 ms ticks).
    const WINDOW: f64 = 0.06;
    /// Fraction of the session pool's other workers' CPUs that must have been idle in a
    /// window for a try of the session pool.
    const FREE: f64 = 0.5;
    /// Steps between tries of the session pool while the other cores are busy.
    const BUSY_EVERY: u32 = 1024;

    /// `waits`: the session pool's workers (`threads` of them) and the one-thread pool's.
    fn new(
        single: rayon::ThreadPool,
        threads: usize,
        waits: [PoolWaits; 2],
        idle: Option<CpuIdle>,
    ) -> Adapt {
        let [w0, w1] = waits;
        let has_idle = idle.is_some();
        Adapt {
            single,
            est: [0.0; 2],
            single_now: false,
            since: 0,
            // Without direct evidence of contention the first try comes early: a bench or a
            // short answer is only tens of steps.
            every: if has_idle {
                Self::FIRST_EVERY
            } else {
                Self::FIRST_TRY
            },
            confirm: false,
            warm: false,
            watch: [Watch::new(w0, threads), Watch::new(w1, 1)],
            strike: false,
            clear: false,
            crowd: 0.0,
            crowded_choice: false,
            idle,
            has_idle,
            window: None,
            free: None,
        }
    }

    /// Whether the next step runs on the one-thread pool.
    fn use_single(&self) -> bool {
        let due = self.confirm
            || self.since >= self.every
                && (!self.single_now
                    || !self.has_idle
                    || self.free == Some(true)
                    || self.crowded()
                    || self.since >= Self::BUSY_EVERY);
        self.single_now ^ due
    }

    /// Whether the one-thread pool's worker waits for a CPU too (oversubscribed machine).
    fn crowded(&self) -> bool {
        self.crowd > Self::WAIT_CONTENDED
    }

    /// Judges the wait share of a step on the session pool: whether it was contended
    /// (`None`: unknown), and whether that is enough to leave the pool (a clear wait, or the
    /// second contended step in a row).
    fn judge(&mut self, share: Option<f64>) -> (Option<bool>, bool) {
        let contended = share.map(|s| s > Self::WAIT_CONTENDED);
        self.clear = share.is_some_and(|s| s < Self::WAIT_CLEAR);
        let leave =
            share.is_some_and(|s| s > Self::WAIT_SURE) || contended == Some(true) && self.strike;
        self.strike = contended == Some(true);
        (contended, leave)
    }

    /// Moves single-token steps to the one-thread pool (the session pool is contended).
    fn go_single(&mut self) {
        if !self.single_now {
            self.single_now = true;
            self.since = 0;
            // Tried again as soon as a window sees the other cores idle.
            self.every = Self::FIRST_TRY;
        }
        self.confirm = false;
        self.strike = false;
        self.crowd = 0.0;
        self.crowded_choice = false;
        self.window = None;
        self.free = None;
    }

    /// Before a step on the one-thread pool (`single`) or the session pool.
    fn before_step(&mut self, single: bool) {
        self.watch[usize::from(single)].before();
    }

    /// Records a batch (several tokens, always on the session pool) of `secs`.
    fn record_batch(&mut self, secs: f64) {
        let wait = self.watch[0].waits.total();
        self.record_batch_share(wait, secs);
    }

    /// [`Adapt::record_batch`] with the workers' wait read after it.
    fn record_batch_share(&mut self, wait: Option<(u64, usize)>, secs: f64) {
        let share = self.watch[0].share(wait, secs);
        self.watch[1].fresh = false;
        if self.judge(share).1 && !self.crowded_choice {
            self.go_single();
        }
    }

    /// Whether an idle window ends with a step on the one-thread pool ending at `end` (or a
    /// new one starts): when to read [`CpuIdle`].
    fn window_due(&self, end: Instant) -> bool {
        self.has_idle
            && self
                .window
                .is_none_or(|(t0, _)| end.duration_since(t0).as_secs_f64() >= Self::WINDOW)
    }

    /// Advances the idle window with the totals `cpu` read after a step on the one-thread pool
    /// ending at `end` (read when [`Adapt::window_due`]).
    fn idle_window(&mut self, end: Instant, cpu: Option<CpuTimes>) {
        if !self.window_due(end) {
            return;
        }
        if let Some((_, c0)) = self.window {
            self.free = cpu.and_then(|c1| {
                let want = self.watch[0]
                    .threads
                    .min(c1.cpus as usize)
                    .saturating_sub(1) as f64;
                c1.idle_cpus_since(&c0)
                    .map(|cpus| want > 0.0 && cpus >= Self::FREE * want)
            });
        }
        self.window = cpu.map(|c| (end, c));
    }

    /// Records a finished single-token step (which pool ran it, how long it took, when it
    /// ended), reading the scheduler statistics it needs.
    fn step(&mut self, single: bool, secs: f64, end: Instant) {
        let due = single && self.window_due(end);
        let cpu = self.idle.as_mut().filter(|_| due).and_then(CpuIdle::sample);
        let wait = self.watch[usize::from(single)].waits.total();
        self.record(single, secs, end, wait, cpu);
    }

    /// Records a finished single-token step: which pool ran it, how long it took, when it
    /// ended, and the statistics read after it: the total wait of the pool's workers, the
    /// CPU totals after a step on the one-thread pool that ends a window.
    fn record(
        &mut self,
        single: bool,
        secs: f64,
        end: Instant,
        wait: Option<(u64, usize)>,
        cpu: Option<CpuTimes>,
    ) {
        let (used, cur) = (usize::from(single), usize::from(self.single_now));
        let share = self.watch[used].share(wait, secs);
        self.watch[1 - used].fresh = false;
        let (contended, leave) = if single {
            self.strike = false;
            self.idle_window(end, cpu);
            if let Some(s) = share {
                self.crowd += 0.25 * (s - self.crowd);
            }
            (None, false)
        } else {
            // The one-thread pool's idle window covers only its own steps.
            self.window = None;
            let (contended, leave) = self.judge(share);
            (contended, leave && !self.crowded_choice)
        };
        if !self.warm {
            // Cold caches make the time meaningless, not the wait.
            self.warm = true;
            if leave {
                self.go_single();
            }
            return;
        }
        if used != cur {
            // A try of the other pool.
            self.since = 0;
            let e = &mut self.est[used];
            *e = if *e == 0.0 { secs } else { 0.5 * (*e + secs) };
            let margin = if single && self.clear {
                Self::MARGIN_SINGLE_CLEAR
            } else if single {
                Self::MARGIN_SINGLE
            } else if share.is_some_and(|s| s < Self::WAIT_CLEAR) {
                Self::MARGIN_CLEAR
            } else {
                Self::MARGIN
            };
            // A contended session pool loses unless the one thread waits as well.
            let wins = (contended != Some(true) || self.crowded()) && secs < self.est[cur] * margin;
            if wins && !self.confirm {
                self.confirm = true;
            } else if wins {
                self.confirm = false;
                self.crowded_choice = contended == Some(true);
                self.single_now = single;
                self.est[used] = secs;
                self.every = Self::FIRST_EVERY;
            } else {
                self.confirm = false;
                self.every = (self.every * Self::BACKOFF).min(Self::MAX_EVERY);
                // The next try of the session pool waits for a new idle window.
                self.free = None;
            }
            return;
        }
        if leave {
            self.go_single();
            return;
        }
        self.since += 1;
        let e = &mut self.est[used];
        if *e == 0.0 {
            *e = secs;
            return;
        }
        if self.since == 1 && secs > *e {
            // The step right after a try can be slowed by the other pool's workers, still
            // spinning before they sleep: not a sign that this pool got slower.
            return;
        }
        if secs > 2.0 * *e && contended.is_none() && !self.has_idle {
            self.since = self.since.max(self.every);
        }
        *e += 0.25 * (secs - *e);
    }
}

/// Runs one batch at positions `pos0..` and emits the logits of batch rows `outputs`.
#[allow(clippy::too_many_arguments)]
fn forward_batch(
    model: &Model,
    pool: &rayon::ThreadPool,
    kv: &mut KvCache,
    s: &mut Scratch,
    tokens: &[u32],
    pos0: usize,
    rot: (Option<usize>, Option<usize>),
    outputs: Range<usize>,
    sink: &mut dyn FnMut(usize, &[f32]) -> crate::Result<()>,
) -> crate::Result<()> {
    let cfg = model.config();
    let bytes = model.bytes();
    let (n, e) = (tokens.len(), cfg.n_embd);
    let n_vocab = cfg.n_vocab;
    let group = s.logits.len() / n_vocab;
    // The layers and the first group of logits run in one `install` (one hand-over to the
    // pool per decoded token); the sink runs on the caller's thread between groups.
    let first = group.min(outputs.len());
    pool.install(|| -> crate::Result<()> {
        for (&tok, row) in tokens.iter().zip(s.x.chunks_exact_mut(e)) {
            row_to_f32(
                model.token_embd.dtype,
                model.token_embd.row(bytes, tok as usize),
                row,
            )?;
        }
        if let Some(scale) = model.arch.embedding_scale() {
            for v in &mut s.x[..n * e] {
                *v *= scale;
            }
        }
        let mut fw = Forward {
            cfg,
            bytes,
            kv: &mut *kv,
            s: &mut *s,
            n,
            pos0,
            rot,
        };
        for il in 0..cfg.n_layer {
            model.arch.forward_layer(&mut fw, il)?;
        }
        if first > 0 {
            output_logits(model, s, outputs.start, first)?;
        }
        Ok(())
    })?;

    let mut i = outputs.start;
    while i < outputs.end {
        let g = group.min(outputs.end - i);
        if i > outputs.start {
            pool.install(|| output_logits(model, s, i, g))?;
        }
        for (r, row) in s.logits[..g * n_vocab].chunks_exact(n_vocab).enumerate() {
            sink(i + r, row)?;
        }
        i += g;
    }
    Ok(())
}

/// Logits of batch rows `i..i + g` into `s.logits` (`[g][n_vocab]`): final norm, output
/// projection, soft-capping.
fn output_logits(model: &Model, s: &mut Scratch, i: usize, g: usize) -> crate::Result<()> {
    let cfg = model.config();
    let (e, n_vocab) = (cfg.n_embd, cfg.n_vocab);
    rms_norm_rows(
        &s.x[i * e..(i + g) * e],
        &model.output_norm,
        cfg.rms_eps,
        &mut s.xn[..g * e],
    );
    matmul(
        model.bytes(),
        &model.output,
        &s.xn,
        g,
        &mut s.logits,
        &mut s.mm,
    )?;
    if let Some(cap) = model.arch.final_logit_softcap() {
        for l in &mut s.logits[..g * n_vocab] {
            *l = cap * (*l / cap).tanh();
        }
    }
    Ok(())
}

impl Scratch {
    fn new(cfg: &Config, nb: usize, kv_type: GgmlType) -> Result<Scratch, ModelError> {
        let qb = query_bytes(kv_type, cfg.head_dim_k).ok_or(ModelError::KvHeadSize {
            dtype: kv_type,
            head_dim: cfg.head_dim_k,
        })?;
        let qq_words = checked(checked(nb, cfg.n_head)?, qb)?.div_ceil(4);
        let mut qq = Vec::new();
        qq.try_reserve_exact(qq_words)
            .map_err(|_| ModelError::OutOfMemory {
                what: "activations",
                bytes: qq_words * 4,
            })?;
        qq.resize(qq_words, 0u32);
        let qd = checked(cfg.n_head, cfg.head_dim_k)?;
        let kd = checked(cfg.n_head_kv, cfg.head_dim_k)?;
        let vd = checked(cfg.n_head_kv, cfg.head_dim_v)?;
        let ad = checked(cfg.n_head, cfg.head_dim_v)?;
        Ok(Scratch {
            x: alloc_f32(nb, cfg.n_embd, "activations")?,
            xn: alloc_f32(nb, cfg.n_embd, "activations")?,
            q: alloc_f32(nb, qd, "activations")?,
            k: alloc_f32(nb, kd, "activations")?,
            v: alloc_f32(nb, vd, "activations")?,
            att: alloc_f32(nb, ad, "activations")?,
            att_g: alloc_f32(nb, ad, "activations")?,
            qq,
            o: alloc_f32(nb, cfg.n_embd, "activations")?,
            gate: alloc_f32(nb, cfg.n_ff, "activations")?,
            up: alloc_f32(nb, cfg.n_ff, "activations")?,
            logits: alloc_f32(LOGITS_GROUP.min(nb), cfg.n_vocab, "logits")?,
            rope: alloc_f32(1, cfg.n_rot, "activations")?,
            mm: MatMulScratch::new(),
        })
    }
}

fn checked(a: usize, b: usize) -> Result<usize, ModelError> {
    a.checked_mul(b).ok_or(ModelError::OutOfMemory {
        what: "activations",
        bytes: usize::MAX,
    })
}

/// A zeroed `[rows][cols]` f32 buffer, allocated fallibly.
fn alloc_f32(rows: usize, cols: usize, what: &'static str) -> Result<Vec<f32>, ModelError> {
    let n = rows
        .checked_mul(cols)
        .filter(|n| n.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize));
    let n = n.ok_or(ModelError::OutOfMemory {
        what,
        bytes: usize::MAX,
    })?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| ModelError::OutOfMemory { what, bytes: n * 4 })?;
    v.resize(n, 0.0);
    Ok(v)
}

// ---- steps shared by the architectures ----

/// `out[..n][..w.rows] = x[..n][..w.cols] · wᵀ` with the matrix kernels.
pub(crate) fn matmul(
    bytes: &[u8],
    w: &MatWeight,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    mm: &mut MatMulScratch,
) -> crate::Result<()> {
    let q = w.qmatrix(bytes)?;
    kernels::matmul(&q, &x[..n * w.cols], n, &mut out[..n * w.rows], mm)?;
    Ok(())
}

/// Elements per piece of the row-wise steps of a batch ([`par_rows`]): below two pieces a step
/// stays on the calling thread (one token's rows are a few thousand elements, and a parallel
/// region costs microseconds); above, the pieces go to the pool the step runs on.
const PAR_PIECE: usize = 1 << 14;

/// Runs `f` on pieces of whole rows of `x` and the matching pieces of `y` (both
/// `[rows][width]`; `y` may be empty, then `f` gets empty pieces of it), in parallel on the
/// current pool when there are at least two pieces of [`PAR_PIECE`] elements. `f` must treat
/// each row alone (norms, element-wise functions), so the result does not depend on the
/// split: the same bits for any thread count.
pub(crate) fn par_rows(
    x: &mut [f32],
    y: &[f32],
    width: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    debug_assert!(width > 0 && x.len().is_multiple_of(width));
    debug_assert!(y.is_empty() || y.len() == x.len());
    let piece = (PAR_PIECE / width.max(1)).max(1) * width.max(1);
    if x.len() < 2 * piece {
        f(x, y);
    } else if y.is_empty() {
        x.par_chunks_mut(piece).for_each(|a| f(a, &[]));
    } else {
        x.par_chunks_mut(piece)
            .zip(y.par_chunks(piece))
            .for_each(|(a, b)| f(a, b));
    }
}

/// RMS-normalizes rows in place: `x` is `[rows][w.len()]` (a batch's rows in parallel).
pub(crate) fn norm_rows_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    par_rows(x, &[], w.len(), |a, _| {
        crate::ops::norm::rms_norm_rows_inplace(a, w, eps);
    });
}

/// `x += y` element-wise (a batch's rows in parallel).
pub(crate) fn add_inplace(x: &mut [f32], y: &[f32]) {
    par_rows(x, y, 1, |a, b| {
        for (a, &b) in a.iter_mut().zip(b) {
            *a += b;
        }
    });
}

/// Applies RoPE to the queries and keys of `n` tokens at positions `pos0..`:
/// `q` is `[n][n_head * head_dim]`, `k` is `[n][n_head_kv * head_dim]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope_qk(
    q: &mut [f32],
    k: &mut [f32],
    n: usize,
    head_dim: usize,
    pos0: usize,
    p: &RopeParams,
    freq_factors: Option<&[f32]>,
    cache: &mut [f32],
) {
    let qw = q.len() / n.max(1);
    let kw = k.len() / n.max(1);
    for t in 0..n {
        rope_cache(pos0 + t, p, freq_factors, cache);
        rope_apply_heads(&mut q[t * qw..(t + 1) * qw], head_dim, cache, p.mode);
        rope_apply_heads(&mut k[t * kw..(t + 1) * kw], head_dim, cache, p.mode);
    }
}

/// Stores the batch's keys and values in layer `il` of the cache, then computes causal
/// attention for every (token, head) of the batch into `fw.s.att` (`[n][n_head * head_dim_v]`).
/// `window`: a query at position `p` sees only keys at positions `> p - window`.
///
/// Work items are (KV head, group of consecutive tokens): all query heads of a KV head over up
/// to `ATTN_QUERIES` queries share each dequantized value tile.
pub(crate) fn self_attention(
    fw: &mut Forward<'_>,
    il: usize,
    window: Option<usize>,
    p: &AttnParams,
) -> crate::Result<()> {
    let cfg = fw.cfg;
    let (n, pos0) = (fw.n, fw.pos0);
    let (dk, dv) = (cfg.head_dim_k, cfg.head_dim_v);
    let (n_head, n_kv, gqa) = (cfg.n_head, cfg.n_head_kv, cfg.gqa_ratio());
    let kw = n_kv * dk;
    let vw = n_kv * dv;
    let s = &mut *fw.s;
    let (rot_k, rot_v) = fw.rot;
    if let Some(r) = rot_k {
        hadamard_rotate(&mut s.q[..n * n_head * dk], r);
        hadamard_rotate(&mut s.k[..n * kw], r);
    }
    if let Some(r) = rot_v {
        hadamard_rotate(&mut s.v[..n * vw], r);
    }
    for t in 0..n {
        fw.kv.store(
            il,
            pos0 + t,
            &s.k[t * kw..(t + 1) * kw],
            &s.v[t * vw..(t + 1) * vw],
        )?;
    }
    let layer = fw.kv.layer(il);
    let dtype = layer.dtype();
    // Below about this many multiply-adds (a decode step at a short context), attention
    // runs on the calling thread: splitting it costs more than it saves.
    let serial = n * n_head * (pos0 + n) * (dk + dv) < SERIAL_ATTN_WORK;
    // ggml's flash attention arithmetic for an f16 cache: tiled for large batches (below, by
    // groups of queries), one key at a time else.
    let f16_tiled =
        dtype == GgmlType::F16 && p.softcap.is_none() && n >= crate::ops::flash::TILED_MIN_QUERIES;
    if dtype == GgmlType::F16 && p.softcap.is_none() && !f16_tiled {
        let q = &s.q;
        let rows = &mut s.att[..n * n_head * dv];
        let row = |(r, out): (usize, &mut [f32])| {
            let (t, h) = (r / n_head, r % n_head);
            let pos = pos0 + t;
            let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let qr = &q[r * dk..(r + 1) * dk];
            crate::ops::flash::attend_one_chunk_f16(qr, &layer, h / gqa, lo..pos + 1, p.scale, out);
        };
        if serial {
            rows.chunks_mut(dv).enumerate().for_each(row);
        } else {
            rows.par_chunks_mut(dv).enumerate().for_each(row);
        }
        return Ok(());
    }
    let qb = query_bytes(dtype, dk).ok_or(ModelError::KvHeadSize {
        dtype,
        head_dim: dk,
    })?;

    // Queries in the cache's partner type: [n][n_head][qb] bytes.
    let qq = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut s.qq)[..n * n_head * qb];
    let quantize = |(dst, src): (&mut [u8], &[f32])| -> crate::Result<()> {
        for (d, q) in dst.chunks_exact_mut(qb).zip(src.chunks_exact(dk)) {
            quantize_query(dtype, q, d)?;
        }
        Ok(())
    };
    if f16_tiled {
        // The tiled kernel takes the f32 queries.
    } else if serial {
        qq.chunks_mut(n_head * qb)
            .zip(s.q.chunks(n_head * dk))
            .try_for_each(quantize)?;
    } else {
        qq.par_chunks_mut(n_head * qb)
            .zip(s.q.par_chunks(n_head * dk))
            .try_for_each(quantize)?;
    }
    let qq = &*qq;
    let q = &s.q;

    // Attention into [n_kv][n][gqa][dv], one work item per (KV head, token group).
    let tokens_per_item = (ATTN_QUERIES / gqa).max(1);
    let per_head = n * gqa * dv;
    let item = |g: usize, c: usize, out: &mut [f32]| {
        let t0 = c * tokens_per_item;
        let query = |i: usize| {
            let t = t0 + i / gqa;
            let h = g * gqa + i % gqa;
            let pos = pos0 + t;
            let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let at = (t * n_head + h) * qb;
            (&qq[at..at + qb], lo..pos + 1)
        };
        if f16_tiled {
            let query = |i: usize| {
                let (t, h) = (t0 + i / gqa, g * gqa + i % gqa);
                let r = (t * n_head + h) * dk;
                (&q[r..r + dk], query(i).1)
            };
            crate::ops::flash::attend_tiled_f16_many(
                &layer,
                g,
                out.len() / dv,
                query,
                p.scale,
                out,
            );
            return Ok(());
        }
        attend_many(&layer, g, out.len() / dv, query, p, out)
    };
    let heads = &mut s.att_g[..n_kv * per_head];
    if serial {
        for (g, og) in heads.chunks_mut(per_head).enumerate() {
            for (c, out) in og.chunks_mut(tokens_per_item * gqa * dv).enumerate() {
                item(g, c, out)?;
            }
        }
    } else {
        heads
            .par_chunks_mut(per_head)
            .enumerate()
            .try_for_each(|(g, og)| {
                og.par_chunks_mut(tokens_per_item * gqa * dv)
                    .enumerate()
                    .try_for_each(|(c, out)| item(g, c, out))
            })?;
    }
    // Back to [n][n_head][dv].
    for g in 0..n_kv {
        for t in 0..n {
            let src = &s.att_g[(g * n + t) * gqa * dv..(g * n + t + 1) * gqa * dv];
            let h0 = (t * n_head + g * gqa) * dv;
            s.att[h0..h0 + gqa * dv].copy_from_slice(src);
        }
    }
    if let Some(r) = rot_v {
        hadamard_rotate(&mut s.att[..n * n_head * dv], r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_thread_pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
    }

    /// An `Adapt` for a two-thread session pool, without scheduler statistics (readings are
    /// fed by hand in the tests that use them).
    fn adapt() -> Adapt {
        Adapt::new(
            one_thread_pool(),
            2,
            [PoolWaits::new(2), PoolWaits::new(1)],
            None,
        )
    }

    /// Records a step without scheduler statistics.
    fn rec(a: &mut Adapt, single: bool, secs: f64) {
        a.record(single, secs, Instant::now(), None, None);
    }

    #[test]
    fn par_rows_matches_one_pass_for_any_split() {
        // Row-wise work on a batch: sizes below two pieces (one pass), exactly two, and a
        // ragged number of pieces, with and without a second operand, on 1 and 3 threads.
        let width = 640;
        let f = |a: &mut [f32], b: &[f32]| {
            for (i, row) in a.chunks_exact_mut(width).enumerate() {
                let s: f32 = row.iter().sum();
                for (j, v) in row.iter_mut().enumerate() {
                    *v = *v * s + b.get(i * width + j).copied().unwrap_or(0.5);
                }
            }
        };
        for rows in [1, 25, 50, 51, 130] {
            let x: Vec<f32> = (0..rows * width).map(|i| (i % 97) as f32 * 0.01).collect();
            let y: Vec<f32> = (0..rows * width).map(|i| (i % 13) as f32).collect();
            for second in [&y[..], &[][..]] {
                let mut want = x.clone();
                f(&mut want, second);
                for threads in [1, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut got = x.clone();
                    pool.install(|| par_rows(&mut got, second, width, f));
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "rows {rows}, threads {threads}, second operand {}",
                        !second.is_empty()
                    );
                }
            }
        }
    }

    #[test]
    fn adapt_switches_to_the_faster_pool_and_backs_off() {
        // Timing alone (no scheduler statistics, as where /proc cannot be read).
        let mut a = adapt();
        assert_eq!(a.every, Adapt::FIRST_TRY);
        let every = Adapt::FIRST_EVERY;
        // The first step (cold caches) is not counted, however slow.
        assert!(!a.use_single());
        rec(&mut a, false, 1.0);
        for _ in 0..Adapt::FIRST_TRY {
            assert!(!a.use_single());
            rec(&mut a, false, 0.010);
        }
        // Time to try the one-thread pool (early, the first time): clearly faster, which a
        // second try confirms, so it is chosen.
        assert!(a.use_single());
        rec(&mut a, true, 0.005);
        assert!(!a.single_now && a.use_single());
        rec(&mut a, true, 0.005);
        assert!(a.single_now && a.use_single());
        for _ in 0..every {
            rec(&mut a, true, 0.005);
        }
        // The session pool is tried again, is slower: the interval grows.
        assert!(!a.use_single());
        rec(&mut a, false, 0.0055);
        assert!(a.single_now);
        assert_eq!(a.every, Adapt::BACKOFF * every);
        // A slow step right after a try (the other pool's workers still spinning) is ignored.
        rec(&mut a, true, 0.02);
        assert!(a.use_single());
        assert_eq!(a.est[1], 0.005);
        for _ in 0..3 {
            assert!(a.use_single());
            rec(&mut a, true, 0.005);
        }
        // Later, a step twice as slow as usual brings the next try forward.
        rec(&mut a, true, 0.02);
        assert!(!a.use_single());
        // Not faster by the margin (the slow step raised the average to 8.75 ms): stay.
        rec(&mut a, false, 0.008);
        assert!(a.single_now);
        let every = (Adapt::BACKOFF * Adapt::BACKOFF * every).min(Adapt::MAX_EVERY);
        assert_eq!(a.every, every);
        // One lucky step of the other pool is not enough: the confirming try loses.
        for _ in 0..a.every {
            rec(&mut a, true, 0.005);
        }
        assert!(!a.use_single());
        rec(&mut a, false, 0.002);
        assert!(a.single_now && !a.use_single());
        rec(&mut a, false, 0.009);
        assert!(a.single_now && a.use_single());
        assert_eq!(a.every, (Adapt::BACKOFF * every).min(Adapt::MAX_EVERY));
    }

    /// Steps with scheduler statistics fed by hand: the session pool workers' total wait,
    /// the CPU totals and a clock.
    struct Fed {
        a: Adapt,
        /// Total wait so far, ns: `[session pool's two workers, one-thread pool's worker]`.
        wait: [u64; 2],
        /// CPU totals so far (two CPUs).
        cpu: CpuTimes,
        t: Instant,
    }

    impl Fed {
        fn new() -> Fed {
            let mut a = adapt();
            // As if both files could be read.
            a.has_idle = true;
            a.every = Adapt::FIRST_EVERY;
            a.watch[0].last = Some((0, 2));
            a.watch[0].fresh = true;
            let cpu = CpuTimes {
                idle: 0,
                total: 0,
                cpus: 2,
            };
            Fed {
                a,
                wait: [0; 2],
                cpu,
                t: Instant::now(),
            }
        }

        /// One step of `secs` on the pool `Adapt` chooses, whose workers wait `waited`
        /// seconds in all; on the one-thread pool the other CPU is idle for `idle` of the
        /// step's time (clock ticks of 1 ms here). Returns the pool used.
        fn step(&mut self, secs: f64, waited: f64, idle: f64) -> bool {
            let single = self.a.use_single();
            self.t += std::time::Duration::from_secs_f64(secs);
            let ms = (secs * 1e3) as u64;
            self.cpu.total += 2 * ms;
            let (p, workers) = if single { (1, 1) } else { (0, 2) };
            let cpu = if single {
                self.cpu.idle += (idle * secs * 1e3) as u64;
                self.a.window_due(self.t).then_some(self.cpu)
            } else {
                None
            };
            // What `Adapt::before_step` (`Watch::before`) reads.
            let w = &mut self.a.watch[p];
            if !w.fresh {
                w.last = Some((self.wait[p], workers));
                w.fresh = true;
            }
            self.wait[p] += (waited * 1e9) as u64;
            let wait = Some((self.wait[p], workers));
            self.a.record(single, secs, self.t, wait, cpu);
            single
        }
    }

    #[test]
    fn adapt_sees_contention_and_free_cores_directly() {
        let mut f = Fed::new();
        // The first step (cold) is slow, but its workers waited 30 of 2 x 40 ms for a CPU:
        // another process holds a core, so the next steps use one thread, without a try.
        assert!(!f.step(0.040, 0.030, 0.0));
        assert!(f.a.single_now && f.a.use_single());
        // The other core stays busy (no idle time in any window): no try of the session
        // pool, however long (until BUSY_EVERY).
        for _ in 0..Adapt::BUSY_EVERY {
            assert!(f.step(0.006, 0.0, 0.0));
        }
        assert_eq!(f.a.free, Some(false));
        // Rarely, the session pool is tried anyway (the other process may be niced); its
        // workers wait again: the try loses at once and the interval grows.
        assert!(!f.step(0.030, 0.020, 0.0));
        assert!(f.a.single_now);
        assert_eq!(f.a.every, Adapt::FIRST_TRY * Adapt::BACKOFF);
        // The other core frees up: after the next idle window and the interval, the
        // session pool is tried; without waiting it is clearly faster, which a second try
        // confirms.
        let mut n = 0;
        while f.a.use_single() {
            f.step(0.006, 0.0, 1.0);
            n += 1;
            assert!(n <= f.a.every + 20, "no try after {n} steps");
        }
        assert!(n >= f.a.every);
        assert!(!f.step(0.004, 0.0001, 0.0));
        assert!(!f.step(0.004, 0.0001, 0.0));
        assert!(!f.a.single_now && !f.a.use_single());
        // A short blip: one step waits a little (15% of 2 x 5 ms), the pool stays.
        assert!(!f.step(0.005, 0.0015, 0.0));
        assert!(!f.step(0.004, 0.0001, 0.0));
        // Two such steps in a row move the session to one thread.
        assert!(!f.step(0.005, 0.0015, 0.0));
        assert!(!f.step(0.005, 0.0015, 0.0));
        assert!(f.a.single_now);
        // The other core is free again: back to the session pool after the next window.
        while f.a.use_single() {
            assert!(f.step(0.006, 0.0, 1.0));
        }
        assert!(!f.step(0.004, 0.0001, 0.0));
        assert!(!f.step(0.004, 0.0001, 0.0));
        assert!(!f.a.single_now);
        // A busy loop starts: the next step's workers wait 40% of the time, and one thread
        // takes over at once.
        assert!(!f.step(0.004, 0.0001, 0.0));
        assert!(!f.step(0.025, 0.020, 0.0));
        assert!(f.a.single_now && f.a.use_single());
        // ... and a busy core during the first window keeps it there.
        for _ in 0..100 {
            assert!(f.step(0.006, 0.0, 0.1));
        }
        assert_eq!(f.a.free, Some(false));
    }

    #[test]
    fn adapt_returns_to_a_clear_session_pool_on_a_small_gain() {
        let mut f = Fed::new();
        for _ in 0..4 {
            assert!(!f.step(0.010, 0.0, 0.0));
        }
        // A blip: one step's workers wait 35% of the time; one thread takes over.
        assert!(!f.step(0.012, 0.0084, 0.0));
        assert!(f.a.single_now);
        let to_try = |f: &mut Fed| {
            let mut n = 0;
            while f.a.use_single() {
                assert!(f.step(0.012, 0.0, 1.0));
                n += 1;
                assert!(n <= 300, "no try after {n} steps");
            }
        };
        // Tries of the session pool whose workers hardly wait: 3% faster is not enough...
        to_try(&mut f);
        assert!(!f.step(0.0117, 0.0001, 0.0));
        assert!(f.a.single_now && f.a.use_single());
        // ... nor 8% faster while the workers wait 5% of the time (not clear) ...
        to_try(&mut f);
        assert!(!f.step(0.011, 0.0011, 0.0));
        assert!(f.a.single_now);
        // ... but 8% faster without waiting, twice, is.
        to_try(&mut f);
        assert!(!f.step(0.011, 0.0001, 0.0));
        assert!(!f.step(0.011, 0.0001, 0.0));
        assert!(!f.a.single_now);
    }

    #[test]
    fn adapt_keeps_a_clear_session_pool_unless_one_thread_is_clearly_faster() {
        let mut f = Fed::new();
        let to_try = |f: &mut Fed| {
            let mut n = 0;
            while !f.a.use_single() {
                assert!(!f.step(0.010, 0.00005, 0.0));
                n += 1;
                assert!(n <= 300, "no try after {n} steps");
            }
        };
        // The session pool's workers do not wait. One thread 5% faster (a lucky moment on a
        // noisy host) is not enough...
        to_try(&mut f);
        assert!(f.step(0.0095, 0.0, 0.0));
        assert!(!f.a.single_now && !f.a.use_single());
        // ... 15% faster, twice, is.
        to_try(&mut f);
        assert!(f.step(0.0085, 0.0, 0.0));
        assert!(f.step(0.0085, 0.0, 0.0));
        assert!(f.a.single_now);
    }

    #[test]
    fn adapt_on_an_oversubscribed_machine_lets_timing_decide() {
        let mut f = Fed::new();
        // The workers wait half the first step: one thread.
        assert!(!f.step(0.040, 0.040, 0.0));
        assert!(f.a.single_now);
        // The one thread waits too (half its time), no core is idle: the machine is
        // oversubscribed, where the session pool's larger share of the CPUs can win, so it
        // is tried soon, although busy.
        let mut n = 0;
        while f.a.use_single() {
            f.step(0.012, 0.006, 0.0);
            n += 1;
            assert!(n <= Adapt::FIRST_TRY, "no try after {n} steps");
        }
        assert!(f.a.crowded());
        // Its workers wait as well, but it is faster: confirmed, chosen.
        assert!(!f.step(0.008, 0.006, 0.0));
        assert!(!f.step(0.008, 0.006, 0.0));
        assert!(!f.a.single_now && f.a.crowded_choice);
        // Its waits do not move the session back; only timing does.
        for _ in 0..Adapt::FIRST_EVERY {
            assert!(!f.step(0.008, 0.006, 0.0));
        }
        assert!(f.step(0.007, 0.0035, 0.0));
        assert!(f.step(0.007, 0.0035, 0.0));
        assert!(f.a.single_now && !f.a.crowded_choice);
    }

    #[test]
    fn adapt_without_contention_keeps_the_session_pool() {
        let mut f = Fed::new();
        // Workers that hardly wait: the session pool stays; the one-thread pool is tried
        // only after FIRST_EVERY steps (timing: two threads might gain little), loses, and
        // the interval grows.
        for i in 0..=Adapt::FIRST_EVERY {
            assert!(!f.step(0.004, 0.00005, 0.0), "step {i}");
        }
        assert!(f.step(0.006, 0.0, 0.0));
        assert!(!f.a.single_now);
        assert_eq!(f.a.every, Adapt::FIRST_EVERY * Adapt::BACKOFF);
        // A prompt batch whose workers waited moves the next single-token steps to one thread.
        f.a.watch[0].last = Some((f.wait[0], 2));
        f.wait[0] += 80_000_000;
        f.a.record_batch_share(Some((f.wait[0], 2)), 0.1);
        assert!(f.a.single_now && f.a.use_single());
    }

    #[test]
    fn single_token_steps_on_either_pool_are_bit_identical() {
        let model = crate::testing::tiny_model().unwrap();
        let opts = |threads| SessionOptions {
            n_ctx: Some(64),
            n_threads: threads,
            ..SessionOptions::default()
        };
        let mut two = Session::new(model.clone(), &opts(2)).unwrap();
        let mut one = Session::new(model, &opts(1)).unwrap();
        assert!(two.adapt.is_some() && one.adapt.is_none());
        two.decode(&[1, 5, 9]).unwrap();
        one.decode(&[1, 5, 9]).unwrap();
        let mut tok = 7u32;
        for i in 0..24 {
            // Alternate the pools by hand (the timing decides otherwise).
            let a = two.adapt.as_mut().unwrap();
            a.single_now = i % 3 == 0;
            a.since = 0;
            let l2 = two.decode(&[tok]).unwrap().to_vec();
            let l1 = one.decode(&[tok]).unwrap();
            assert_eq!(l2, l1, "step {i}");
            tok = (l1.iter().fold(0u32, |a, v| a.wrapping_add(v.to_bits())) % 200) + 3;
        }
    }
}
