//! pgvector's distances: the operator each one is, what its value means,
//! and the distance an index's operator class orders by. An argument of
//! `similarity_search` ([`crate::pg::tools::SimilaritySearchArgs`]).

use schemars::JsonSchema;
use serde::Deserialize;

/// The pgvector types a similarity search runs on.
pub const VECTOR_TYPES: [&str; 3] = ["vector", "halfvec", "sparsevec"];

/// A pgvector distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    #[serde(alias = "<->", alias = "euclidean")]
    L2,
    #[serde(alias = "<#>", alias = "ip")]
    InnerProduct,
    #[serde(alias = "<=>")]
    Cosine,
    #[serde(alias = "<+>", alias = "manhattan")]
    L1,
}

impl Distance {
    /// The pgvector operator.
    pub fn operator(self) -> &'static str {
        match self {
            Distance::L2 => "<->",
            Distance::InnerProduct => "<#>",
            Distance::Cosine => "<=>",
            Distance::L1 => "<+>",
        }
    }

    /// What the operator's value is, for the answer.
    pub fn describe(self) -> &'static str {
        match self {
            Distance::L2 => "L2 (Euclidean) distance",
            Distance::InnerProduct => "negative inner product",
            Distance::Cosine => "cosine distance",
            Distance::L1 => "L1 (Manhattan) distance",
        }
    }

    /// The distance an index of this operator class orders by:
    /// `vector_l2_ops`, `halfvec_cosine_ops`, `sparsevec_ip_ops`, ...
    /// (`None`: not a pgvector distance class, e.g. a B-tree's).
    pub fn of_opclass(opclass: &str) -> Option<Distance> {
        let rest = VECTOR_TYPES
            .iter()
            .find_map(|t| opclass.strip_prefix(t)?.strip_prefix('_'))?;
        Some(match rest {
            "l2_ops" => Distance::L2,
            "ip_ops" => Distance::InnerProduct,
            "cosine_ops" => Distance::Cosine,
            "l1_ops" => Distance::L1,
            _ => return None,
        })
    }
}
