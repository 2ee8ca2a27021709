//! Chat generation with llama.cpp.
//!
//! [`ChatModel`] owns a loaded GGUF model and one worker thread, which owns the only llama.cpp context and runs
//! every request in it with continuous batching (`batch.rs`): concurrent requests decode together, each with its
//! own sampling, stop strings and limits. Everything that can be checked before decoding (messages, sampling
//! parameters, prompt length) is checked on the caller's thread, so a bad request fails synchronously and never
//! occupies the queue. Tokenization reads only the vocabulary, which llama.cpp allows from any thread, so token
//! counting never waits for the worker.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::thread;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{ChatTemplateError, LogOptions, send_logs_to_tracing};
use tokio::sync::mpsc;

use crate::InferenceError;
use crate::batch::{Counters, Job, Ticket, WorkerSettings, run_worker};
use crate::structured::OutputFormat;
use crate::template::{CHATML_TEMPLATE, ChatTemplate};

/// llama.cpp's `LLAMA_DEFAULT_SEED`: the dist sampler draws a random seed when given this value.
const RANDOM_SEED: u32 = u32::MAX;

/// Roles a message may have.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// How to load a chat model.
#[derive(Debug, Clone)]
pub struct ChatModelOptions {
    /// CPU threads for decoding and prompt processing; 0 counts as 1.
    pub threads: usize,
    /// The window of one request in tokens (prompt plus reply), capped at the length the model was trained
    /// with and at the KV cache.
    pub context_length: u32,
    /// Requests decoded together, each in its own sequence of the shared KV cache; 0 counts as 1.
    pub max_sequences: usize,
    /// The KV cache, in tokens, shared by all running requests: the memory cap. At least one request's window;
    /// llama.cpp rounds it up to a multiple of 256.
    pub kv_cache_tokens: u32,
    /// Requests allowed to wait while `max_sequences` run; more are refused with
    /// [`InferenceError::Overloaded`].
    pub max_queue: usize,
}

impl Default for ChatModelOptions {
    /// All available cores, a 4096-token window, 16 sequences in an 8192-token cache, and up to 32 waiting
    /// requests.
    fn default() -> ChatModelOptions {
        ChatModelOptions {
            threads: thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            context_length: 4096,
            max_sequences: 16,
            kv_cache_tokens: 8192,
            max_queue: 32,
        }
    }
}

/// What a loaded chat model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatModelInfo {
    /// The model file's name without its extension.
    pub name: String,
    /// The window of one request, in tokens: prompt plus reply must fit in it.
    pub context_length: u32,
    /// Context length the model was trained with.
    pub train_context_length: u32,
    /// Requests decoded together.
    pub max_sequences: usize,
    /// The KV cache the running requests share, in tokens.
    pub kv_cache_tokens: u32,
    /// Whether the model ships its own chat template (otherwise ChatML is used).
    pub has_template: bool,
}

/// A snapshot of a chat model's engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Requests decoding now.
    pub running: usize,
    /// Requests accepted and not yet running (queued, or suspended for memory).
    pub waiting: usize,
    /// Tokens put through the model (prompts and generated), in all requests.
    pub tokens_decoded: u64,
    /// Prompt tokens not decoded because a cached prefix held them.
    pub prompt_tokens_reused: u64,
    /// Times a running request was pushed out of a full KV cache (and later resumed).
    pub suspensions: u64,
    /// Batches decoded: with several requests running, fewer than the tokens generated.
    pub steps: u64,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The turn's text.
    pub content: String,
}

/// A request to continue a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The conversation so far; must not be empty.
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate; `None` means as many as the context has room for. Capped at that room.
    pub max_tokens: Option<u32>,
    /// Sampling temperature, at least 0; 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it. Ignored when `temperature` is 0.
    pub top_p: f32,
    /// Keep only the `top_k` likeliest tokens before sampling; `None` keeps all. Ignored when greedy.
    pub top_k: Option<u32>,
    /// Drop tokens less likely than `min_p` times the likeliest, in [0, 1]; `None` or 0 drops none. Ignored
    /// when greedy.
    pub min_p: Option<f32>,
    /// Divide the scores of the last 64 tokens by this (above 1 discourages repeating them); `None` or 1 is
    /// none. Applies to greedy decoding too.
    pub repetition_penalty: Option<f32>,
    /// Seed for sampling; the same seed and request give the same text. `None` draws a random seed.
    pub seed: Option<u64>,
    /// Generation ends before the first occurrence of any of these strings, which are not emitted.
    pub stop: Vec<String>,
    /// Free text, or JSON that must parse (and validate against a schema).
    pub format: OutputFormat,
}

