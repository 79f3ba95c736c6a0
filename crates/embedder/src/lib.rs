//! Embedder stage: 512-d ResNet18 features of sampled images.
//!
//! A shell until the embedder issue lands (ResNet18 on burn, torchvision weights,
//! `embeddings.parquet`). It exists now so that the workspace has its final shape and the
//! pipeline crate can grow an embedder thread without moving code around. Nothing here is
//! called by the pipeline yet.

/// The length of one embedding: ResNet18's global-average-pooled features.
pub const EMBEDDING_DIM: usize = 512;
