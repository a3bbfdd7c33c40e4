//! The one place that turns events into tantivy documents (Quickwit's doc mapper idea).
//!
//! Every event is stored whole as JSON in `_source` (zstd doc store) and read back from
//! there, so the indexed fields can change without losing anything.

use std::collections::BTreeMap;

use shiplog_core::Event;
use shiplog_core::query::KeywordField;
use shiplog_core::query::analysis::MAX_TERM_BYTES;
use tantivy::schema::{
    BytesOptions, DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption,
    JsonObjectOptions, NumericOptions, OwnedValue, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{DateTime, Index, TantivyDocument};

/// Name of the analyzer for message text; mirrors `shiplog_core::query::analysis`.
pub const TEXT_ANALYZER: &str = "shiplog_text";

/// Handles to every field of the schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// The schema itself.
    pub schema: Schema,
    /// Event id as 16 big-endian bytes (indexed for lookups by id).
    pub id: Field,
    /// Source time, nanosecond precision, fast.
    pub ts: Field,
    /// Tiebreaker among events of one source with the same `ts`.
    pub seq: Field,
    /// Message text, analysed with positions for phrases.
    pub message: Field,
    /// The JSON `fields` object, values indexed as exact terms.
    pub fields: Field,
    /// A prediction's `input`, indexed like `fields` (`input.customer_id:123`).
    pub input: Field,
    /// A prediction's `output`, indexed like `fields`.
    pub output: Field,
    /// A prediction's `latency_ms`: indexed for ranges, fast for percentiles.
    pub latency_ms: Field,
    /// The whole event as JSON.
    pub source: Field,
    keywords: [(KeywordField, Field); KeywordField::ALL.len()],
}

impl Fields {
    /// Builds the schema.
    pub fn new() -> Self {
        let mut b = Schema::builder();
        // Nothing is ranked by relevance (hits come back by time), so no field keeps norms.
        let id = b.add_bytes_field("id", BytesOptions::default().set_indexed());
        // Time ranges run on the fast column; an inverted index of times would only cost disk.
        let ts_opts = DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Nanoseconds);
        let ts = b.add_date_field("ts", ts_opts);
        let seq = b.add_u64_field("seq", FAST);
        let keyword_opts = TextOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            )
            .set_fast("raw");
        let keywords =
            KeywordField::ALL.map(|k| (k, b.add_text_field(k.name(), keyword_opts.clone())));
        let message_indexing = TextFieldIndexing::default()
            .set_tokenizer(TEXT_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false);
        let message = b.add_text_field(
            "message",
            TextOptions::default().set_indexing_options(message_indexing),
        );
        let json_indexing = TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false);
        let json_opts = JsonObjectOptions::default().set_indexing_options(json_indexing);
        let fields = b.add_json_field("fields", json_opts.clone());
        let input = b.add_json_field("input", json_opts.clone());
        let output = b.add_json_field("output", json_opts);
        let latency_ms = b.add_f64_field(
            "latency_ms",
            NumericOptions::default().set_indexed().set_fast(),
        );
        let source = b.add_bytes_field("_source", STORED);
        Fields {
            schema: b.build(),
            id,
            ts,
            seq,
            message,
            fields,
            input,
            output,
            latency_ms,
            source,
            keywords,
        }
    }

    /// The tantivy field for a keyword field.
    pub fn keyword(&self, k: KeywordField) -> Field {
        self.keywords
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, f)| *f)
            .unwrap_or(self.id)
    }

    /// Registers the analyzers this schema names on an index.
    pub fn register_analyzers(&self, index: &Index) {
        let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TERM_BYTES))
            .filter(LowerCaser)
            .build();
        index.tokenizers().register(TEXT_ANALYZER, analyzer);
    }

    /// The document for an event; `source` is the event's JSON.
    pub fn document(&self, event: &Event, source: &[u8]) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_bytes(self.id, &event.id.0.to_be_bytes());
        doc.add_date(self.ts, DateTime::from_timestamp_nanos(event.ts.as_nanos()));
        doc.add_u64(self.seq, u64::from(event.seq));
        for (k, field) in &self.keywords {
            if let Some(v) = event.keyword(*k).filter(|v| !v.is_empty()) {
                doc.add_text(*field, v);
            }
        }
        doc.add_text(self.message, &event.message);
        if !event.fields.is_empty() {
            let object: BTreeMap<String, OwnedValue> = event
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), OwnedValue::from(v.clone())))
                .collect();
            doc.add_object(self.fields, object);
        }
        // Only objects can be indexed by path; a scalar or array input stays in `_source`.
        for (field, value) in [(self.input, &event.input), (self.output, &event.output)] {
            if let Some(serde_json::Value::Object(map)) = value
                && !map.is_empty()
            {
                let object: BTreeMap<String, OwnedValue> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), OwnedValue::from(v.clone())))
                    .collect();
                doc.add_object(field, object);
            }
        }
        if let Some(ms) = event.latency_ms.filter(|v| v.is_finite()) {
            doc.add_f64(self.latency_ms, ms);
        }
        doc.add_bytes(self.source, source);
        doc
    }
}

/// Bytes of documents compressed together in the doc store: larger blocks compress better,
/// and reading one hit decompresses one block (well under a millisecond at this size).
pub const DOCSTORE_BLOCK_BYTES: usize = 64 * 1024;

/// Settings of every index: zstd doc store in large blocks.
pub fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..tantivy::IndexSettings::default()
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}
