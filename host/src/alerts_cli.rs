//! `dshost alerts list|tail`: the journal, read beside a running dshost.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{AlertsCommand, DeliveryStateArg, JournalFilter};
use dshost::alerts::journal::{DeliveryState, EntryFilter, JournalEntry, JournalReader, JOURNAL_FILE};
use dshost::alerts::sinks::console::readable;

pub fn run(data_dir: &Path, command: AlertsCommand) -> Result<ExitCode> {
    match command {
        AlertsCommand::List(args) => {
            let reader = open(data_dir, &args.filter)?;
            let filter = EntryFilter {
                state: args.state.map(|s| match s {
                    DeliveryStateArg::Pending => DeliveryState::Pending,
                    DeliveryStateArg::Delivered => DeliveryState::Delivered,
                    DeliveryStateArg::Rejected => DeliveryState::Rejected,
                }),
                last: args.last,
                ..base_filter(&args.filter)
            };
            let entries = reader.entries(&filter).context("cannot read the alert journal")?;
            print(&entries, args.filter.json)?;
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Tail(args) => {
            let reader = open(data_dir, &args.filter)?;
            let mut filter = EntryFilter { last: Some(args.lines), ..base_filter(&args.filter) };
            let entries = reader.entries(&filter).context("cannot read the alert journal")?;
            print(&entries, args.filter.json)?;
            if args.no_follow {
                return Ok(ExitCode::SUCCESS);
            }
            // Follow by sequence number: new alerts only (their delivery
            // state is the one at the moment they are printed).
            filter.last = None;
            filter.after_seq = entries.last().map_or(reader.last_seq().unwrap_or(0), |e| e.seq);
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let entries = reader.entries(&filter).context("cannot read the alert journal")?;
                if let Some(last) = entries.last() {
                    filter.after_seq = last.seq;
                }
                if print(&entries, args.filter.json).is_err() {
                    // The reader went away (`| head`).
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

fn open(data_dir: &Path, filter: &JournalFilter) -> Result<JournalReader> {
    let path = filter.journal.clone().unwrap_or_else(|| data_dir.join(JOURNAL_FILE));
    Ok(JournalReader::open(&path)?)
}

fn base_filter(filter: &JournalFilter) -> EntryFilter {
    EntryFilter { source: filter.source.clone(), strategy: filter.strategy.clone(), ..Default::default() }
}

fn print(entries: &[JournalEntry], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for entry in entries {
        if json {
            writeln!(out, "{}", serde_json::to_string(entry)?)?;
        } else {
            let states: Vec<String> = entry
                .delivery
                .iter()
                .map(|(sink, d)| {
                    let attempts =
                        if d.attempts > 1 { format!(" after {} attempts", d.attempts) } else { String::new() };
                    format!("{sink}={}{attempts}", d.state.as_str())
                })
                .collect();
            let snapshot = entry.alert.snapshot.as_ref().map(|s| format!(" | snapshot {}", s.path)).unwrap_or_default();
            writeln!(out, "#{} {} | {}{snapshot}", entry.seq, readable(&entry.alert), states.join(" "))?;
        }
    }
    out.flush()?;
    Ok(())
}
