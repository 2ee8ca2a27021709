//! Where the integration tests find the real models.

use std::path::PathBuf;

/// `$FLYWHEEL_MODELS_DIR`, laid out by scripts/fetch-models. The tests need real models, so an unset variable
/// fails them rather than letting them pass without testing anything.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("FLYWHEEL_MODELS_DIR").map(PathBuf::from).expect(
        "set FLYWHEEL_MODELS_DIR to a directory holding SmolLM2-135M-Instruct.Q4_1.gguf and all-MiniLM-L6-v2/ \
         (scripts/fetch-models creates it)",
    );
    assert!(
        dir.is_dir(),
        "FLYWHEEL_MODELS_DIR={} is not a directory; run scripts/fetch-models",
        dir.display()
    );
    dir
}
