//! Single-entry proofs: one entry, its inclusion proof and the checkpoint,
//! verifiable offline with the log's verifier key alone.

use base64::prelude::*;
use serde::{Deserialize, Serialize};
use tlog_tiles::{check_record, prove_record, record_hash, Hash, TileHashReader};

use crate::entry::{open_entry, Statement};
use crate::tiles::{
    c2sp_path, data_tile_for, decode_bundle, read_tile, SourceTileReader, TileSource, TILE_WIDTH,
};
use crate::verify::{b64s, parse_verifier_key, verify_checkpoint};
use crate::AttestError;

/// A self-contained proof that one entry is in the log: verifiable with the
/// verifier key alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProofBundle {
    /// Position of the entry in the log.
    pub index: u64,
    /// base64 of the encoded entry (the DSSE envelope JSON).
    pub entry: String,
    /// RFC 6962 inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint the proof is against.
    pub checkpoint: String,
}

impl ProofBundle {
    /// Builds the bundle for `index` from a source, against `checkpoint_text`
    /// (verified first, and the bundle is verified before it is returned).
    pub fn build(
        src: &dyn TileSource,
        checkpoint_text: &[u8],
        vkey: &str,
        index: u64,
    ) -> Result<ProofBundle, AttestError> {
        let cp = verify_checkpoint(checkpoint_text, vkey)?;
        if index >= cp.size() {
            return Err(AttestError::Proof {
                what: "inclusion".into(),
                reason: format!("index {index} >= size {}", cp.size()),
            });
        }
        let tr = SourceTileReader::new(src);
        let thr = TileHashReader::new(cp.size(), *cp.hash(), &tr);
        let proof = prove_record(cp.size(), index, &thr).map_err(|e| tr.explain("inclusion", e))?;
        let dt = data_tile_for(index, cp.size());
        let raw = read_tile(src, &dt)?;
        let mut entries = decode_bundle(&c2sp_path(&dt), &raw, dt.width() as usize)?;
        let entry = entries.swap_remove((index % TILE_WIDTH) as usize);
        let bundle = ProofBundle {
            index,
            entry: BASE64_STANDARD.encode(entry),
            inclusion_proof: b64s(&proof),
            checkpoint: String::from_utf8_lossy(checkpoint_text).into_owned(),
        };
        bundle.verify(vkey)?;
        Ok(bundle)
    }

    /// Verifies checkpoint signature, inclusion and the entry's signature;
    /// returns the statement.
    pub fn verify(&self, vkey: &str) -> Result<Statement, AttestError> {
        let (_, key) = parse_verifier_key(vkey)?;
        let cp = verify_checkpoint(self.checkpoint.as_bytes(), vkey)?;
        let entry = BASE64_STANDARD
            .decode(&self.entry)
            .map_err(|e| AttestError::Decode {
                what: "proof bundle entry".into(),
                reason: e.to_string(),
            })?;
        let proof = self
            .inclusion_proof
            .iter()
            .map(|h| Hash::parse_hash(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AttestError::Decode {
                what: "proof bundle hash".into(),
                reason: e.to_string(),
            })?;
        check_record(
            &proof,
            cp.size(),
            *cp.hash(),
            self.index,
            record_hash(&entry),
        )
        .map_err(|e| AttestError::Proof {
            what: format!(
                "inclusion of entry {} in the tree of size {}",
                self.index,
                cp.size()
            ),
            reason: e.to_string(),
        })?;
        let st = open_entry(&entry, &key, self.index)?;
        if st.predicate.log_index != self.index || st.predicate.log_origin != cp.origin() {
            return Err(AttestError::Entry {
                index: self.index,
                reason: format!(
                    "entry names position {} of {:?}",
                    st.predicate.log_index, st.predicate.log_origin
                ),
            });
        }
        Ok(st)
    }
}
