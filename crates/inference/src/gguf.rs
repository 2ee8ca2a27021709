//! What a GGUF file is, read from its metadata header alone (no weights are loaded): what `flywheel models`
//! shows and checks before a file is registered.

use std::path::Path;

use llama_cpp_2::gguf::GgufContext;

use crate::InferenceError;

/// GGUF's value type codes (`enum gguf_type`) for the values read here.
const GGUF_UINT32: u32 = 4;
const GGUF_STRING: u32 = 8;
const GGUF_UINT64: u32 = 10;

/// The metadata of a GGUF model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSummary {
    /// `general.architecture`: llama, qwen2, qwen3, gemma3, bert, ...
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// The weights' quantization (`general.file_type`), such as `Q4_K_M`.
    pub quantization: String,
    /// The context length the model was trained with, when the file says.
    pub context_length: Option<u64>,
    /// Whether the file carries a chat template (otherwise the documented default, ChatML, is used).
    pub has_chat_template: bool,
    /// Tensors in the file.
    pub tensors: i64,
}

impl GgufSummary {
    /// Reads the header of the GGUF at `path`. A missing file or one that is not GGUF is an error naming it.
    pub fn read(path: &Path) -> Result<GgufSummary, InferenceError> {
        if !path.is_file() {
            return Err(InferenceError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let corrupt = |reason: &str| InferenceError::ModelCorrupt {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        crate::chat::route_logs_to_tracing();
        let gguf = GgufContext::from_file(path).ok_or_else(|| corrupt("it is not a readable GGUF file"))?;
        let architecture =
            string(&gguf, "general.architecture").ok_or_else(|| corrupt("its header names no general.architecture"))?;
        Ok(GgufSummary {
            context_length: unsigned(&gguf, &format!("{architecture}.context_length")),
            name: string(&gguf, "general.name"),
            quantization: unsigned(&gguf, "general.file_type").map_or_else(|| "unknown".to_owned(), file_type_name),
            has_chat_template: gguf.find_key("tokenizer.chat_template") >= 0,
            tensors: gguf.n_tensors(),
            architecture,
        })
    }
}

fn string(gguf: &GgufContext, key: &str) -> Option<String> {
    let index = gguf.find_key(key);
    // llama.cpp aborts on a read of the wrong type, so the type is checked first.
    (index >= 0 && gguf.kv_type(index) == GGUF_STRING).then(|| gguf.val_str(index).map(str::to_owned))?
}

fn unsigned(gguf: &GgufContext, key: &str) -> Option<u64> {
    let index = gguf.find_key(key);
    if index < 0 {
        return None;
    }
    match gguf.kv_type(index) {
        GGUF_UINT32 => Some(u64::from(gguf.val_u32(index))),
        GGUF_UINT64 => Some(gguf.val_u64(index)),
        _ => None,
    }
}

/// llama.cpp's names for `enum llama_ftype`.
fn file_type_name(code: u64) -> String {
    let name = match code {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        other => return format!("type {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn files_that_are_not_gguf_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("flywheel-gguf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not.gguf");
        std::fs::write(&path, b"definitely not a model").unwrap();
        let error = GgufSummary::read(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(&error, InferenceError::ModelCorrupt { path: named, .. } if named == &path));
        assert!(matches!(
            GgufSummary::read(&dir.join("absent.gguf")),
            Err(InferenceError::ModelMissing { .. })
        ));
    }

    #[test]
    fn quantization_codes_have_llama_cpp_names() {
        assert_eq!(file_type_name(3), "Q4_1");
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(99), "type 99");
    }
}
