//! `gen-kb`: write a synthetic but realistic `kb.db` in the project's schema.
//!
//! Chunks of 150-250 words drawn from a Zipf-distributed vocabulary (see
//! `bench::corpus`), grouped into files with titles and sections, spread over
//! several products and versions. The file is written by fleet-kb's KB
//! writer ([`fleet_kb::build::write_kb`], as `mcp-server kb build` writes,
//! but with the search index built on every core and no `VACUUM`) to a
//! temporary name, checked, and renamed into place. `--pgedge` writes
//! pgEdge's tables only (no `kb_meta`, FTS5 or search index), as pgEdge's
//! own tool would; its generator id goes into a `<out>.generator` file
//! beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use bench::corpus::{GENERATOR_VERSION, Generator};
use clap::Parser;
use fleet_common::kb_file;
use fleet_common::kb_index::{self, build::BuildOptions};
use fleet_kb::build::{Layout, SourceFileRow, dir_of, write_kb};
use fleet_kb::chunk::DocType;
use rusqlite::Connection;

#[derive(Debug, Parser)]
#[command(
    name = "gen-kb",
    about = "Generate a synthetic knowledge base for benchmarks"
)]
struct Args {
    /// Number of chunks to write.
    #[arg(long)]
    chunks: usize,
    /// Knowledge base to write (replaced atomically).
    #[arg(long, required_unless_present = "describe")]
    out: Option<PathBuf>,
    /// Seed of the generator; the same seed and count give the same corpus.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the generator id that would be stored in `kb_meta.generator`
    /// and exit (lets scripts tell whether a cached file is current).
    #[arg(long)]
    describe: bool,
    /// pgEdge's layout: only `chunks` and `source_files`.
    #[arg(long)]
    pgedge: bool,
    /// Embed every chunk with the local static model in this directory,
    /// as `kb build --embed-model` does.
    #[arg(long, conflicts_with = "pgedge")]
    embed_model: Option<PathBuf>,
}

fn generator_id(args: &Args) -> String {
    format!(
        "bench-gen-kb v{GENERATOR_VERSION} seed={} chunks={}{}{}",
        args.seed,
        args.chunks,
        if args.pgedge { " pgedge" } else { "" },
        if args.embed_model.is_some() {
            " embedded"
        } else {
            ""
        }
    )
}

fn main() -> ExitCode {
    bench::exit_with(real_main())
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let id = generator_id(&args);
    if args.describe {
        println!("{id}");
        return Ok(());
    }
    ensure!(args.chunks > 0, "--chunks must be at least 1");
    let out = args
        .out
        .clone()
        .context("--out is required unless --describe")?;
    let tmp = tmp_path(&out);
    let _ = std::fs::remove_file(&tmp);
    let started = Instant::now();
    let result = write(&tmp, &args, &id);
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    if args.pgedge {
        let mut name = out.as_os_str().to_os_string();
        name.push(".generator");
        std::fs::write(&name, format!("{id}\n")).context("writing the generator id")?;
    }
    let size = std::fs::metadata(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .len();
    eprintln!(
        "gen-kb: wrote {} chunks to {} ({:.1} MiB) in {:.1}s",
        args.chunks,
        out.display(),
        size as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "kb.db".into());
    name.push(".gen-tmp");
    out.with_file_name(name)
}

fn write(path: &Path, args: &Args, generator: &str) -> Result<()> {
    let mut conn = Connection::open(path)
        .with_context(|| format!("creating SQLite database {}", path.display()))?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .context("setting pragmas")?;
    let meta = [
        ("build_id", format!("{:016x}", fnv1a(generator.as_bytes()))),
        ("built_at", "2025-01-01T00:00:00Z".to_string()),
        ("generator", generator.to_string()),
    ];
    // Merged, as `kb build` publishes it.
    let index = BuildOptions {
        merge: true,
        ..BuildOptions::fast()
    };
    let model = args
        .embed_model
        .as_deref()
        .map(fleet_kb::embed::StaticModel::load)
        .transpose()?;
    let layout = if args.pgedge {
        Layout::PgEdge
    } else {
        Layout::Ours {
            index: &index,
            meta: &meta,
            embed: model.as_ref(),
        }
    };
    let times = write_kb(&mut conn, dir_of(path), layout, |rows| {
        let mut corpus = Generator::new(args.seed);
        let mut left = args.chunks;
        while left > 0 {
            let file = corpus.file(left);
            left -= file.chunks.len();
            let row = SourceFileRow {
                checksum: &file.checksum,
                path: &file.path,
                project_name: file.project_name,
                project_version: file.project_version,
                doc_type: DocType::Markdown.as_str(),
                written_at: Some("2025-01-01 00:00:00"),
            };
            rows.add_file(&row, file.chunks.iter())?;
        }
        Ok(())
    })?;
    let info = kb_file::inspect(&conn).context("inspecting the new knowledge base")?;
    if args.pgedge {
        ensure!(
            !info.has_fts && info.search_index.is_none() && info.chunk_count == args.chunks as u64,
            "the new pgEdge knowledge base is not what was asked"
        );
        eprintln!(
            "gen-kb: insert {:.1}s (pgEdge layout)",
            times.rows.as_secs_f64()
        );
        return Ok(());
    }
    ensure!(
        info.has_fts
            && info.search_index == Some(kb_index::FORMAT_VERSION)
            && info.chunk_count == args.chunks as u64,
        "the new knowledge base holds {} chunk(s) (FTS: {}, search index: {:?}), expected {}",
        info.chunk_count,
        info.has_fts,
        info.search_index,
        args.chunks
    );
    conn.close()
        .map_err(|(_, e)| e)
        .context("closing the database")?;
    eprintln!(
        "gen-kb: insert {:.1}s, FTS rebuild {:.1}s, search index {:.1}s, embedding {:.1}s",
        times.rows.as_secs_f64(),
        times.fts.as_secs_f64(),
        times.index.as_secs_f64(),
        times.embed.as_secs_f64()
    );
    Ok(())
}

/// FNV-1a, 64 bits: a stable id from the generator description.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
