//! Command-line arguments. The doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cli::parse_size;

/// Backups that survive bad media: each file is compressed on its own,
/// then the members are tarred, one container per directory.
///
/// Exit status: 0 success; 1 finished, but some files were skipped,
/// damaged or changed (each is named on stderr); 2 error; 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "pybackup", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print a summary of what was restored even when all went well.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Worker threads [default: number of CPUs].
    #[arg(short, long, global = true, value_name = "N")]
    pub jobs: Option<usize>,
    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Send at most RATE to remote repositories (s3://, sftp://, webdav://),
    /// so the line stays usable: KiB/s (1024), or with a unit (500K, 2M) a
    /// second. Local paths are not limited.
    #[arg(long, global = true, value_name = "RATE", value_parser = cli::parse_rate)]
    pub limit_upload: Option<u64>,
    /// Read at most RATE from remote repositories (as --limit-upload).
    #[arg(long, global = true, value_name = "RATE", value_parser = cli::parse_rate)]
    pub limit_download: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress a directory tree into an .xtar archive.
    Compress(CompressArgs),
    /// Unpack every container of an archive into its compressed members (the
    /// .zip files and the indexes), without decompressing them.
    Launch(LaunchArgs),
    /// Rebuild the original tree from launched members: unzip them and restore
    /// empty directories, links and metadata.
    Expand(ExpandArgs),
    /// Restore a whole archive, or chosen paths, in one parallel step.
    Extract(ExtractArgs),
    /// List the entries of an archive with sizes, stored sizes and mtimes.
    List(ListArgs),
    /// Write the manifest of a tree: every entry's path, type, mode, mtime,
    /// size, SHA-256 and link target, one sorted line each.
    Manifest(ManifestArgs),
    /// Save a tree's directory structure, or recreate it.
    #[command(subcommand)]
    Struct(StructCommand),
    /// Show what changed between two snapshots. Each side is a directory, an
    /// .xtar archive, or a manifest file. Exit status 0: same, 1: different,
    /// 2: error.
    Diff(DiffArgs),
    /// Decompress every member of an archive and check its CRC-32 and SHA-256;
    /// name every damaged or missing file. Exit status 1 if any.
    Verify(VerifyArgs),
    /// Recover every intact file from a damaged archive, trusting no single
    /// header, index or container. Prints a report naming every file as
    /// intact, damaged or missing. Exit status 0 only if everything was
    /// recovered, 1 otherwise, 2 on error.
    Salvage(SalvageArgs),
    /// Back up a directory into a repository of versioned snapshots:
    /// the first run stores everything, later runs only what changed.
    Backup(BackupArgs),
    /// List the snapshots of a repository.
    Snapshots(SnapshotsArgs),
    /// Restore a snapshot of a repository (REPO or REPO@SNAPSHOT), or some
    /// paths of it.
    Restore(RestoreArgs),
    /// Remove old snapshots by a retention policy; data that kept snapshots
    /// still need is consolidated first.
    Forget(ForgetArgs),
    /// Copy a repository to another place (a directory, or `s3://BUCKET/PREFIX`
    /// with its settings in the AWS_* environment variables), or bring it
    /// up to date there: only what the destination lacks is sent, each
    /// object is read back and checked by SHA-256, and what the source no
    /// longer has is removed last. A copy cut short is finished by the
    /// next one.
    Copy(CopyArgs),
    /// Check that every snapshot of a repository can be restored.
    Check(CheckArgs),
    /// Make a repository for `backup`; with --encrypt, an encrypted one,
    /// and its ways in (the owner's key, a printed recovery key, more
    /// recipients). A backup into a path that is no repository makes an
    /// unencrypted one on its own.
    Init(InitArgs),
    /// Recovery keys: make one, split one into shares for friends or
    /// places, put one together from shares.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Bring a repository written by an older pybackup to the current
    /// repository format (a copy of every snapshot's record beside its
    /// archive). `backup` does the same on its own; this does only that.
    Migrate(MigrateArgs),
    /// Add Reed-Solomon recovery data to archives (or any files), as
    /// parity volumes BASE.p01.xtar-rs, ...
    Protect(ProtectArgs),
    /// Check files protected by `protect` (or `compress --redundancy`) and
    /// rebuild damaged or missing ones in place when the recovery data
    /// allows. Exit status 0: all intact or repaired, 1: damage left, 2: error.
    Repair(RepairArgs),
    /// Run the named jobs of the config file (all of them without names):
    /// backup, then forget by the job's policy, then a quick check every N
    /// runs. One job's failure does not stop the others.
    Run(RunArgs),
    /// Each job's last success (time and age), last failure, repository
    /// size and snapshots; warns when a last success is too old. Exit
    /// status 1 when any job needs attention.
    Status(StatusArgs),
    /// Run jobs by themselves: systemd user timers (or a crontab line).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Write a commented example config file with one job.
    InitConfig(InitConfigArgs),
    /// The config file: check it without running anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

pub use cli::WalkArgs;

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// The directory to archive.
    pub src: PathBuf,
    /// The archive to write, or `-` for standard output [default: NAME.xtar
    /// in the current directory, or beside SRC if the current directory is
    /// inside SRC].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Where to stage the archive when OUT is not a regular file (standard
    /// output, a pipe) [default: the system's temporary directory], and
    /// where format version 3 keeps the compressed files while it orders
    /// them by size [default: beside OUT]. Either takes about the
    /// archive's size.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub walk: WalkArgs,
    #[command(flatten)]
    pub level: LevelArgs,
    /// Archive only the files (or directories) listed in FILE (`-`: standard
    /// input), one per line, with the directories above them. Paths may be
    /// absolute or relative to the current directory, and must lie in SRC.
    /// `pyactivity --print0` writes such a list.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    /// The --files-from list is separated by NUL bytes, not newlines.
    #[arg(long, requires = "files_from")]
    pub null: bool,
    /// Archive only files changed within this long before now (`2d`, `12h`),
    /// with the directories above them.
    #[arg(long, value_name = "DURATION", conflicts_with = "files_from", value_parser = cli::parse_duration)]
    pub changed_within: Option<std::time::Duration>,
    /// Cut the archive into volumes of at most SIZE: bytes with a unit, or
    /// a medium: cd650, cd700, dvd, dvd-dl, bd25, bd50. Writes OUT.001.xtar,
    /// OUT.002.xtar, … (OUT without `.xtar`), each a complete archive.
    #[arg(long, value_name = "SIZE", value_parser = parse_medium)]
    pub volume_size: Option<u64>,
    /// Add Reed-Solomon recovery data as parity volumes beside OUT, as
    /// `pybackup protect` does: a percentage of the data for scattered
    /// damage (`10`), whole volumes that may be lost (`1vol`), or both
    /// (`1vol+5%`). With --volume-size, parity volumes are cut to that size.
    #[arg(long, value_name = "REDUNDANCY")]
    pub redundancy: Option<parity::Redundancy>,
    /// Archive format version: 3 (files in packs, smallest first, the
    /// manifest first) or 2 (one container per directory, as `launch`
    /// expects) [default: 3; volume sets are written in version 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=3))]
    pub format_version: Option<u32>,
    /// How each file is compressed: `deflate`, which every zip reader
    /// reads, or `zstd`, smaller: zstd frames with a dictionary made of
    /// the tree's own small files (format version 6, read by pybackup, or
    /// by `unzip` then `zstd -d -D` as docs/format/xtar.md §A11 shows)
    /// [default: deflate].
    #[arg(long, value_enum, value_name = "CODEC")]
    pub codec: Option<CodecArg>,
    /// The zstd level with --codec zstd, 1 to 22 [default: 19]; above 19
    /// is slow and needs more memory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=22))]
    pub zstd_level: Option<u32>,
    #[command(flatten)]
    pub encrypt: EncryptArgs,
}

