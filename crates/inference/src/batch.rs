//! Continuous batching: the worker thread that runs every request of one model in one llama.cpp context.
//!
//! The context has one KV cache of `kv_cache_tokens` cells shared by up to `max_sequences` sequences (llama.cpp's
//! unified cache: a cell may belong to several sequences, so a shared prefix is stored once). Each step builds
//! one batch: the next token of every sequence that is generating, then prompt tokens of sequences still reading
//! their prompts, shortest prompt first, within a budget; one `decode` computes them all, and each sequence
//! samples its next token with its own sampler chain from its own logits.
//!
//! - **Fairness.** While any sequence is generating, prompts longer than [`PREFILL_WHILE_DECODING`] tokens
//!   are read one chunk of that size a step, so a long document arriving never stalls the others' streams for
//!   more than a chunk; shorter prompts are read whole, so a burst of questions pauses the streams once rather
//!   than once per chunk. Shortest prompt first keeps a short question from waiting behind a long document.
//!   Requests are admitted in arrival order; an idle worker waits [`BURST_WINDOW`] after the first request of
//!   a burst so the burst reads its prompts together.
//! - **Prefix reuse.** A finished sequence's slot keeps its tokens cached. A new request starts from the longest
//!   prefix any slot holds (its own slot's, or one copied from another slot, which costs no memory), so a shared
//!   system prompt or the earlier turns of a conversation are read once.
//! - **Memory cap.** A request is admitted only when the cache has room for its prompt. When generation fills
//!   the cache, idle slots' cached tokens go first; then the youngest sequence is suspended (its cells freed,
//!   its tokens kept) and resumed, by recomputing them, once there is room. Its sampler keeps its state, so
//!   suspension changes nothing in what it generates.
//! - **Cancellation.** A request whose client has gone is dropped at the next step, waiting or running.
//!
//! The worker never blocks on a client: events go over unbounded channels (a stream holds at most one event per
//! generated token, bounded by the context), and it blocks only on its queue when it has nothing to do.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver as JobReceiver;

use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use crate::InferenceError;
use crate::chat::{FinishReason, GenerationEvent, GenerationSummary, Sampling};
use crate::stop::StopFilter;
use crate::structured::{Grammars, OutputFormat};
use crate::utf8::Utf8Decoder;

/// Prompt tokens decoded per step while other sequences are generating: the longest pause a newcomer can put
/// in the others' streams (about a second for a 135M model on two cores). Larger chunks pause the streams
/// fewer times for the same work; this bound keeps a long document from freezing them for its whole prompt.
const PREFILL_WHILE_DECODING: usize = 512;

