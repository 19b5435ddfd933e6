//! A real OpenSSH server for the SFTP tests: its own host key, client key, `sshd_config` and
//! SFTP start folder in a temp dir, listening on 127.0.0.1 at a free port, killed on drop.
//! Needs `/usr/sbin/sshd` (Debian package `openssh-server`) and root (sshd drops privileges to
//! the login user, here the current one).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The temp dir holding keys, config and the SFTP folder.
    pub dir: TempDir,
    /// The folder SFTP sessions start in (the exchange root).
    pub root: PathBuf,
    /// The login user.
    pub username: String,
    /// Path of the client's private key (OpenSSH format, unencrypted).
    pub client_key: PathBuf,
    /// The server's host key as `"ssh-ed25519 AAAA…"`.
    pub host_key: String,
}

/// Generates an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "yimen-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

/// The `"<algorithm> <base64>"` part of a `.pub` file.
pub fn public_line(pub_path: &Path) -> String {
    let text = std::fs::read_to_string(pub_path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Every process below `pid` (sshd's per-connection processes), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let current = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == current)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn spawn(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .unwrap();
    Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("sshd starts")
}

impl Sshd {
    /// Starts sshd and waits until it answers with its SSH banner.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts sshd accepting the given client key pair (`path` and `path.pub`), or a fresh one.
    pub async fn start_with(key: Option<&Path>) -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install -y openssh-server"
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("exchange");
        std::fs::create_dir_all(&root).unwrap();
        let host_key_path = dir.path().join("host_ed25519");
        keygen(&host_key_path);
        let client_key = dir.path().join("client_ed25519");
        match key {
            Some(source) => {
                std::fs::copy(source, &client_key).unwrap();
                let mut public = source.as_os_str().to_owned();
                public.push(".pub");
                std::fs::copy(public, dir.path().join("client_ed25519.pub")).unwrap();
            }
            None => keygen(&client_key),
        }
        std::fs::copy(
            dir.path().join("client_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let username = current_user();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nAllowUsers {username}\nLogLevel ERROR\n\
             Subsystem sftp internal-sftp -d {root}\n",
            hk = host_key_path.display(),
            d = dir.path().display(),
            root = root.display(),
        );
        let config_path = dir.path().join("sshd_config");
        std::fs::write(&config_path, config).unwrap();
        let child = spawn(dir.path());
        let sshd = Self {
            child,
            port,
            host_key: public_line(&dir.path().join("host_ed25519.pub")),
            root,
            username,
            client_key,
            dir,
        };
        sshd.wait_ready().await;
        sshd
    }

    /// Stops the server and its per-connection processes (connections drop, the port refuses).
    pub fn stop(&mut self) {
        let sessions = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in sessions {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    /// Starts the server again with the same keys, config and port.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.dir.path());
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        for _ in 0..400 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut banner = [0u8; 4];
                let read =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut banner));
                if matches!(read.await, Ok(Ok(_))) && &banner == b"SSH-" {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        panic!("sshd did not come up on port {}: {log}", self.port);
    }

    /// Mapping-file text for a `file` system reaching this server.
    pub fn mapping(&self, extra: &str) -> String {
        format!(
            "[adapter]\nkind = \"file\"\n[adapter.limits]\nconnect_timeout_ms = 5000\n\
             request_timeout_ms = 10000\n[adapter.settings]\ntransport = \"sftp\"\n\
             host = \"127.0.0.1\"\nport = {}\nusername = \"{}\"\n\
             private_key = {{ file = \"{}\" }}\nknown_host_key = \"{}\"\n{extra}",
            self.port,
            self.username,
            self.client_key.display(),
            self.host_key
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