/// `--codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// Deflate (format version 3).
    Deflate,
    /// zstd with a dictionary (format version 6).
    Zstd,
}

/// Encrypting a new archive.
#[derive(Debug, Args, Clone, Default)]
pub struct EncryptArgs {
    /// Encrypt the archive (contents and names) to this age recipient
    /// (`age1…`, as `pybackup key new` or `age-keygen` prints it);
    /// repeatable. Any one of the recipients' keys opens it: give at least
    /// your own key and a recovery key kept apart.
    #[arg(long = "recipient", short = 'r', value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// Encrypt to every recipient in FILE: one `age1…` per line, `#`
    /// comments (age's recipients file); repeatable.
    #[arg(long = "recipients-file", short = 'R', value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
}

/// Keys to open encrypted archives with.
#[derive(Debug, Args, Clone, Default)]
pub struct OpenArgs {
    /// A key that opens an encrypted archive: the owner's key file (plain,
    /// or protected by a passphrase, which is asked for), a printed
    /// recovery key, or a file of share lines of one (enough of them; the
    /// shares of several files add up). Repeatable.
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// Compression level: `-0` stores, `-1` is fastest, `-9` smallest; default 6.
#[derive(Debug, Args, Clone, Default)]
#[group(multiple = false)]
pub struct LevelArgs {
    /// Deflate level, 0 (store only) to 9 [default: 6].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: Option<u32>,
    /// Same as --level 0.
    #[arg(short = '0', hide = true)]
    pub l0: bool,
    /// Same as --level 1 (fastest).
    #[arg(short = '1')]
    pub l1: bool,
    /// Same as --level 2.
    #[arg(short = '2', hide = true)]
    pub l2: bool,
    /// Same as --level 3.
    #[arg(short = '3', hide = true)]
    pub l3: bool,
    /// Same as --level 4.
    #[arg(short = '4', hide = true)]
    pub l4: bool,
    /// Same as --level 5.
    #[arg(short = '5', hide = true)]
    pub l5: bool,
    /// Same as --level 6.
    #[arg(short = '6', hide = true)]
    pub l6: bool,
    /// Same as --level 7.
    #[arg(short = '7', hide = true)]
    pub l7: bool,
    /// Same as --level 8.
    #[arg(short = '8', hide = true)]
    pub l8: bool,
    /// Same as --level 9 (smallest).
    #[arg(short = '9')]
    pub l9: bool,
}

impl LevelArgs {
    /// The level given on the command line, if any.
    pub fn given(&self) -> Option<u32> {
        let flags = [self.l0, self.l1, self.l2, self.l3, self.l4, self.l5, self.l6, self.l7, self.l8, self.l9];
        self.level.or_else(|| flags.iter().position(|&f| f).map(|i| i as u32))
    }

