//! The `kb_embedding_*` settings of `serve`, resolved: which model embeds
//! queries, where, with which key, and how long a provider may take.
//! Permanent mistakes (an unknown provider, a key file that cannot be
//! read, a model directory that is not a model) fail start-up with the path.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use fleet_common::kb_vectors::Provider;

/// How long a provider may take to embed a query, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// `--kb-embedding-provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Openai,
    Voyage,
    Ollama,
    Gemini,
    Local,
}

impl ProviderName {
    fn http(self) -> Option<Provider> {
        match self {
            ProviderName::Openai => Some(Provider::OpenAi),
            ProviderName::Voyage => Some(Provider::Voyage),
            ProviderName::Ollama => Some(Provider::Ollama),
            ProviderName::Gemini => Some(Provider::Gemini),
            ProviderName::Local => None,
        }
    }
}

/// An API key: never printed, not even by `Debug`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A provider reached over HTTP.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    pub provider: Provider,
    pub model: String,
    /// Base URL, without a trailing `/`.
    pub url: String,
    pub api_key: Option<ApiKey>,
    /// What the model gives, when known: the KB's vectors must match.
    pub dimensions: Option<usize>,
}

/// Where query vectors come from.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The static model in this directory, in-process.
    Local {
        dir: PathBuf,
    },
    Http(HttpProvider),
}

/// The resolved embedding settings.
#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    pub backend: Backend,
    pub timeout: Duration,
}

/// The `kb_embedding_*` settings as given.
#[derive(Debug, Default)]
pub struct Given {
    pub provider: Option<ProviderName>,
    pub model: Option<String>,
    pub model_dir: Option<PathBuf>,
    pub url: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub dimensions: Option<usize>,
    pub timeout: Option<Duration>,
}

/// A provider's default model, base URL and key variable's stem.
fn defaults(p: Provider) -> (&'static str, &'static str, &'static str) {
    match p {
        Provider::OpenAi => (
            "text-embedding-3-small",
            "https://api.openai.com/v1",
            "OPENAI",
        ),
        Provider::Voyage => ("voyage-3", "https://api.voyageai.com/v1", "VOYAGE"),
        Provider::Ollama => ("nomic-embed-text", "http://localhost:11434", "OLLAMA"),
        Provider::Gemini => (
            "gemini-embedding-001",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI",
        ),
    }
}

/// Dimensions of well-known models (what pgEdge's builder stores).
fn known_dimensions(model: &str) -> Option<usize> {
    Some(match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" | "gemini-embedding-001" => 3072,
        "voyage-3" | "voyage-3-large" | "voyage-3.5" | "voyage-code-3" => 1024,
        "voyage-3-lite" | "voyage-3.5-lite" => 512,
        "nomic-embed-text" | "text-embedding-004" => 768,
        "mxbai-embed-large" => 1024,
        "all-minilm" => 384,
        _ => return None,
    })
}

