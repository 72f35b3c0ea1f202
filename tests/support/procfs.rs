//! What the test kit reads about processes from /proc: CPU time, memory, open files, threads,
//! parents and names.
//!
//! The few fields the benchmarks and process clean-up need, parsed here rather than with the
//! `procfs` crate, which would cost the test build more than these readers (README, decisions).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The fields of `/proc/PID/stat` the test kit uses (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The executable's name, at most 15 bytes (`comm`).
    pub comm: String,
    /// `R`, `S`, `D`, `Z` (zombie), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// CPU time in clock ticks, user and system.
    pub utime: u64,
    pub stime: u64,
}

/// `/proc/PID/stat`; `None` when the process is gone.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The name is in parentheses and may itself hold spaces and parentheses; the fields after
    // the last ')' are plain: state is field 3, ppid 4, pgrp 5, utime 14 and stime 15.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        comm,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// The pids in /proc right now.
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = stat(pid)?;
    Some((stat.utime + stat.stime) as f64 / clock_ticks_per_second())
}

/// CPU time of every process named `comm` (a server that runs as several workers).
pub fn cpu_seconds_of_all(comm: &str) -> f64 {
    all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|stat| stat.comm == comm)
        .map(|stat| (stat.utime + stat.stime) as f64 / clock_ticks_per_second())
        .sum()
}

/// Resident memory in KiB, (now, peak), from `VmRSS` and `VmHWM` in `/proc/PID/status`.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// How many file descriptors `pid` has open (entries of `/proc/PID/fd`; sockets included).
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// How many threads `pid` runs (`Threads:` in `/proc/PID/status`).
pub fn threads(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// `pid` and all its descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|child| Some((child, stat(child)?.ppid)))
        .collect();
    let mut tree = vec![pid];
    let mut index = 0;
    while let Some(&current) = tree.get(index) {
        for (child, parent) in &parents {
            if *parent == current && !tree.contains(child) {
                tree.push(*child);
            }
        }
        index += 1;
    }
    tree
}

/// The process's `comm` (at most 15 bytes of its name).
pub fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|n| n.trim().to_owned())
}

/// The proportional set size of `pid` in KiB (`Pss:` of `/proc/<pid>/smaps_rollup`): each
/// shared page counted once across the processes sharing it.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(pss_line)
}

/// PSS (KiB) of a process by what is mapped: each file by its path, anonymous memory as
/// `[anon]` (heap and thread stacks included), largest first. Where the memory of
/// [`pss_kib`] goes.
pub fn pss_by_mapping(pid: u32) -> Vec<(String, u64)> {
    match std::fs::read_to_string(format!("/proc/{pid}/smaps")) {
        Ok(text) => pss_by_mapping_of(&text),
        Err(_) => Vec::new(),
    }
}

fn pss_by_mapping_of(smaps: &str) -> Vec<(String, u64)> {
    let mut totals: HashMap<String, u64> = HashMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        if let Some(kib) = pss_line(line) {
            *totals.entry(current.clone()).or_default() += kib;
        } else if let Some(path) = mapping_path(line) {
            current = match path {
                "" | "[heap]" | "[stack]" => "[anon]".to_owned(),
                other if other.starts_with("[stack:") => "[anon]".to_owned(),
                other => other.to_owned(),
            };
        }
    }
    let mut sorted: Vec<(String, u64)> = totals.into_iter().collect();
    sorted.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    sorted
}

/// The KiB of a `Pss:` line.
fn pss_line(line: &str) -> Option<u64> {
    line.strip_prefix("Pss:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The path of a mapping's header line (range, perms, offset, device, inode, path), which may
/// hold spaces; `""` for an anonymous mapping; `None` for any other line.
fn mapping_path(line: &str) -> Option<&str> {
    let mut parts = line.splitn(6, ' ');
    let range = parts.next()?;
    if !range.contains('-') || !range.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    // perms, offset, device, inode
    for _ in 0..4 {
        parts.next()?;
    }
    Some(parts.next().unwrap_or("").trim())
}

/// The kernel's clock tick for /proc times (`getconf CLK_TCK`; 100 on Linux in practice).
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, Result};

    #[test]
    fn stat_fields_survive_a_name_with_spaces_and_parentheses() -> Result<()> {
        let line = "4242 (Web (Content) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 \
                    20 0 9 0 12345 0 0";
        let stat = parse_stat(line).context("not parsed")?;
        assert_eq!(stat.comm, "Web (Content) 1");
        assert_eq!(stat.state, 'S');
        assert_eq!((stat.ppid, stat.pgrp), (17, 4242));
        assert_eq!((stat.utime, stat.stime), (250, 31));
        Ok(())
    }

    #[test]
    fn this_process_is_found_with_its_child() -> Result<()> {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .context("starting sleep")?;
        let tree = process_tree(me);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree.first(), Some(&me));
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert!(cpu_seconds(me).is_some());
        assert!(memory_kib(me).is_some_and(|(now, peak)| now > 0 && peak >= now));
        assert!(pss_kib(me).is_some_and(|kib| kib > 0));
        assert!(!pss_by_mapping(me).is_empty());
        assert!(process_name(me).is_some());
        assert!(
            open_fds(me).is_some_and(|n| n >= 3),
            "stdin, stdout, stderr at least"
        );
        assert!(threads(me).is_some_and(|n| n >= 1));
        Ok(())
    }

    #[test]
    fn mapping_paths_keep_their_spaces() {
        let smaps = "\
7f00-7f10 r-xp 00000000 08:01 123                        /opt/My App/lib one.so
Size:                 64 kB
Pss:                  12 kB
7f10-7f20 rw-p 00000000 00:00 0 
Pss:                   4 kB
7f20-7f30 rw-p 00000000 00:00 0                          [heap]
Pss:                   6 kB
";
        assert_eq!(
            pss_by_mapping_of(smaps),
            vec![
                ("/opt/My App/lib one.so".to_owned(), 12),
                ("[anon]".to_owned(), 10),
            ]
        );
    }
}