    /// The level chosen.
    pub fn value(&self) -> u32 {
        let flags = [self.l0, self.l1, self.l2, self.l3, self.l4, self.l5, self.l6, self.l7, self.l8, self.l9];
        self.level.or_else(|| flags.iter().position(|&f| f).map(|i| i as u32)).unwrap_or(6)
    }
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The archive (`-` for standard input).
    pub archive: PathBuf,
    /// Where to put the members.
    pub dir: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// A directory made by `pybackup launch`.
    pub dir: PathBuf,
    /// Where to rebuild the tree.
    #[arg(short = 'C', long = "directory", value_name = "DEST", default_value = ".")]
    pub dest: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The archive (`-` for standard input).
    pub archive: PathBuf,
    /// Where to restore (created if missing).
    pub dest: PathBuf,
    /// Restore only these paths (relative to the archive root) and what is
    /// below them.
    pub paths: Vec<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub overwrite: bool,
    /// Read this volume of a set as an archive on its own, without the
    /// other volumes.
    #[arg(long)]
    pub single_volume: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The directory.
    pub dir: PathBuf,
    /// Write the manifest to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Record metadata only, without reading file contents.
    #[arg(long)]
    pub no_hash: bool,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Subcommand)]
pub enum StructCommand {
    /// Save the directory structure of DIR (every directory, with its mode and
    /// mtime) to FILE, in the manifest format.
    Store {
        /// The tree.
        dir: PathBuf,
        /// Where to save it.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        walk: WalkArgs,
    },
    /// Recreate the directories saved in FILE (or in any manifest) under DEST,
    /// empty ones included, with their modes and mtimes.
    Expand {
        /// Where to recreate them.
        dest: PathBuf,
        /// A file written by `struct store` or `manifest`.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old side: a directory, an .xtar archive, a manifest file, or a
    /// snapshot of a repository as REPO@SNAPSHOT.
    pub a: PathBuf,
    /// The new side, as the old one.
    pub b: PathBuf,
    /// Compare only these paths (relative to the roots) and what is below them.
    pub paths: Vec<PathBuf>,
    /// Print JSON Lines, one object per change, with a `type` field.
    #[arg(long)]
    pub json: bool,
    /// For directory sides: compare size and mtime only, without hashing
    /// (moves are then not detected).
    #[arg(long)]
    pub no_hash: bool,
    #[command(flatten)]
    pub walk: WalkArgs,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    /// The archive (`-` for standard input).
    pub archive: PathBuf,
    /// Also compare the archive with this live tree, and list the differences.
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,
    /// Read this volume of a set as an archive on its own, without the
    /// other volumes.
    #[arg(long)]
    pub single_volume: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args, Clone)]
