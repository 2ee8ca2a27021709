//! Chat prompt rendering with the model's own Jinja template.
//!
//! GGUF files carry the Hugging Face chat template in `tokenizer.chat_template`. [`ChatTemplate`] renders it the
//! way `transformers.apply_chat_template` does (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`,
//! Python string methods) so prompts match what the model was trained on. Models without a template get
//! [`CHATML_TEMPLATE`]. This module only turns messages into text; it never tokenizes.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value, context};

use crate::{ChatMessage, InferenceError};

/// The template used when a model ships none: ChatML, the most common instruct format.
pub(crate) const CHATML_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}\
{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template and the special-token strings it may refer to.
#[derive(Debug)]
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; fails if it is not valid Jinja.
    pub(crate) fn new(source: String, bos_token: String, eos_token: String) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        // The jinja2 settings transformers renders chat templates with.
        env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(TEMPLATE_NAME, source)?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders `messages` followed by the opening of the assistant's turn.
    pub(crate) fn render(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        let messages: Value = messages
            .iter()
            .map(|message| context! { role => message.role.as_str(), content => message.content.as_str() })
            .collect();
        let template = self.env.get_template(TEMPLATE_NAME).map_err(template_error)?;
        template
            .render(context! {
                messages,
                add_generation_prompt => true,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(template_error)
    }
}

/// Templates call this to reject conversations they cannot format (for example roles that do not alternate).
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn template_error(error: Error) -> InferenceError {
    InferenceError::Template(error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// SmolLM2-135M-Instruct's template, as stored in its GGUF.
    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn message(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }

    fn render(source: &str, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        ChatTemplate::new(source.to_owned(), "<s>".to_owned(), "</s>".to_owned())
            .unwrap()
            .render(messages)
    }

    #[test]
    fn smollm2_template_adds_its_default_system_prompt() {
        let prompt = render(SMOLLM2_TEMPLATE, &[message("user", "Hi")]).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_template_keeps_a_given_system_prompt() {
        let prompt = render(
            SMOLLM2_TEMPLATE,
            &[message("system", "Be brief."), message("user", "Hi")],
        )
        .unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn chatml_default_renders_every_turn() {
        let messages = [
            message("system", "S"),
            message("user", "U"),
            message("assistant", "A"),
            message("user", "V"),
        ];
        assert_eq!(
            render(CHATML_TEMPLATE, &messages).unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n\
             <|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn special_tokens_are_available_to_the_template() {
        let prompt = render(
            "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
            &[message("user", "x")],
        )
        .unwrap();
        assert_eq!(prompt, "<s>x</s>");
    }

    #[test]
    fn raise_exception_surfaces_the_templates_message() {
        let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}";
        let error = render(source, &[message("assistant", "x")]).unwrap_err();
        assert!(matches!(&error, InferenceError::Template(text) if text.contains("Conversation must start with user")));
    }

    #[test]
    fn hugging_face_jinja_features_work() {
        // Block tags on their own lines leave no blank lines (trim_blocks + lstrip_blocks), Python string methods
        // work, and loop controls are available.
        let source = "{% for m in messages %}\n    {% if m.role == 'system' %}{% continue %}{% endif %}\n{{ m.content.strip() | upper }}|\n{% endfor %}";
        let prompt = render(
            source,
            &[
                message("system", "skip"),
                message("user", "  a  "),
                message("user", "b"),
            ],
        );
        assert_eq!(prompt.unwrap(), "A|\nB|\n");
    }

    #[test]
    fn syntax_errors_are_reported_when_compiling() {
        assert!(ChatTemplate::new("{% for %}".to_owned(), String::new(), String::new()).is_err());
    }
}