impl Default for GenerationRequest {
    /// No messages, OpenAI's defaults (temperature 1, top_p 1), no limit, seed or stop strings.
    fn default() -> GenerationRequest {
        GenerationRequest {
            messages: Vec::new(),
            max_tokens: None,
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            min_p: None,
            repetition_penalty: None,
            seed: None,
            stop: Vec::new(),
            format: OutputFormat::Text,
        }
    }
}

/// One step of a streamed generation. A stream is `Started`, any number of `Text`, then `Done` or `Failed`;
/// a stream that ends without either means the worker died.
#[derive(Debug)]
pub enum GenerationEvent {
    /// The worker took the request and is about to read the prompt; sent before any text, so a request the
    /// client abandons can still be accounted.
    Started {
        /// Tokens in the prompt.
        prompt_tokens: u32,
    },
    /// More generated text, always whole UTF-8 characters.
    Text(String),
    /// Generation ended normally.
    Done(GenerationSummary),
    /// Generation failed part way.
    Failed(InferenceError),
}

/// Token counts and the reason a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationSummary {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated, including any that held a stop string.
    pub completion_tokens: u32,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn or a stop string was reached.
    Stop,
    /// The token limit (`max_tokens` or the context) was reached.
    Length,
}

impl FinishReason {
    /// The OpenAI name: `"stop"` or `"length"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A GGUF chat model served by its own worker thread. Share it with an `Arc`; dropping it stops the worker once
/// the requests it accepted end.
pub struct ChatModel {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    info: ChatModelInfo,
    jobs: Sender<Job>,
    /// Requests accepted and not finished, running or waiting.
    in_flight: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    max_queue: usize,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("info", &self.info)
            .field("max_queue", &self.max_queue)
            .finish()
    }
}