pub struct SalvageArgs {
    /// The damaged archive (a regular file).
    pub archive: PathBuf,
    /// Where to put what is recovered (created if needed).
    pub dest: PathBuf,
    /// Keep what can be read of each damaged file as NAME.damaged.
    #[arg(long)]
    pub keep_damaged: bool,
    /// Replace existing files in DEST.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the report as JSON Lines: one object per file, then a summary.
    #[arg(long)]
    pub json: bool,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Read this volume of a set as an archive on its own, without the
    /// other volumes.
    #[arg(long)]
    pub single_volume: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to back up.
    pub src: PathBuf,
    /// The repository (created if it does not exist).
    pub repo: PathBuf,
    /// Compare file content (SHA-256) instead of size, times and inode.
    #[arg(long)]
    pub checksum: bool,
    /// Write a checkpoint archive after about this much input (or 50,000
    /// files), so that an interrupted run loses at most that much work
    /// [default: 1GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub checkpoint: Option<u64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The machine name to record [default: this machine's host name]. The
    /// parent of a run is the newest snapshot of the same host and source.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Compare with this snapshot (a name or unique prefix) instead of the
    /// newest of the same host and source.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    #[command(flatten)]
    pub level: LevelArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
    #[command(flatten)]
    pub open: OpenArgs,
}

/// Which snapshots a command looks at.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots taken on this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Only snapshots of this source directory (as `backup` was given it;
    /// it is recorded absolute, with links resolved).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// `pybackup copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The repository to copy: a directory or `s3://BUCKET/PREFIX`.
    pub src: String,
    /// Where to: a directory (made if needed) or `s3://BUCKET/PREFIX`.
    pub dst: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `pybackup init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository to make (a new or empty directory).
    pub repo: PathBuf,
    /// Encrypt every archive and record of the repository (to a master key
    /// that the ways in below open; backups need none of them).
    #[arg(long)]
    pub encrypt: bool,
    /// The owner's key: read if the file exists (its passphrase asked for
    /// when it is protected), else made and written protected by a
    /// passphrase. Its way in is labelled `owner`.
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    pub owner_key: Option<PathBuf>,
    /// Write the new recovery key to this file (mode 0600) instead of
    /// printing it on standard output.
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    pub recovery_key: Option<PathBuf>,
    /// One more way in: `LABEL=age1…` (or `age1…`, labelled
    /// `recipient-N`), for example a friend's key. Repeatable.
    #[arg(long = "recipient", short = 'r', value_name = "[LABEL=]RECIPIENT", requires = "encrypt")]
    pub recipients: Vec<String>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a recovery key: an age identity (`AGE-SECRET-KEY-1…`) to print
    /// and keep apart. With it alone, no passphrase, whatever was encrypted
    /// to its public key (`age1…`, printed on standard error) opens.
    New {
        #[command(flatten)]
        out: KeyOutArgs,
    },
    /// Split a recovery key into shares, any THRESHOLD of which give it
    /// back (fewer tell nothing about it). Prints one line per share.
    Split {
        /// The key file (an `age-keygen` file), or `-` for standard input.
        #[arg(default_value = "-")]
        key: PathBuf,
        /// Shares needed to put the key together again.
        #[arg(long, short = 'k', value_name = "K")]
        threshold: usize,
        /// Shares to make.
        #[arg(long, short = 'n', value_name = "N")]
        shares: usize,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// List the ways into an encrypted repository (no key needed).
    List {
        /// The repository.
        repo: PathBuf,
    },
    /// Add a way into an encrypted repository: a recipient's key opens it
    /// from now on, old archives included (only the keyring is written).
    /// Needs a key that opens it now (-i).
    Add {
        /// The repository.
        repo: PathBuf,
        /// A name for the way in (one word).
        #[arg(long)]
        label: String,
        /// Its public key (`age1…`); or --new-key.
        #[arg(long, value_name = "age1…", required_unless_present = "new_key", conflicts_with = "new_key")]
        recipient: Option<String>,
        /// Make a new key for it and write it to this file (mode 0600;
        /// protected by a passphrase with --protect).
        #[arg(long, value_name = "FILE")]
        new_key: Option<PathBuf>,
        /// Protect the new key file with a passphrase.
        #[arg(long, requires = "new_key")]
        protect: bool,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Remove a way into an encrypted repository (only the keyring is
    /// written; copies in archives made before keep it). Needs a key of a
    /// way that stays (-i), so that nobody locks himself out.
    Remove {
        /// The repository.
        repo: PathBuf,
        /// The way's label.
        #[arg(long)]
        label: String,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Put a recovery key together from shares (one per line, in any
    /// order, from files or standard input) and check it against them.
    Combine {
        /// Files holding share lines, or `-` for standard input.
        #[arg(default_value = "-")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        out: KeyOutArgs,
    },
}

/// Where a key is written, and how.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyOutArgs {
    /// Write the key to this file (created, mode 0600; never replaced)
    /// instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Protect the key file with a passphrase (age's scrypt: `age -d -i
    /// FILE` asks for it): the owner's key, kept on the computer. A
    /// recovery key to print is left unprotected.
    #[arg(long, requires = "output")]
    pub protect: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// Where a passphrase comes from.
