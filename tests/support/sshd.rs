//! A real OpenSSH server for the SFTP scenarios: its own host key, client key and `sshd_config`
//! in a temp dir, listening on 127.0.0.1 at a free port, serving a given folder as the SFTP start
//! folder (`internal-sftp -d`), killed on drop.
//!
//! Needs `/usr/sbin/sshd` (Debian package `openssh-server`), `ssh-keygen` and root (sshd drops
//! privileges to the login user, here the current one). `UsePAM no`, public keys only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The temp dir holding keys, config and the log.
    pub dir: TempDir,
    /// The folder SFTP sessions start in.
    pub root: PathBuf,
    /// The login user.
    pub username: String,
    /// Path of the client's private key (OpenSSH format, unencrypted).
    pub client_key: PathBuf,
    /// The server's host key as `"ssh-ed25519 AAAA…"`.
    pub host_key: String,
}

fn keygen(path: &Path) -> Result<()> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "yimen-e2e", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .context("running ssh-keygen (package openssh-client)")?;
    if !status.success() {
        bail!("ssh-keygen failed with {status}");
    }
    Ok(())
}

fn public_line(pub_path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(pub_path)
        .with_context(|| format!("reading {}", pub_path.display()))?;
    Ok(text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Sshd {
    /// Starts sshd serving `root` over SFTP and waits until it answers with its SSH banner.
    pub async fn start(root: &Path) -> Result<Self> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} is missing: apt-get install -y openssh-server");
        }
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let dir = tempfile::tempdir().context("creating sshd temp dir")?;
        let host_key_path = dir.path().join("host_ed25519");
        keygen(&host_key_path)?;
        let client_key = dir.path().join("client_ed25519");
        keygen(&client_key)?;
        std::fs::copy(
            dir.path().join("client_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )
        .context("writing authorized_keys")?;
        let username = current_user()?;
        let port = crate::free_port()?;
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
        std::fs::write(dir.path().join("sshd_config"), config).context("writing sshd_config")?;
        let log = std::fs::File::create(dir.path().join("sshd.log")).context("sshd log")?;
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting sshd")?;
        let sshd = Self {
            child,
            port,
            host_key: public_line(&dir.path().join("host_ed25519.pub"))?,
            root: root.to_path_buf(),
            username,
            client_key,
            dir,
        };
        sshd.wait_ready().await?;
        Ok(sshd)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut banner = [0u8; 4];
                let read =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut banner));
                if matches!(read.await, Ok(Ok(_))) && &banner == b"SSH-" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        bail!("sshd did not come up on port {}: {log}", self.port)
    }

    /// The `[adapter.settings]` lines that reach this server (`transport = "sftp"` and its keys).
    pub fn settings_lines(&self) -> String {
        format!(
            "transport = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nusername = \"{}\"\n\
             private_key = {{ file = \"{}\" }}\nknown_host_key = \"{}\"\n",
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
