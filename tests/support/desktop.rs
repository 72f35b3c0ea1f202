//! The real desktop window under test: the `lyrebird` Tauri app in a private Xvfb display,
//! driven through `tauri-driver` (which fronts Debian's `WebKitWebDriver`) with the WebDriver
//! client in [`crate::webdriver`].
//!
//! ```text
//!  test ──HTTP──▶ tauri-driver :P ──▶ WebKitWebDriver :NP ──launches──▶ lyrebird (webview)
//!                      │ env: DISPLAY=:N, LYREBIRD_DATA_DIR, LYREBIRD_DOWNLOADS_DIR, ...
//!  Xvfb :N (1280x800x24, no TCP) ◀──────────────────────────── X11 ────────┘
//! ```
//!
//! Order matters (INTEROP.md): without a display the app panics and the WebDriver session
//! just hangs, so Xvfb is started first and the test waits for its socket. Each app gets its
//! own Xvfb, its own D-Bus session bus (GTK, notifications and the single-instance plugin talk
//! to the session bus; a private one keeps parallel tests apart) and its own data and
//! downloads folders. Everything is in process groups killed on drop.
//!
//! Screenshots go to [`screenshots_dir`] (`$CARGO_TARGET_DIR/lyrebird-screenshots/`), the
//! folder the README names.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;

pub use crate::procfs::{process_name, process_tree, pss_by_mapping, pss_kib};
use crate::webdriver::{Client, Element, Session};

/// WebDriver errors (section 6.6) after which a click is tried again.
const RETRIED_CLICK_ERRORS: [&str; 2] = ["element click intercepted", "element not interactable"];

/// How long Xvfb, the bus and tauri-driver each get to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the `lyrebird` desktop binary is: `$LYREBIRD_DESKTOP`, or next to the test binary's
/// `deps/` folder in the same Cargo target directory (like `lyrebird-cli`).
pub fn desktop_app_path() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("LYREBIRD_DESKTOP") {
        return Ok(PathBuf::from(path));
    }
    let path = profile_dir()?.join("lyrebird");
    if !path.exists() {
        bail!(
            "{} does not exist: build it first (`cargo build -p lyrebird-desktop` after \
             `npm run build` in ui/; ./task test does both)",
            path.display()
        );
    }
    Ok(path)
}

/// `target/<profile>` of the running test or benchmark binary.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let parent = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", exe.display()))?;
    Ok(if parent.ends_with("deps") {
        parent.parent().unwrap_or(parent).to_owned()
    } else {
        parent.to_owned()
    })
}

/// `$CARGO_TARGET_DIR/lyrebird-screenshots` (else the target directory this binary is in).
pub fn screenshots_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => profile_dir()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(std::env::temp_dir),
    };
    target.join("lyrebird-screenshots")
}

/// `tauri-driver`: `$TAURI_DRIVER`, `~/.cargo/bin/tauri-driver`, or on `PATH`.
pub fn tauri_driver_path() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("TAURI_DRIVER") {
        return Ok(PathBuf::from(path));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = PathBuf::from(home).join(".cargo/bin/tauri-driver");
        if path.exists() {
            return Ok(path);
        }
    }
    which("tauri-driver").ok_or_else(|| {
        anyhow!(
            "tauri-driver is missing: `cargo install tauri-driver --version '^2' --locked` \
             (./task test does)"
        )
    })
}

/// The first `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A child process in its own process group, killed (the whole group) on drop.
pub struct GroupChild {
    name: String,
    child: Child,
}

impl GroupChild {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        command.process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (and reaps it).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to the group, SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return;
        };
        let group = Pid::from_raw(pid);
        if !self.exited() {
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while !self.exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !self.exited() {
                eprintln!("{} ignored SIGTERM for {grace:?}; killing it", self.name);
            }
        }
        // Also whatever the leader left behind in its group.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A private X server: `Xvfb :N -screen 0 1280x800x24 -nolisten tcp`.
pub struct Xvfb {
    display: u32,
    _process: GroupChild,
}

impl Xvfb {
    /// Starts Xvfb on the first free display from a random start, and waits for its socket.
    pub fn start(log: &Path) -> Result<Xvfb> {
        let first = 100 + (std::process::id() % 400);
        let mut last_error = anyhow!("no display tried");
        for display in (first..first + 40).filter(|n| !display_taken(*n)) {
            match Self::try_display(display, log) {
                Ok(xvfb) => return Ok(xvfb),
                Err(e) => last_error = e,
            }
        }
        Err(last_error.context("starting Xvfb (apt-get install xvfb; ./task test does)"))
    }

