//! Sentence embeddings against the real all-MiniLM-L6-v2 from `$FLYWHEEL_MODELS_DIR`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use inference::{Embedder, EmbedderOptions, InferenceError};

fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        Embedder::load(
            &common::models_dir().join("all-MiniLM-L6-v2"),
            EmbedderOptions::default(),
        )
        .expect("embedder loads")
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn embed_one(text: &str) -> Vec<f32> {
    embedder().embed(&[text]).unwrap().vectors.remove(0)
}

#[test]
fn info_reflects_the_model_files() {
    let info = embedder().info();
    assert_eq!(info.name, "all-MiniLM-L6-v2");
    assert_eq!(info.dimensions, 384);
    assert_eq!(info.max_tokens, 256);
}

#[test]
fn vectors_are_384_dimensional_unit_vectors_in_input_order() {
    let texts = [
        "The cat sat on the mat.",
        "",
        "Quarterly revenue grew by twelve percent.",
    ];
    let embeddings = embedder().embed(&texts).unwrap();
    assert_eq!(embeddings.vectors.len(), texts.len());
    for vector in &embeddings.vectors {
        assert_eq!(vector.len(), 384);
        assert!(vector.iter().all(|x| x.is_finite()));
        assert!((dot(vector, vector).sqrt() - 1.0).abs() < 1e-4);
    }
    // Input order is kept even though texts are batched by length.
    assert!(dot(&embeddings.vectors[0], &embed_one(texts[0])) > 0.9999);
    assert!(dot(&embeddings.vectors[2], &embed_one(texts[2])) > 0.9999);
}

#[test]
fn similar_meanings_are_closer() {
    let vectors = embedder().embed(&["sofa", "couch", "lamp"]).unwrap().vectors;
    let (sofa, couch, lamp) = (&vectors[0], &vectors[1], &vectors[2]);
    assert!(
        dot(sofa, couch) > dot(sofa, lamp) + 0.1,
        "sofa·couch {} sofa·lamp {}",
        dot(sofa, couch),
        dot(sofa, lamp)
    );
}

#[test]
fn a_text_embeds_the_same_alone_and_in_a_padded_batch() {
    let texts = [
        "short",
        "A considerably longer sentence, so that the short ones in the same batch carry a lot of padding.",
        "medium length text here",
    ];
    let batch = embedder().embed(&texts).unwrap();
    for (text, vector) in texts.iter().zip(&batch.vectors) {
        let cosine = dot(vector, &embed_one(text));
        assert!(cosine > 0.9999, "{text:?}: cosine {cosine}");
    }
}

#[test]
fn batches_larger_than_the_batch_size_are_split() {
    let small = Embedder::load(
        &common::models_dir().join("all-MiniLM-L6-v2"),
        EmbedderOptions { max_batch_size: 2 },
    )
    .unwrap();
    let texts = ["one", "two words", "three words here", "and four words here", "five"];
    let split = small.embed(&texts).unwrap();
    let whole = embedder().embed(&texts).unwrap();
    assert_eq!(split.prompt_tokens, whole.prompt_tokens);
    for (a, b) in split.vectors.iter().zip(&whole.vectors) {
        assert!(dot(a, b) > 0.9999);
    }
}

#[test]
fn token_counts_include_special_tokens_but_not_padding() {
    // [CLS] hello world [SEP]
    assert_eq!(embedder().embed(&["hello world"]).unwrap().prompt_tokens, 4);
    assert_eq!(embedder().embed(&["hello world", ""]).unwrap().prompt_tokens, 6);
    let long = "word ".repeat(1000);
    assert_eq!(
        embedder().embed(&[long.as_str()]).unwrap().prompt_tokens,
        256,
        "truncated to max_seq_length"
    );
}

#[test]
fn an_empty_list_gives_no_vectors() {
    let embeddings = embedder().embed(&[]).unwrap();
    assert!(embeddings.vectors.is_empty());
    assert_eq!(embeddings.prompt_tokens, 0);
}

/// One sentence embedded by tests/fixtures/minilm_reference.py, an independent float64 NumPy implementation.
#[derive(serde::Deserialize)]
struct Reference {
    text: String,
    token_ids: Vec<u32>,
    vector: Vec<f32>,
}

#[test]
fn vectors_match_an_independent_reference_implementation() {
    let references: Vec<Reference> = serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let texts: Vec<&str> = references.iter().map(|reference| reference.text.as_str()).collect();
    let embeddings = embedder().embed(&texts).unwrap();
    let total_tokens: usize = references.iter().map(|reference| reference.token_ids.len()).sum();
    assert_eq!(embeddings.prompt_tokens as usize, total_tokens);
    for (reference, vector) in references.iter().zip(&embeddings.vectors) {
        let cosine = dot(vector, &reference.vector);
        let max_diff = vector
            .iter()
            .zip(&reference.vector)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            cosine > 0.99999 && max_diff < 1e-5,
            "{:?}: cosine {cosine}, max diff {max_diff}",
            reference.text
        );
    }
}

#[test]
fn a_missing_weights_file_is_named() {
    let dir = std::env::temp_dir().join(format!("flywheel-embedder-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = common::models_dir().join("all-MiniLM-L6-v2");
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(source.join(file), dir.join(file)).unwrap();
    }
    let error = Embedder::load(&dir, EmbedderOptions::default())
        .map(|_| ())
        .unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(&error, InferenceError::ModelMissing { path } if path.ends_with("model.safetensors")),
        "{error}"
    );
    assert!(error.to_string().contains("run scripts/fetch-models"));
}