/// Resolve `given`, reading a key from `env` (a variable lookup) or the
/// key file. `None`: no embedding (keyword search only).
pub fn resolve(
    given: Given,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<EmbeddingSettings>> {
    let timeout = given.timeout.unwrap_or(DEFAULT_TIMEOUT);
    anyhow::ensure!(
        timeout >= Duration::from_millis(10),
        "kb_embedding_timeout must be at least 10ms"
    );
    let provider = match (given.provider, &given.model_dir) {
        (None, None) => {
            if given.model.is_some() || given.url.is_some() || given.api_key_file.is_some() {
                bail!("kb_embedding_* settings are given but not kb_embedding_provider");
            }
            return Ok(None);
        }
        (None, Some(_)) => ProviderName::Local,
        (Some(p), _) => p,
    };
    let Some(http) = provider.http() else {
        let dir = given
            .model_dir
            .context("kb_embedding_provider local needs kb_embedding_model_dir")?;
        if given.url.is_some() || given.api_key_file.is_some() || given.model.is_some() {
            bail!(
                "kb_embedding_url, kb_embedding_model and kb_embedding_api_key_file are for HTTP providers, not local"
            );
        }
        return Ok(Some(EmbeddingSettings {
            backend: Backend::Local { dir },
            timeout,
        }));
    };
    if given.model_dir.is_some() {
        bail!(
            "kb_embedding_model_dir is for the local provider, not {}",
            http.as_str()
        );
    }
    let (default_model, default_url, stem) = defaults(http);
    let model = given.model.unwrap_or_else(|| default_model.to_string());
    let url = given
        .url
        .unwrap_or_else(|| default_url.to_string())
        .trim_end_matches('/')
        .to_string();
    anyhow::ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "kb_embedding_url {:?} is not an http(s) URL",
        fleet_common::redact::url(&url)
    );
    let api_key = match &given.api_key_file {
        Some(path) => {
            let text = fleet_common::read::read_capped(path, 64 << 10)
                .with_context(|| format!("reading the API key file {}", path.display()))?;
            let key = String::from_utf8(text)
                .ok()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .with_context(|| {
                    format!("the API key file {} is empty or not text", path.display())
                })?;
            Some(ApiKey(key))
        }
        None => env(&format!("PGEDGE_KB_{stem}_API_KEY"))
            .or_else(|| env(&format!("{stem}_API_KEY")))
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey),
    };
    if api_key.is_none() && http != Provider::Ollama && url == default_url {
        bail!(
            "kb_embedding_provider {} needs an API key: kb_embedding_api_key_file, or the variable PGEDGE_KB_{stem}_API_KEY or {stem}_API_KEY",
            http.as_str()
        );
    }
    let dimensions = given.dimensions.or_else(|| known_dimensions(&model));
    if let Some(d) = dimensions {
        anyhow::ensure!(
            (1..=fleet_common::kb_vectors::MAX_DIMENSIONS).contains(&d),
            "kb_embedding_dimensions {d} is out of range"
        );
    }
    Ok(Some(EmbeddingSettings {
        backend: Backend::Http(HttpProvider {
            provider: http,
            model,
            url,
            api_key,
            dimensions,
        }),
        timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn nothing_given_is_keyword_search() {
        assert!(resolve(Given::default(), no_env).unwrap().is_none());
        let stray = Given {
            model: Some("m".into()),
            ..Given::default()
        };
        assert!(resolve(stray, no_env).is_err());
    }

    #[test]
    fn a_model_dir_alone_means_the_local_provider() {
        let s = resolve(
            Given {
                model_dir: Some("/models/m".into()),
                ..Given::default()
            },
            no_env,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(s.backend, Backend::Local { .. }));
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        let bad = Given {
            provider: Some(ProviderName::Local),
            ..Given::default()
        };
        assert!(format!("{:#}", resolve(bad, no_env).unwrap_err()).contains("model_dir"));
    }

    #[test]
    fn keys_come_from_the_file_or_pgedge_variables_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "sk-from-file\n").unwrap();
        let given = |f: Option<PathBuf>| Given {
            provider: Some(ProviderName::Openai),
            api_key_file: f,
            ..Given::default()
        };
        let http = |s: Option<EmbeddingSettings>| match s.unwrap().backend {
            Backend::Http(h) => h,
            Backend::Local { .. } => panic!("local"),
        };
        let h = http(resolve(given(Some(file)), no_env).unwrap());
        assert_eq!(h.api_key.as_ref().unwrap().expose(), "sk-from-file");
        assert_eq!(h.dimensions, Some(1536));
        assert_eq!(h.url, "https://api.openai.com/v1");
        assert!(!format!("{h:?}").contains("sk-from-file"));
        let env = |k: &str| match k {
            "PGEDGE_KB_OPENAI_API_KEY" => Some("sk-pgedge".to_string()),
            "OPENAI_API_KEY" => Some("sk-plain".to_string()),
            _ => None,
        };
        let h = http(resolve(given(None), env).unwrap());
        assert_eq!(h.api_key.unwrap().expose(), "sk-pgedge");
        let err = format!("{:#}", resolve(given(None), no_env).unwrap_err());
        assert!(err.contains("OPENAI_API_KEY"), "{err}");
        let err = format!(
            "{:#}",
            resolve(given(Some(dir.path().join("missing"))), no_env).unwrap_err()
        );
        assert!(err.contains("missing"), "{err}");
        // A self-hosted OpenAI-compatible endpoint may need no key.
        let own = Given {
            url: Some("http://127.0.0.1:9/v1/".into()),
            model: Some("mine".into()),
            ..given(None)
        };
        let h = http(resolve(own, no_env).unwrap());
        assert_eq!(
            (h.url.as_str(), h.dimensions),
            ("http://127.0.0.1:9/v1", None)
        );
        // Ollama needs none.
        let ollama = Given {
            provider: Some(ProviderName::Ollama),
            ..Given::default()
        };
        assert_eq!(http(resolve(ollama, no_env).unwrap()).dimensions, Some(768));
    }
}