#[derive(Debug, Args, Clone, Default)]
pub struct PassphraseArgs {
    /// Read the passphrase from the first line of this file instead of
    /// asking on the terminal (for scripts; keep the file private).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The repository.
    pub repo: PathBuf,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// The repository.
    pub repo: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print JSON Lines, one object per snapshot.
    #[arg(long)]
    pub json: bool,
    /// Also list checkpoint and data archives, not only snapshots.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// REPO for the newest snapshot, or REPO@SNAPSHOT (a name, a unique
    /// prefix of one, or `latest`).
    pub source: String,
    /// Where to restore (created if needed).
    pub dest: PathBuf,
    /// Restore only these paths (relative to the snapshot's root) and what
    /// is below them.
    pub paths: Vec<PathBuf>,
    /// Replace existing files in DEST.
    #[arg(long)]
    pub overwrite: bool,
    /// Leave out entries with this name (repeatable), as `backup` does.
    #[arg(long, value_name = "NAME")]
    pub exclude: Vec<String>,
    /// Leave out paths matching this glob (repeatable); with
    /// --include-glob, the longest matching pattern wins, as in `backup`.
    #[arg(long, value_name = "GLOB")]
    pub exclude_glob: Vec<String>,
    /// Restore only paths matching this glob, and the directories above
    /// them (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include_glob: Vec<String>,
    /// With REPO or REPO@latest: the newest snapshot of this host and
    /// source.
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The repository.
    pub repo: PathBuf,
    /// Apply the policy to these snapshots only (the policy is applied to
    /// each host and source on its own in any case).
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: usize,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: usize,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: usize,
    /// Say what would be done, and do nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The repository.
    pub repo: PathBuf,
    /// Also decompress every stored file and check its SHA-256.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a part of the archives whole: `K/N` (part K of N: parts 1/N to
    /// N/N together read every archive once, so a full check can be spread
    /// over N days) or `P%` (a random P percent).
    #[arg(long, value_name = "K/N|P%", value_parser = repo::ReadData::parse_subset)]
    pub read_data_subset: Option<repo::ReadData>,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// The files to protect: an archive, or the volumes of a set. They must
    /// be in one directory, with the parity volumes beside them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Recovery data: a percentage of the data for scattered damage (`10`),
    /// whole files that may be lost (`1vol`: any one of the files or parity
    /// volumes), or both (`1vol+5%`).
    #[arg(short, long, value_name = "REDUNDANCY", default_value = "10")]
    pub redundancy: parity::Redundancy,
    /// Name of the parity volumes, BASE.p01.xtar-rs, ... [default: the first
    /// file without `.xtar` (and a volume number)].
    #[arg(short, long, value_name = "BASE")]
    pub output: Option<PathBuf>,
    /// The largest parity volume: bytes with a unit, or a medium: cd650,
    /// cd700, dvd, dvd-dl, bd25, bd50 [default: one parity volume].
    #[arg(long, value_name = "SIZE", value_parser = parse_medium)]
    pub volume_size: Option<u64>,
    /// Block size (a multiple of 64) [default: chosen from the size of the
    /// data and the 2048-byte sector].
    #[arg(long, value_name = "BYTES")]
    pub block_size: Option<u64>,
    /// Replace existing parity volumes.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Parity volumes (BASE.pNN.xtar-rs), or any file of a protected set:
    /// the parity volumes beside it are found by name.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only check and report; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Usable capacity of each medium: its data sectors (2048 bytes each),
/// less 4 MiB for the file system.
pub const MEDIA: [(&str, u64); 6] = [
    ("cd650", 333_000 * 2048 - (4 << 20)),
    ("cd700", 360_000 * 2048 - (4 << 20)),
    ("dvd", 2_295_104 * 2048 - (4 << 20)),
    ("dvd-dl", 4_173_824 * 2048 - (4 << 20)),
    ("bd25", 12_219_392 * 2048 - (4 << 20)),
    ("bd50", 24_438_784 * 2048 - (4 << 20)),
];

fn parse_medium(s: &str) -> Result<u64, String> {
    match MEDIA.iter().find(|(name, _)| name.eq_ignore_ascii_case(s.trim())) {
        Some(&(_, size)) => Ok(size),
        None => parse_size(s),
    }
}

/// Which config file.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// The config file [default: $XDG_CONFIG_HOME/pybackup/config.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the state of past runs is kept.
#[derive(Debug, Args, Clone, Default)]
pub struct StateArgs {
    /// The state file [default: $XDG_STATE_HOME/pybackup/jobs.json].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The jobs to run [default: every job of the file].
    pub names: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Override the job's `checksum`.
    #[arg(long)]
    pub checksum: bool,
    /// Override the job's `checkpoint`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub checkpoint: Option<u64>,
    /// Override the job's `host`.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Override the job's `parent`.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Print each backup's summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub level: LevelArgs,
    /// Walk options given here replace the job's (each list as a whole).
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The jobs to show [default: every job of the file].
    pub names: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Print JSON Lines, one object per job.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Write a systemd user service and timer that run JOB by its
    /// `schedule` (Persistent=true: a run missed while the machine was off
    /// happens at the next start). Nothing is enabled unless --enable;
    /// where systemd is absent, print the crontab line instead.
    Install {
        /// The job.
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
        /// Also enable and start the timer (`systemctl --user enable --now`).
        #[arg(long)]
        enable: bool,
        /// Print the crontab line, whether or not systemd is there.
        #[arg(long, conflicts_with_all = ["enable", "systemd"])]
        cron: bool,
        /// Write the systemd units even where systemd is not running now
        /// (a machine being prepared).
        #[arg(long)]
        systemd: bool,
    },
    /// Stop and remove JOB's service and timer.
    Remove {
        /// The job.
        name: String,
    },
    /// The timers installed, and when they run.
    List,
}

#[derive(Debug, Args)]
pub struct InitConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file: every key, value and job, without running
    /// anything. Errors name the line and column.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The archive (`-` for standard input).
    pub archive: PathBuf,
    /// Print JSON Lines, one object per entry, with a `type` field.
    #[arg(long)]
    pub json: bool,
    /// Read this volume of a set as an archive on its own, without the
    /// other volumes.
    #[arg(long)]
    pub single_volume: bool,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn level_flags() {
        let cli = Cli::parse_from(["pybackup", "compress", "src", "-9"]);
        let Command::Compress(c) = cli.command else { panic!("compress") };
        assert_eq!(c.level.value(), 9);
        let cli = Cli::parse_from(["pybackup", "compress", "src"]);
        let Command::Compress(c) = cli.command else { panic!("compress") };
        assert_eq!(c.level.value(), 6);
        assert!(Cli::try_parse_from(["pybackup", "compress", "src", "-1", "-9"]).is_err());
    }
}