impl ChatModel {
    /// Loads the GGUF at `path` and starts its worker thread. Blocks for as long as loading takes (a fraction of
    /// a second for small models), so async callers use `spawn_blocking`.
    pub fn load(path: &Path, options: ChatModelOptions) -> Result<ChatModel, InferenceError> {
        if !path.is_file() {
            return Err(InferenceError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|error| {
            InferenceError::ModelCorrupt {
                path: path.to_path_buf(),
                reason: format!("llama.cpp could not load it: {error}; its log lines say why"),
            }
        })?;
        let (template, has_template) = load_template(&model, path)?;

        let train_context_length = model.n_ctx_train();
        let window = match train_context_length {
            0 => options.context_length,
            train => options.context_length.min(train),
        };
        let max_sequences = options.max_sequences.max(1);
        let threads = i32::try_from(options.threads.max(1)).unwrap_or(i32::MAX);
        // One cache shared by every sequence (llama.cpp's unified KV cache), so memory goes where the tokens are
        // and sequences can share a prefix's cells. A batch may be as large as the cache (llama.cpp still
        // computes it in 512-token pieces), so a burst of requests reads all its prompts before any of them
        // starts streaming, instead of the first streams pausing while the rest are read.
        let kv_cache_tokens = options.kv_cache_tokens.max(window);
        let context_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(kv_cache_tokens))
            .with_n_batch(kv_cache_tokens)
            .with_n_seq_max(u32::try_from(max_sequences).unwrap_or(u32::MAX))
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let counters = Arc::new(Counters::default());
        let settings = WorkerSettings {
            params: context_params,
            max_sequences,
            counters: Arc::clone(&counters),
        };

        let model = Arc::new(model);
        let (jobs, queue) = std::sync::mpsc::channel();
        let (ready_sender, ready) = std::sync::mpsc::channel();
        let worker_model = Arc::clone(&model);
        thread::Builder::new()
            .name("flywheel-chat".to_owned())
            .spawn(move || run_worker(&worker_model, backend, settings, ready_sender, queue))
            .map_err(|error| InferenceError::Backend(format!("could not start the chat worker thread: {error}")))?;
        let kv_cache_tokens = ready.recv().map_err(|_| InferenceError::WorkerStopped)??;

        let info = ChatModelInfo {
            name: path
                .file_stem()
                .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned()),
            context_length: window.min(kv_cache_tokens),
            train_context_length,
            max_sequences,
            kv_cache_tokens,
            has_template,
        };
        tracing::debug!(?info, threads, "chat model loaded");
        Ok(ChatModel {
            model,
            template,
            info,
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
            counters,
            max_queue: options.max_queue,
        })
    }

    /// What this model is.
    pub fn info(&self) -> &ChatModelInfo {
        &self.info
    }

    /// What the engine is doing and has done since it loaded.
    pub fn stats(&self) -> EngineStats {
        let running = self.counters.running.load(Ordering::Relaxed);
        EngineStats {
            running,
            waiting: self.in_flight.load(Ordering::Relaxed).saturating_sub(running),
            tokens_decoded: self.counters.tokens_decoded.load(Ordering::Relaxed),
            prompt_tokens_reused: self.counters.prompt_tokens_reused.load(Ordering::Relaxed),
            suspensions: self.counters.suspensions.load(Ordering::Relaxed),
            steps: self.counters.steps.load(Ordering::Relaxed),
        }
    }

    /// The prompt text for `messages`: the model's chat template applied, ending with the opening of the
    /// assistant's turn.
    pub fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        validate_messages(messages)?;
        self.template.render(messages)
    }

    /// Tokens `text` becomes as prompt text: special-token markup such as `<|im_start|>` counts as one token and
    /// no BOS token is added. Does not wait for the worker.
    pub fn count_tokens(&self, text: &str) -> Result<usize, InferenceError> {
        Ok(self.model.vocab().tokenize(text.as_bytes(), false, true).len())
    }

    /// Queues `request` and returns the stream of its events. Fails at once, without queueing, if the request is
    /// invalid, its prompt does not fit the context, or too many requests are waiting.
    pub fn generate(
        &self,
        request: GenerationRequest,
    ) -> Result<mpsc::UnboundedReceiver<GenerationEvent>, InferenceError> {
        let sampling = Sampling::from_request(&request)?;
        if request.max_tokens == Some(0) {
            return Err(InferenceError::InvalidRequest(
                "max_tokens must be at least 1".to_owned(),
            ));
        }
        let prompt_text = self.render_prompt(&request.messages)?;
        // Special tokens are parsed because the template writes them as text; BOS is added only if the GGUF asks.
        let prompt = self.model.vocab().tokenize(prompt_text.as_bytes(), true, true);
        if prompt.is_empty() {
            return Err(InferenceError::InvalidRequest(
                "the chat template rendered an empty prompt".to_owned(),
            ));
        }
        let context_length = self.info.context_length as usize;
        if prompt.len() + 1 > context_length {
            return Err(InferenceError::ContextOverflow {
                prompt_tokens: prompt.len(),
                context_length,
            });
        }
        let room = context_length - prompt.len();
        let max_tokens = request.max_tokens.map_or(room, |max| room.min(max as usize));
        let ticket = Ticket::take(&self.in_flight, self.info.max_sequences + self.max_queue).ok_or(
            InferenceError::Overloaded {
                max_queue: self.max_queue,
            },
        )?;
        let (events, receiver) = mpsc::unbounded_channel();
        let job = Job {
            prompt,
            max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
            sampling,
            stop: request.stop,
            format: request.format,
            events,
            ticket,
        };
        self.jobs.send(job).map_err(|_| InferenceError::WorkerStopped)?;
        Ok(receiver)
    }
}

/// The model's own chat template, or ChatML if it has none; the flag says whether it had one.
fn load_template(model: &LlamaModel, path: &Path) -> Result<(ChatTemplate, bool), InferenceError> {
    let corrupt = |reason: String| InferenceError::ModelCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let source = match model.chat_template(None) {
        Ok(template) => Some(
            template
                .to_string()
                .map_err(|error| corrupt(format!("chat template: {error}")))?,
        ),
        Err(ChatTemplateError::MissingTemplate) => None,
        Err(error) => return Err(corrupt(format!("chat template: {error}"))),
    };
    let has_template = source.is_some();
    let template = ChatTemplate::new(
        source.unwrap_or_else(|| CHATML_TEMPLATE.to_owned()),
        special_token_text(model, model.vocab().bos()),
        special_token_text(model, model.vocab().eos()),
    )
    .map_err(|error| {
        InferenceError::Template(format!(
            "{} has a chat template that does not compile: {error}",
            path.display()
        ))
    })?;
    Ok((template, has_template))
}