    fn try_display(display: u32, log: &Path) -> Result<Xvfb> {
        let log_file = std::fs::File::create(log)?;
        let mut command = Command::new("Xvfb");
        command
            .arg(format!(":{display}"))
            .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        // Xvfb's lock file /tmp/.X<N>-lock is what keeps parallel tests on different displays:
        // a taken display makes this one exit, and the next is tried.
        let mut process = GroupChild::spawn("Xvfb", command)?;
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if process.exited() {
                bail!(
                    "Xvfb :{display} exited: {}",
                    tail(&std::fs::read_to_string(log).unwrap_or_default(), 5)
                );
            }
            if UnixStream::connect(&socket).is_ok() {
                return Ok(Xvfb {
                    display,
                    _process: process,
                });
            }
            if Instant::now() > deadline {
                bail!("Xvfb :{display} did not open {} in time", socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `DISPLAY` value, e.g. `:123`.
    pub fn display(&self) -> String {
        format!(":{}", self.display)
    }
}

fn display_taken(display: u32) -> bool {
    Path::new(&format!("/tmp/.X{display}-lock")).exists()
        || Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
}

/// A private D-Bus session bus (`dbus-daemon --session`) at a socket in `dir`.
pub struct SessionBus {
    address: String,
    _process: GroupChild,
}

impl SessionBus {
    pub fn start(dir: &Path) -> Result<SessionBus> {
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let mut command = Command::new("dbus-daemon");
        command
            .args(["--session", "--nofork", "--nosyslog"])
            .arg(format!("--address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = GroupChild::spawn("dbus-daemon", command)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while UnixStream::connect(&socket).is_err() {
            if process.exited() || Instant::now() > deadline {
                bail!("dbus-daemon did not open {}", socket.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SessionBus {
            address,
            _process: process,
        })
    }

    /// The `DBUS_SESSION_BUS_ADDRESS` value.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// How to start the desktop app.
#[derive(Debug, Clone)]
pub struct DesktopOptions {
    /// The `lyrebird` binary.
    pub app: PathBuf,
    /// `LYREBIRD_DATA_DIR`: settings and history.
    pub data_dir: PathBuf,
    /// `LYREBIRD_DOWNLOADS_DIR`: received files.
    pub downloads_dir: PathBuf,
    /// Logs of Xvfb, tauri-driver and the app (whose output the driver passes through).
    pub log_dir: PathBuf,
    /// More environment for the app, e.g. `LYREBIRD_PROVISION`.
    pub env: Vec<(String, String)>,
    /// Command-line arguments for the app.
    pub args: Vec<String>,
}

impl DesktopOptions {
    /// The built app, with data, downloads and logs under `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        Ok(Self {
            app: desktop_app_path()?,
            data_dir: dir.join("desktop-data"),
            downloads_dir: dir.join("desktop-downloads"),
            log_dir: dir.join("desktop-logs"),
            env: Vec::new(),
            args: Vec::new(),
        })
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The environment the app needs besides `DISPLAY`: its folders, no accessibility bus, and
    /// the caller's extras. The benchmark uses the same for a direct launch.
    pub fn app_env(&self, bus: &SessionBus) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "LYREBIRD_DATA_DIR".to_owned(),
                self.data_dir.display().to_string(),
            ),
            (
                "LYREBIRD_DOWNLOADS_DIR".to_owned(),
                self.downloads_dir.display().to_string(),
            ),
            (
                "DBUS_SESSION_BUS_ADDRESS".to_owned(),
                bus.address().to_owned(),
            ),
            // No accessibility bus in a test display; without this GTK waits for it.
            ("NO_AT_BRIDGE".to_owned(), "1".to_owned()),
            ("GTK_A11Y".to_owned(), "none".to_owned()),
            (
                "RUST_LOG".to_owned(),
                std::env::var("LYREBIRD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        env.extend(self.env.iter().cloned());
        env
    }
}

/// The desktop app running in its own display, with a WebDriver session on it.
pub struct DesktopApp {
    // Field order is drop order: the session (closing the app) before the driver, the driver
    // before the bus and the display.
    session: Session,
    driver: GroupChild,
    bus: SessionBus,
    xvfb: Xvfb,
    options: DesktopOptions,
    driver_log: PathBuf,
    started: Instant,
}

impl DesktopApp {
    /// Starts Xvfb, a session bus and tauri-driver, then opens a WebDriver session, which
    /// launches the app. Returns once the webview has loaded its page.
    pub fn start(options: DesktopOptions) -> Result<DesktopApp> {
        for dir in [&options.data_dir, &options.downloads_dir, &options.log_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if !options.app.exists() {
            bail!("no desktop app at {}", options.app.display());
        }
        let started = Instant::now();
        let xvfb = Xvfb::start(&options.log_dir.join("xvfb.log"))?;
        let bus = SessionBus::start(&options.log_dir)?;
        let native_driver = which("WebKitWebDriver").ok_or_else(|| {
            anyhow!("WebKitWebDriver is missing: apt-get install webkit2gtk-driver")
        })?;
        let (port, native_port) = (free_port()?, free_port()?);
        let driver_log = options.log_dir.join("tauri-driver-and-app.log");
        let log_file = std::fs::File::create(&driver_log)?;
        let mut command = Command::new(tauri_driver_path()?);
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--native-port")
            .arg(native_port.to_string())
            .arg("--native-driver")
            .arg(&native_driver)
            .env("DISPLAY", xvfb.display())
            .envs(options.app_env(&bus))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file));
        let mut driver = GroupChild::spawn("tauri-driver", command)?;
        let client = Client::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if driver.exited() {
                bail!(
                    "tauri-driver exited:\n{}",
                    tail(
                        &std::fs::read_to_string(&driver_log).unwrap_or_default(),
                        20
                    )
                );
            }
            let listening = TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(200),
            )
            .is_ok();
            let native_listening = TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, native_port)),
                Duration::from_millis(200),
            )
            .is_ok();
            if listening && native_listening {
                break;
            }
            if Instant::now() > deadline {
                bail!("tauri-driver did not listen on {port} / {native_port} in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let session = client
            .new_session(json!({
                "tauri:options": {
                    "application": options.app.display().to_string(),
                    "args": options.args,
                }
            }))
            .with_context(|| {
                format!(
                    "opening a session on the app; driver and app log:\n{}",
                    tail(
                        &std::fs::read_to_string(&driver_log).unwrap_or_default(),
                        30
                    )
                )
            })?;
        let app = DesktopApp {
            session,
            driver,
            bus,
            xvfb,
            options,
            driver_log,
            started,
        };
        app.session
            .wait_for("the page to load", START_TIMEOUT, |s| {
                let state = s.execute("return document.readyState;", vec![])?;
                Ok((state == "complete").then_some(()))
            })
            .with_context(|| app.log_tail())?;
        Ok(app)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn options(&self) -> &DesktopOptions {
        &self.options
    }

    /// The X display the app is on, e.g. `:123`.
    pub fn display(&self) -> String {
        self.xvfb.display()
    }

    /// Time since `start` was called.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The last lines of the driver's and the app's output, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(
            &std::fs::read_to_string(&self.driver_log).unwrap_or_default(),
            60,
        )
    }

    /// The whole log of the driver and the app.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.driver_log).unwrap_or_default()
    }

