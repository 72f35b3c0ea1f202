-- Lyrebird test-bed XMPP server (Prosody 0.12).
--
-- This is a TEMPLATE: tests/support/stack.rs replaces every @...@ placeholder
-- and writes the result into a throwaway directory. It binds only 127.0.0.1
-- and relaxes transport security, which is acceptable ONLY for loopback tests:
--   @DIR@        the instance directory (data, logs)
--   @HTTP_PORT@  HTTP: RFC 7395 WebSocket at /xmpp-websocket, BOSH at /http-bind,
--                XEP-0363 uploads at /file_share
--   @C2S_PORT@   plain c2s TCP (RFC 6120), for native test clients
--   @DOMAIN@     the XMPP domain ("localhost")
--   @SQL_DATABASE@  the SQLite file of accounts, rosters and archives

-- Started as root only inside a throwaway network namespace for tests; keeps
-- the process a plain foreground child instead of switching to the prosody
-- user (which could not write the root-owned temp directory).
run_as_root = true
pidfile = "@DIR@/prosody/prosody.pid"
data_path = "@DIR@/prosody/data"
-- Empty: no TLS in this test bed; set so Prosody does not scan /etc/prosody/certs.
certificates = "@DIR@/prosody/certs"

log = {
	{ levels = { min = "@LOG_LEVEL@" }, to = "file", filename = "@DIR@/prosody/prosody.log" };
}

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { @C2S_PORT@ }
s2s_ports = {}
http_interfaces = { "127.0.0.1" }
http_ports = { @HTTP_PORT@ }
https_ports = {}
-- Requests to http://127.0.0.1:PORT/ (Host is not an XMPP host) go to the main host.
http_default_host = "@DOMAIN@"

modules_enabled = {
	"roster"; "saslauth"; "disco"; "carbons"; "pep"; "private"; "blocklist";
	"vcard4"; "vcard_legacy"; "version"; "uptime"; "time"; "ping"; "register";
	"mam"; "smacks"; "csi_simple"; "bosh"; "websocket"; "http";
	-- `prosodyctl shell` over a Unix socket in the data directory: tests put old
	-- messages straight into archives with it (tests/support/stack.rs).
	"admin_shell";
	-- XEP-0215 STUN/TURN services for calls, when the test bed's coturn runs with a
	-- shared secret (time-limited credentials): mod_turn_external.
	@TURN_MODULE@
}
@TURN_EXTERNAL@
-- No TLS on loopback: without mod_tls no STARTTLS is offered (a c2s that offers
-- it without a certificate fails every handshake). No server-to-server at all.
modules_disabled = { "s2s"; "tls"; "offline" }

-- TEST ONLY (INTEROP.md): plain WebSocket on loopback counts as secure.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_websocket_secure = true
consider_bosh_secure = true
cross_domain_websocket = true
cross_domain_bosh = true
allow_registration = false

authentication = "internal_hashed"

-- SQL storage: MAM page queries stay fast with large archives (INTEROP.md).
-- @SQL_DATABASE@ is on a memory file system when there is one (stack.rs): every
-- archived message is a SQLite commit, and with two syncs to a shared disk per
-- commit the server fell behind a chat flood by minutes.
storage = "sql"
sql = { driver = "SQLite3", database = "@SQL_DATABASE@" }
archive_expires_after = "never"
default_archive_policy = true
max_archive_query_results = 1000

-- Tests send bursts; the default c2s rate limits would add latency.
limits = {}

VirtualHost "@DOMAIN@"

Component "conference.@DOMAIN@" "muc"
	modules_enabled = { "muc_mam" }
	restrict_room_creation = false
	muc_room_default_persistent = false

Component "upload.@DOMAIN@" "http_file_share"
	-- Served under the main host's HTTP tree so that http://127.0.0.1:PORT/
	-- works without DNS for upload.@DOMAIN@.
	http_host = "@DOMAIN@"
	http_external_url = "http://127.0.0.1:@HTTP_PORT@/"
	http_file_share_size_limit = 104857600
	http_file_share_daily_quota = 1073741824