/// The process-wide llama.cpp backend, which may be initialized only once.
fn backend() -> Result<&'static LlamaBackend, InferenceError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // Before init, so that even start-up messages go to tracing instead of stderr.
            route_logs_to_tracing();
            LlamaBackend::init().map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| InferenceError::Backend(format!("llama.cpp backend: {error}")))
}

/// Sends llama.cpp's and ggml's log lines to tracing (once per process), where the log filter decides.
pub(crate) fn route_logs_to_tracing() {
    static ROUTED: std::sync::Once = std::sync::Once::new();
    ROUTED.call_once(|| send_logs_to_tracing(LogOptions::default()));
}

/// The text of a special token for the template's `bos_token`/`eos_token`, empty if the model has none.
fn special_token_text(model: &LlamaModel, token: LlamaToken) -> String {
    let vocab = model.vocab();
    if token.0 < 0 || token.0 >= vocab.n_tokens() {
        return String::new();
    }
    String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned()
}

fn validate_messages(messages: &[ChatMessage]) -> Result<(), InferenceError> {
    if messages.is_empty() {
        return Err(InferenceError::InvalidRequest("messages must not be empty".to_owned()));
    }
    match messages.iter().find(|message| !ROLES.contains(&message.role.as_str())) {
        Some(message) => Err(InferenceError::InvalidRequest(format!(
            "unknown message role {:?}; expected system, user or assistant",
            message.role
        ))),
        None => Ok(()),
    }
}

/// How to pick each token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sampling {
    /// The repetition penalty, when there is one.
    penalty: Option<f32>,
    choice: Choice,
}

/// How the token is chosen once scores are adjusted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Choice {
    Greedy,
    Random {
        temperature: f32,
        top_p: f32,
        top_k: Option<u32>,
        min_p: Option<f32>,
        seed: u32,
    },
}

/// The recent tokens a repetition penalty looks back over.
const PENALTY_WINDOW: i32 = 64;