    /// The pids of the app and every process under it (WebKit's web and network processes),
    /// found from the driver's process tree.
    pub fn app_pids(&self) -> Vec<u32> {
        let app_name = self
            .options
            .app
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tree = process_tree(self.driver.pid());
        let roots: Vec<u32> = tree
            .iter()
            .copied()
            .filter(|pid| process_name(*pid).is_some_and(|n| app_name.starts_with(&n)))
            .collect();
        let mut pids = Vec::new();
        for root in roots {
            for pid in process_tree(root) {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Saves a screenshot as `<screenshots_dir>/<name>.png`, prints and returns its path.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let path = screenshots_dir().join(format!("{name}.png"));
        self.session.screenshot(&path)?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Runs `xdotool` on the app's display (for native dialogs WebDriver cannot reach).
    pub fn xdotool(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", self.display())
            .output()
            .context("running xdotool (apt-get install xdotool; ./task test does)")?;
        if !output.status.success() {
            bail!(
                "xdotool {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Clicks the element `[data-testid=id]` once it exists.
    /// A click that something else would receive (a toast over the button, a panel still
    /// moving) is retried until `timeout`, as a person would wait for the toast to go.
    pub fn click(&self, id: &str, timeout: Duration) -> Result<Element> {
        self.click_css(&crate::webdriver::testid(id), timeout)
    }

    /// [`DesktopApp::click`] for the first element matching `css`.
    pub fn click_css(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        let element = self.session.wait_element(css, timeout)?;
        loop {
            let error = match self.session.click(&element) {
                Ok(()) => return Ok(element),
                Err(error) => error,
            };
            let retried = error
                .downcast_ref::<crate::webdriver::WebDriverError>()
                .is_some_and(|w| RETRIED_CLICK_ERRORS.contains(&w.error.as_str()));
            if !retried || Instant::now() > deadline {
                return Err(error.context(format!("clicking {css}")));
            }
            std::thread::sleep(crate::webdriver::POLL_INTERVAL);
        }
    }

    /// Fills the text field `[data-testid=id]`.
    pub fn fill(&self, id: &str, text: &str, timeout: Duration) -> Result<()> {
        let element = self.session.wait_testid(id, timeout)?;
        self.session.fill(&element, text)
    }

    /// Keeps the bus alive as long as the app (it is only used through the environment).
    pub fn bus_address(&self) -> &str {
        self.bus.address()
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A top-level X window: a child of the root window (there is no window manager under Xvfb,
/// so an application's main window is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XWindow {
    pub id: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
}

/// The root window's children on `display`, from `xwininfo -root -children`.
pub fn top_level_windows(display: &str) -> Result<Vec<XWindow>> {
    let output = Command::new("xwininfo")
        .args(["-root", "-children"])
        .env("DISPLAY", display)
        .output()
        .context("running xwininfo (apt-get install x11-utils)")?;
    if !output.status.success() {
        bail!(
            "xwininfo failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(parse_xwininfo_child)
        .collect())
}

/// One child line: `0x400016 "Linphone": ("linphone" "linphone")  950x610+0+0  +0+0`.
fn parse_xwininfo_child(line: &str) -> Option<XWindow> {
    let line = line.trim();
    let (id, rest) = line.split_once(' ')?;
    if !id.starts_with("0x") {
        return None;
    }
    let name = rest
        .split_once('"')
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(n, _)| n.to_owned())
        .unwrap_or_default();
    let geometry = rest.split_whitespace().find(|w| {
        w.contains('x') && w.contains('+') && w.chars().next().is_some_and(|c| c.is_ascii_digit())
    })?;
    let size = geometry.split('+').next()?;
    let (width, height) = size.split_once('x')?;
    Some(XWindow {
        id: id.to_owned(),
        name,
        width: width.parse().ok()?,
        height: height.parse().ok()?,
    })
}

/// Whether window `id` is mapped and shows more than one colour (something was painted on
/// its background). Reads the window with `xwd` and compares its pixels.
pub fn window_painted(display: &str, id: &str) -> bool {
    let Ok(output) = Command::new("xwd")
        .args(["-silent", "-id", id])
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    output.status.success() && xwd_has_detail(&output.stdout)
}

/// True when an XWD image (X11 `XWDFileHeader`, 25 big-endian 32-bit fields, then the window
/// name, the colour map and the pixels) has at least two different pixel values.
pub fn xwd_has_detail(image: &[u8]) -> bool {
    let field = |index: usize| -> Option<usize> {
        let bytes = image.get(index * 4..index * 4 + 4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let (Some(header), Some(width), Some(height), Some(bits), Some(stride), Some(colors)) = (
        field(0),
        field(4),
        field(5),
        field(11),
        field(12),
        field(19),
    ) else {
        return false;
    };
    let pixel = bits / 8;
    let start = header + colors * 12;
    if pixel == 0 || width == 0 || height == 0 {
        return false;
    }
    let Some(first) = image.get(start..start + pixel) else {
        return false;
    };
    (0..height).any(|row| {
        let offset = start + row * stride;
        image
            .get(offset..offset + width * pixel)
            .is_some_and(|line| line.chunks_exact(pixel).any(|p| p != first))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xwininfo_children_are_parsed() {
        let line = "     0x400016 \"Linphone\": (\"linphone\" \"linphone\")  950x610+0+0  +0+0";
        assert_eq!(
            parse_xwininfo_child(line),
            Some(XWindow {
                id: "0x400016".into(),
                name: "Linphone".into(),
                width: 950,
                height: 610
            })
        );
        assert_eq!(
            parse_xwininfo_child("     0x400018 (has no name): ()  1x1+0+0  +0+0")
                .map(|w| (w.width, w.name)),
            Some((1, String::new()))
        );
        assert_eq!(parse_xwininfo_child("  Root window id: 0x50d"), None);
    }

    fn xwd(pixels: &[u32], width: u32) -> Vec<u8> {
        let mut fields = [0u32; 25];
        fields[0] = 100 + 4; // header with a 4-byte window name
        fields[4] = width;
        fields[5] = pixels.len() as u32 / width;
        fields[11] = 32;
        fields[12] = width * 4;
        fields[19] = 1; // one colour map entry to skip
        let mut image: Vec<u8> = fields.iter().flat_map(|f| f.to_be_bytes()).collect();
        image.extend_from_slice(b"abc\0");
        image.extend_from_slice(&[0u8; 12]);
        image.extend(pixels.iter().flat_map(|p| p.to_be_bytes()));
        image
    }

    #[test]
    fn a_uniform_window_is_blank_and_any_detail_is_paint() {
        assert!(!xwd_has_detail(&xwd(&[7; 16], 4)));
        let mut pixels = [7u32; 16];
        pixels[13] = 8;
        assert!(xwd_has_detail(&xwd(&pixels, 4)));
        assert!(!xwd_has_detail(&[0u8; 10]));
    }
}