/// How long an idle worker waits after the first request of a burst for the rest of it, so that requests
/// arriving together read their prompts in one batch instead of the first one's stream pausing for the others.
const BURST_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// A place in the queue: counts the requests accepted but not finished, so [`crate::ChatModel::generate`] can
/// refuse work beyond what the model runs plus what may wait. Dropping it, however the request ends, frees it.
pub(crate) struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// Takes a place if fewer than `limit` are taken.
    pub(crate) fn take(taken: &Arc<AtomicUsize>, limit: usize) -> Option<Ticket> {
        taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < limit).then_some(count + 1)
            })
            .ok()
            .map(|_| Ticket(Arc::clone(taken)))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the worker has done, shared with [`crate::ChatModel::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) running: AtomicUsize,
    pub(crate) tokens_decoded: AtomicU64,
    pub(crate) prompt_tokens_reused: AtomicU64,
    pub(crate) suspensions: AtomicU64,
    pub(crate) steps: AtomicU64,
}

/// A validated request waiting for the worker.
pub(crate) struct Job {
    pub(crate) prompt: Vec<LlamaToken>,
    /// At least 1, and the prompt plus this many tokens fit the request's window.
    pub(crate) max_tokens: u32,
    pub(crate) sampling: Sampling,
    pub(crate) stop: Vec<String>,
    pub(crate) format: OutputFormat,
    pub(crate) events: UnboundedSender<GenerationEvent>,
    pub(crate) ticket: Ticket,
}

/// A request the worker has taken: its sampler, its text filters and the tokens not yet in the cache.
struct Sequence {
    events: UnboundedSender<GenerationEvent>,
    sampler: LlamaSampler,
    /// Tokens of this sequence not yet decoded: the rest of its prompt, or the token it sampled last. Its slot's
    /// cached tokens followed by these are the whole sequence.
    pending: Vec<LlamaToken>,
    decoder: Utf8Decoder,
    stops: StopFilter,
    prompt_tokens: u32,
    completion_tokens: u32,
    max_tokens: u32,
    /// Admission order: the youngest sequence is the first suspended.
    admitted: u64,
    _ticket: Ticket,
}

impl Sequence {
    /// Sends an event; false if the client has gone away.
    fn send(&self, event: GenerationEvent) -> bool {
        self.events.send(event).is_ok()
    }
}

/// One llama.cpp sequence id and what the cache holds for it.
#[derive(Default)]
struct Slot {
    /// The tokens whose keys and values the cache holds for this sequence id, from position 0.
    cached: Vec<LlamaToken>,
    sequence: Option<Sequence>,
    /// When the slot last served a sequence: the least recently used idle cache is dropped first.
    last_used: u64,
}

/// What one sequence put into a batch.
struct Entry {
    slot: usize,
    tokens: usize,
    /// The batch index whose logits the sequence samples from, when its last pending token is in the batch.
    logits: Option<i32>,
}

/// How the worker is set up.
pub(crate) struct WorkerSettings {
    pub(crate) params: LlamaContextParams,
    pub(crate) max_sequences: usize,
    pub(crate) counters: Arc<Counters>,
}

/// Body of the worker thread: creates the context, reports its cache size through `ready`, then serves the
/// queue until the [`crate::ChatModel`] is dropped and the requests it accepted are done.
pub(crate) fn run_worker(
    model: &LlamaModel,
    backend: &LlamaBackend,
    settings: WorkerSettings,
    ready: std::sync::mpsc::Sender<Result<u32, InferenceError>>,
    queue: JobReceiver<Job>,
) {
    let context = match model.new_context(backend, settings.params) {
        Ok(context) => context,
        Err(error) => {
            // The loader is waiting for this; if it is gone there is nobody left to tell.
            let _ = ready.send(Err(InferenceError::Backend(format!(
                "could not create a llama.cpp context: {error}"
            ))));
            return;
        }
    };
    let grammars = match Grammars::new(model) {
        Ok(grammars) => grammars,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let batch_size = context.n_batch() as usize;
    let kv_cache_tokens = context.n_ctx();
    let mut worker = Worker {
        model,
        context,
        batch: LlamaBatch::new(batch_size, 1),
        batch_size,
        kv_cache_tokens: kv_cache_tokens as usize,
        grammars,
        slots: (0..settings.max_sequences.max(1)).map(|_| Slot::default()).collect(),
        waiting: VecDeque::new(),
        suspended: VecDeque::new(),
        clock: 0,
        counters: settings.counters,
    };
    if ready.send(Ok(kv_cache_tokens)).is_err() {
        return;
    }
    worker.serve(&queue);
    tracing::debug!("chat worker stopped");
}

struct Worker<'model> {
    model: &'model LlamaModel,
    context: LlamaContext<'model>,
    batch: LlamaBatch<'static>,
    batch_size: usize,
    kv_cache_tokens: usize,
    grammars: Grammars,
    slots: Vec<Slot>,
    /// Requests taken from the queue, in arrival order, not yet admitted.
    waiting: VecDeque<Job>,
    /// Sequences pushed out of the cache, resumed before any new request is admitted.
    suspended: VecDeque<Sequence>,
    /// Counts admissions and steps; orders sequences by age and caches by use.
    clock: u64,
    counters: Arc<Counters>,
}

impl Worker<'_> {
    fn serve(&mut self, queue: &JobReceiver<Job>) {
        loop {
            let running = self.slots.iter().any(|slot| slot.sequence.is_some());
            if !running && self.waiting.is_empty() && self.suspended.is_empty() {
                match queue.recv() {
                    Ok(job) => {
                        self.waiting.push_back(job);
                        std::thread::sleep(BURST_WINDOW);
                    }
                    Err(_) => return,
                }
            }
            // A closed queue still lets the accepted requests finish; the next idle `recv` ends the loop.
            self.waiting.extend(queue.try_iter());
            self.drop_abandoned();
            self.admit();
            if self.slots.iter().any(|slot| slot.sequence.is_some()) {
                self.step();
            }
            self.publish_running();
        }
    }

    fn publish_running(&self) {
        let running = self.slots.iter().filter(|slot| slot.sequence.is_some()).count();
        self.counters.running.store(running, Ordering::Relaxed);
    }

    /// Forgets requests whose clients have gone: a waiting one costs nothing, a running one frees its slot (its
    /// cached tokens stay, reusable as a prefix).
    fn drop_abandoned(&mut self) {
        self.waiting.retain(|job| !job.events.is_closed());
        self.suspended.retain(|sequence| !sequence.events.is_closed());
        for slot in &mut self.slots {
            if slot
                .sequence
                .as_ref()
                .is_some_and(|sequence| sequence.events.is_closed())
            {
                slot.sequence = None;
                tracing::debug!("client went away; generation stopped");
            }
        }
    }

    /// Cells the running sequences hold or are about to: an upper bound, since shared prefixes count twice.
    fn cells_in_use(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|slot| {
                slot.sequence
                    .as_ref()
                    .map(|sequence| slot.cached.len() + sequence.pending.len())
            })
            .sum()
    }

    /// Gives free slots to suspended sequences, then to waiting requests, while the cache has room for their
    /// tokens. With nothing running, the first always gets in: every request fits the cache alone. A suspended
    /// sequence waits for an eighth of the cache more than it needs, so it is not pushed out again at once.
    fn admit(&mut self) {
        while self.slots.iter().any(|slot| slot.sequence.is_none()) {
            let running = self.slots.iter().any(|slot| slot.sequence.is_some());
            let needed = match (self.suspended.front(), self.waiting.front()) {
                (Some(sequence), _) => sequence.pending.len() + self.kv_cache_tokens / 8,
                (None, Some(job)) => job.prompt.len() + 1,
                (None, None) => return,
            };
            if running && self.cells_in_use() + needed > self.kv_cache_tokens {
                return;
            }
            let sequence = match self.suspended.pop_front() {
                Some(sequence) => sequence,
                None => match self.waiting.pop_front().and_then(|job| self.start(job)) {
                    Some(sequence) => sequence,
                    None => continue,
                },
            };
            self.place(sequence);
        }
    }

    /// Turns a request into a sequence: compiles its output format and tells the client it started. `None` if
    /// the request failed or its client is gone.
    fn start(&mut self, job: Job) -> Option<Sequence> {
        if job.events.is_closed() {
            return None;
        }
        // A schema that cannot be used fails the request before it starts, as a client error.
        let constraint = match self.grammars.sampler(&job.format) {
            Ok(constraint) => constraint,
            Err(error) => {
                let _ = job.events.send(GenerationEvent::Failed(error));
                return None;
            }
        };
        let n_vocab = self.model.n_vocab();
        // The constraint masks first, so sampling only ever picks among tokens that keep the output valid.
        let sampler = match constraint {
            Some(constraint) => LlamaSampler::chain_simple([constraint, job.sampling.sampler(n_vocab)]),
            None => job.sampling.sampler(n_vocab),
        };
        let prompt_tokens = u32::try_from(job.prompt.len()).unwrap_or(u32::MAX);
        if job.events.send(GenerationEvent::Started { prompt_tokens }).is_err() {
            return None;
        }
        self.clock += 1;
        Some(Sequence {
            events: job.events,
            sampler,
            pending: job.prompt,
            decoder: Utf8Decoder::default(),
            stops: StopFilter::new(&job.stop),
            prompt_tokens,
            completion_tokens: 0,
            max_tokens: job.max_tokens,
            admitted: self.clock,
            _ticket: job.ticket,
        })
    }

    /// Puts a sequence in a free slot (there is one), starting from the longest prefix of its tokens any slot
    /// has cached: in place when that slot is idle, else copied, which shares the cells rather than using more.
    fn place(&mut self, mut sequence: Sequence) {
        // At least one token must be decoded, to have logits to sample from.
        let most = sequence.pending.len().saturating_sub(1);
        let (source, reused) = self
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| (index, common_prefix(&slot.cached, &sequence.pending).min(most)))
            .max_by_key(|&(index, reused)| (reused, self.slots[index].sequence.is_none()))
            .unwrap_or((0, 0));
        let in_place = reused > 0 && self.slots[source].sequence.is_none();
        // Otherwise the idle slot whose cache is worth least: empty, or used longest ago.
        let target = if in_place {
            Some(source)
        } else {
            (0..self.slots.len())
                .filter(|&index| self.slots[index].sequence.is_none())
                .min_by_key(|&index| (!self.slots[index].cached.is_empty(), self.slots[index].last_used))
        };
        let Some(target) = target else {
            self.suspended.push_front(sequence);
            return;
        };
        if in_place {
            self.forget(target, reused);
        } else {
            self.forget(target, 0);
            if reused > 0 {
                let copied =
                    self.context
                        .copy_kv_cache_seq(seq_id(source), seq_id(target), Some(0), u32::try_from(reused).ok());
                match copied {
                    Ok(()) => self.slots[target].cached = self.slots[source].cached[..reused].to_vec(),
                    Err(error) => tracing::warn!(%error, "could not share a cached prefix; reading the prompt in full"),
                }
            }
        }
        let reused = self.slots[target].cached.len();
        self.counters
            .prompt_tokens_reused
            .fetch_add(reused as u64, Ordering::Relaxed);
        sequence.pending.drain(..reused);
        self.slots[target].sequence = Some(sequence);
    }

    /// Drops a slot's cached tokens from position `keep` on.
    fn forget(&mut self, slot: usize, keep: usize) {
        let cached = &mut self.slots[slot].cached;
        if cached.len() <= keep {
            return;
        }
        let from = u32::try_from(keep).ok();
        // Removing a sequence's tail always succeeds for a transformer's cache; were it refused, the slot's
        // cache is cleared whole, which always succeeds.
        let removed = self.context.clear_kv_cache_seq(Some(slot_id(slot)), from, None);
        if matches!(removed, Ok(true)) {
            cached.truncate(keep);
        } else {
            self.forget_all(slot);
        }
    }

    /// Fills a batch, decodes it and samples every sequence that has logits. When the cache is full, frees
    /// cells and tries again with a smaller batch.
    fn step(&mut self) {
        loop {
            let entries = match self.fill_batch() {
                Ok(entries) => entries,
                Err(error) => {
                    self.fail_running(&error);
                    return;
                }
            };
            if entries.is_empty() {
                return;
            }
            match self.context.decode(&mut self.batch) {
                Ok(()) => {
                    self.sample(&entries);
                    return;
                }
                // llama.cpp left the cache as it was: make room and retry.
                Err(DecodeError::NoKvCacheSlot) => {
                    if !self.make_room() {
                        self.fail_running("the KV cache cannot hold even one request; raise kv_cache_tokens");
                        return;
                    }
                }
                Err(error) => {
                    self.fail_running(&format!("llama.cpp decode: {error}"));
                    return;
                }
            }
        }
    }

    /// The batch for this step: one token of every generating sequence, then prompt chunks, shortest first.
    fn fill_batch(&mut self) -> Result<Vec<Entry>, String> {
        self.batch.clear();
        let mut entries = Vec::new();
        let mut prefilling = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(sequence) = &slot.sequence else { continue };
            if sequence.pending.len() == 1 {
                let position = slot.cached.len();
                add(&mut self.batch, sequence.pending[0], position, index, true)?;
                entries.push(Entry {
                    slot: index,
                    tokens: 1,
                    logits: Some(self.batch.n_tokens() - 1),
                });
            } else {
                prefilling.push((sequence.pending.len(), index));
            }
        }
        // While others stream, a prompt of up to one chunk is read whole (a burst of short prompts costs the
        // streams one pause, not one per chunk), and longer prompts share one chunk per step between them.
        let decoding = !entries.is_empty();
        let mut budget = self.batch_size.saturating_sub(entries.len());
        let mut long_budget = if decoding { PREFILL_WHILE_DECODING } else { budget };
        prefilling.sort_unstable();
        for (remaining, index) in prefilling {
            let allowed = if decoding && remaining > PREFILL_WHILE_DECODING {
                long_budget.min(budget)
            } else {
                budget
            };
            if allowed == 0 {
                continue;
            }
            let slot = &self.slots[index];
            let Some(sequence) = &slot.sequence else { continue };
            let take = remaining.min(allowed);
            let start = slot.cached.len();
            for (offset, &token) in sequence.pending[..take].iter().enumerate() {
                let last = take == remaining && offset + 1 == take;
                add(&mut self.batch, token, start + offset, index, last)?;
            }
            entries.push(Entry {
                slot: index,
                tokens: take,
                logits: (take == remaining).then(|| self.batch.n_tokens() - 1),
            });
            budget -= take;
            if decoding && remaining > PREFILL_WHILE_DECODING {
                long_budget -= take;
            }
        }
        Ok(entries)
    }

    /// Frees cache cells: an idle slot's cached tokens first, least recently used; then the youngest running
    /// sequence is suspended. False if nothing can be freed.
    fn make_room(&mut self) -> bool {
        let idle = (0..self.slots.len())
            .filter(|&index| self.slots[index].sequence.is_none() && !self.slots[index].cached.is_empty())
            .min_by_key(|&index| self.slots[index].last_used);
        if let Some(index) = idle {
            self.forget(index, 0);
            return true;
        }
        let running = || (0..self.slots.len()).filter(|&index| self.slots[index].sequence.is_some());
        if running().count() < 2 {
            return false;
        }
        let youngest = running().max_by_key(|&index| {
            self.slots[index]
                .sequence
                .as_ref()
                .map_or(0, |sequence| sequence.admitted)
        });
        let Some(index) = youngest else { return false };
        let Some(mut sequence) = self.slots[index].sequence.take() else {
            return false;
        };
        let mut tokens = self.slots[index].cached.clone();
        self.forget_all(index);
        tokens.append(&mut sequence.pending);
        sequence.pending = tokens;
        tracing::debug!(
            tokens = sequence.pending.len(),
            "KV cache full; a sequence is suspended"
        );
        self.counters.suspensions.fetch_add(1, Ordering::Relaxed);
        self.suspended.push_front(sequence);
        true
    }

    /// Drops all of a slot's cached tokens.
    fn forget_all(&mut self, slot: usize) {
        let _ = self.context.clear_kv_cache_seq(Some(slot_id(slot)), None, None);
        self.slots[slot].cached.clear();
    }

    /// After a decode: moves each sequence's decoded tokens into its cache and samples the next token of those
    /// that have logits.
    fn sample(&mut self, entries: &[Entry]) {
        self.clock += 1;
        let decoded: usize = entries.iter().map(|entry| entry.tokens).sum();
        self.counters
            .tokens_decoded
            .fetch_add(decoded as u64, Ordering::Relaxed);
        self.counters.steps.fetch_add(1, Ordering::Relaxed);
        let vocab = self.model.vocab();
        // Streams end only after the running count drops, so a client that sees its summary sees its slot free.
        let mut ended = Vec::new();
        for entry in entries {
            let slot = &mut self.slots[entry.slot];
            slot.last_used = self.clock;
            let Some(sequence) = slot.sequence.as_mut() else {
                continue;
            };
            slot.cached.extend(sequence.pending.drain(..entry.tokens));
            let Some(index) = entry.logits else { continue };
            let token = sequence.sampler.sample(&self.context, index);
            let outcome = if vocab.is_eog(token) {
                Some(FinishReason::Stop)
            } else {
                sequence.completion_tokens += 1;
                let filtered = sequence
                    .stops
                    .push(&sequence.decoder.push(&vocab.token_to_piece(token, false, None)));
                if !filtered.text.is_empty() && !sequence.send(GenerationEvent::Text(filtered.text)) {
                    slot.sequence = None;
                    continue;
                }
                if filtered.stopped {
                    ended.extend(slot.sequence.take().map(|sequence| (sequence, None)));
                    continue;
                }
                (sequence.completion_tokens == sequence.max_tokens).then_some(FinishReason::Length)
            };
            match outcome {
                Some(reason) => ended.extend(slot.sequence.take().map(|sequence| (sequence, Some(reason)))),
                None => sequence.pending.push(token),
            }
        }
        self.publish_running();
        for (sequence, reason) in ended {
            match reason {
                Some(reason) => sequence.finish(reason),
                // The stop string was already cut from the text: nothing is held back.
                None => {
                    sequence.send(GenerationEvent::Done(sequence.summary(FinishReason::Stop)));
                }
            }
        }
    }

    /// Fails every running sequence after an error the cache may not have survived, and empties the cache.
    fn fail_running(&mut self, reason: &str) {
        tracing::warn!(reason, "generation failed");
        for index in 0..self.slots.len() {
            if let Some(sequence) = self.slots[index].sequence.take() {
                sequence.send(GenerationEvent::Failed(InferenceError::Backend(reason.to_owned())));
            }
            self.forget_all(index);
        }
    }
}

impl Sequence {
    fn summary(&self, finish_reason: FinishReason) -> GenerationSummary {
        GenerationSummary {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            finish_reason,
        }
    }

    /// Ends the stream normally: releases what was held back (an unfinished character, or a tail that never
    /// became a stop string), then the summary.
    fn finish(self, reason: FinishReason) {
        let Sequence {
            events,
            decoder,
            mut stops,
            prompt_tokens,
            completion_tokens,
            ..
        } = self;
        let filtered = stops.push(&decoder.finish());
        let (tail, finish_reason) = if filtered.stopped {
            (filtered.text, FinishReason::Stop)
        } else {
            (filtered.text + &stops.finish(), reason)
        };
        if !tail.is_empty() && events.send(GenerationEvent::Text(tail)).is_err() {
            return;
        }
        let _ = events.send(GenerationEvent::Done(GenerationSummary {
            prompt_tokens,
            completion_tokens,
            finish_reason,
        }));
    }
}

fn add(
    batch: &mut LlamaBatch<'static>,
    token: LlamaToken,
    position: usize,
    slot: usize,
    logits: bool,
) -> Result<(), String> {
    let position = i32::try_from(position).map_err(|_| format!("token position {position} is out of range"))?;
    batch
        .add(token, position, &[seq_id(slot)], logits)
        .map_err(|error| format!("llama.cpp batch: {error}"))
}

/// The llama.cpp sequence id of a slot (slots are fewer than llama.cpp's 256-sequence limit).
fn seq_id(slot: usize) -> i32 {
    i32::try_from(slot).unwrap_or(i32::MAX)
}

fn slot_id(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX)
}

/// Length of the longest common prefix.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tickets_bound_the_requests_in_flight_and_free_their_place_when_dropped() {
        let taken = Arc::new(AtomicUsize::new(0));
        let first = Ticket::take(&taken, 2).unwrap();
        let second = Ticket::take(&taken, 2).unwrap();
        assert!(Ticket::take(&taken, 2).is_none());
        drop(first);
        let third = Ticket::take(&taken, 2).unwrap();
        drop((second, third));
        assert_eq!(taken.load(Ordering::Acquire), 0);
    }

    #[test]
    fn common_prefixes_stop_at_the_first_difference() {
        let tokens = |ids: &[i32]| ids.iter().map(|&id| LlamaToken(id)).collect::<Vec<_>>();
        assert_eq!(common_prefix(&tokens(&[1, 2, 3]), &tokens(&[1, 2, 4])), 2);
        assert_eq!(common_prefix(&tokens(&[1, 2]), &tokens(&[1, 2, 3])), 2);
        assert_eq!(common_prefix(&tokens(&[]), &tokens(&[1])), 0);
    }
}