impl Sampling {
    fn from_request(request: &GenerationRequest) -> Result<Sampling, InferenceError> {
        let GenerationRequest {
            temperature,
            top_p,
            top_k,
            min_p,
            repetition_penalty,
            seed,
            ..
        } = *request;
        if top_k == Some(0) {
            return Err(InferenceError::InvalidRequest("top_k must be at least 1".to_owned()));
        }
        if let Some(min_p) = min_p.filter(|min_p| !(0.0..=1.0).contains(min_p)) {
            return Err(InferenceError::InvalidRequest(format!(
                "min_p must be in [0, 1], not {min_p}"
            )));
        }
        if let Some(penalty) = repetition_penalty.filter(|penalty| !(penalty.is_finite() && *penalty > 0.0)) {
            return Err(InferenceError::InvalidRequest(format!(
                "repetition_penalty must be above 0, not {penalty}"
            )));
        }
        let penalty = repetition_penalty.filter(|penalty| *penalty != 1.0);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(InferenceError::InvalidRequest(format!(
                "temperature must be 0 or more, not {temperature}"
            )));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(InferenceError::InvalidRequest(format!(
                "top_p must be in (0, 1], not {top_p}"
            )));
        }
        if temperature == 0.0 {
            return Ok(Sampling {
                penalty,
                choice: Choice::Greedy,
            });
        }
        let seed = match seed {
            None => RANDOM_SEED,
            // llama.cpp seeds are 32-bit: fold the halves together, steering clear of the "random" value.
            Some(seed) => match (seed ^ (seed >> 32)) as u32 {
                RANDOM_SEED => RANDOM_SEED - 1,
                folded => folded,
            },
        };
        Ok(Sampling {
            penalty,
            choice: Choice::Random {
                temperature,
                top_p,
                top_k,
                min_p: min_p.filter(|min_p| *min_p > 0.0),
                seed,
            },
        })
    }

    /// The sampler chain: the penalty first (it adjusts scores), then the choice. `n_vocab` sizes the penalty.
    pub(crate) fn sampler(self, n_vocab: i32) -> LlamaSampler {
        let mut chain = Vec::new();
        if let Some(penalty) = self.penalty {
            chain.push(LlamaSampler::penalties(n_vocab, PENALTY_WINDOW, penalty, 0.0, 0.0));
        }
        match self.choice {
            Choice::Greedy => chain.push(LlamaSampler::greedy()),
            // Temperature before top_p, as OpenAI defines them: the nucleus is taken from the tempered
            // distribution; top_k cuts first and min_p last, as in llama.cpp's own order.
            Choice::Random {
                temperature,
                top_p,
                top_k,
                min_p,
                seed,
            } => {
                if let Some(top_k) = top_k {
                    chain.push(LlamaSampler::top_k(i32::try_from(top_k).unwrap_or(i32::MAX)));
                }
                chain.push(LlamaSampler::temp(temperature));
                if top_p < 1.0 {
                    chain.push(LlamaSampler::top_p(top_p, 1));
                }
                if let Some(min_p) = min_p {
                    chain.push(LlamaSampler::min_p(min_p, 1));
                }
                chain.push(LlamaSampler::dist(seed));
            }
        }
        LlamaSampler::chain_simple(chain)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(temperature: f32, top_p: f32, seed: Option<u64>) -> GenerationRequest {
        GenerationRequest {
            temperature,
            top_p,
            seed,
            ..GenerationRequest::default()
        }
    }

    #[test]
    fn chat_model_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ChatModel>();
        assert_send_sync::<GenerationEvent>();
    }

    #[test]
    fn temperature_zero_is_greedy_whatever_the_other_parameters() {
        assert_eq!(
            Sampling::from_request(&request(0.0, 0.5, Some(7))).unwrap(),
            Sampling {
                penalty: None,
                choice: Choice::Greedy
            }
        );
    }

    #[test]
    fn extra_sampling_parameters_are_checked_and_kept() {
        let with = |top_k, min_p, repetition_penalty| GenerationRequest {
            top_k,
            min_p,
            repetition_penalty,
            ..request(0.8, 1.0, Some(1))
        };
        let sampling = Sampling::from_request(&with(Some(40), Some(0.05), Some(1.1))).unwrap();
        assert_eq!(sampling.penalty, Some(1.1));
        assert!(matches!(
            sampling.choice,
            Choice::Random {
                top_k: Some(40),
                min_p: Some(_),
                ..
            }
        ));
        // A penalty of 1 and min_p of 0 change nothing, so they are dropped.
        let neutral = Sampling::from_request(&with(None, Some(0.0), Some(1.0))).unwrap();
        assert_eq!(neutral.penalty, None);
        assert!(matches!(neutral.choice, Choice::Random { min_p: None, .. }));
        for bad in [
            with(Some(0), None, None),
            with(None, Some(1.5), None),
            with(None, None, Some(0.0)),
        ] {
            assert!(matches!(
                Sampling::from_request(&bad),
                Err(InferenceError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn seeds_are_folded_to_32_bits_and_never_mean_random() {
        let seed_of = |seed| match Sampling::from_request(&request(0.8, 0.9, seed)).unwrap().choice {
            Choice::Random { seed, .. } => seed,
            Choice::Greedy => unreachable!("temperature is not 0"),
        };
        assert_eq!(seed_of(None), RANDOM_SEED);
        assert_eq!(seed_of(Some(42)), 42);
        assert_eq!(seed_of(Some(1 << 32)), 1);
        assert_ne!(seed_of(Some(u64::from(u32::MAX))), RANDOM_SEED);
    }

    #[test]
    fn out_of_range_sampling_parameters_are_rejected() {
        for (temperature, top_p) in [
            (-0.1, 1.0),
            (f32::NAN, 1.0),
            (f32::INFINITY, 1.0),
            (1.0, 0.0),
            (1.0, 1.5),
        ] {
            let result = Sampling::from_request(&request(temperature, top_p, None));
            assert!(
                matches!(result, Err(InferenceError::InvalidRequest(_))),
                "temperature {temperature}, top_p {top_p}"
            );
        }
    }

    #[test]
    fn messages_must_be_present_with_known_roles() {
        let message = |role: &str| ChatMessage {
            role: role.to_owned(),
            content: "x".to_owned(),
        };
        assert!(validate_messages(&[]).is_err());
        assert!(validate_messages(&[message("tool")]).is_err());
        assert!(validate_messages(&[message("system"), message("user"), message("assistant")]).is_ok());
    }

    #[test]
    fn finish_reasons_have_openai_names() {
        assert_eq!(FinishReason::Stop.as_str(), "stop");
        assert_eq!(FinishReason::Length.as_str(), "length");
    }
}
