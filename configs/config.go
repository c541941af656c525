// Package configs holds the gateway's configuration: the documented struct with each default beside its
// field, loading and validation with errors that name the file and the setting, and the embedded
// examples (production example, LDAP schema, sample directory).
package configs

// Config is the whole configuration file (TOML). Each field's `default` tag is its default and its `doc`
// tag is its reference text; docs/config.md is generated from them (`cafgate config doc`).
type Config struct {
	Hostname    string            `toml:"hostname" default:"localhost" doc:"Host name the gateway uses in its SMTP greeting and Message-IDs; must match the TLS certificate."`
	DataDir     string            `toml:"data_dir" default:"/var/lib/cafgate" doc:"Directory for the database, the content key and the admin socket when their own settings are empty. Relative paths in this file are taken from the file's own directory."`
	Log         LogConfig         `toml:"log"`
	TLS         TLSConfig         `toml:"tls"`
	SMIME       SMIMEConfig       `toml:"smime"`
	SMTP        SMTPConfig        `toml:"smtp"`
	HTTPS       HTTPSConfig       `toml:"https"`
	IMAP        IMAPConfig        `toml:"imap" doc:"Hosted mailboxes: the mail domains whose practitioners read their packages in a mailbox on the gateway, over IMAPS or IMAP with STARTTLS."`
	API         APIConfig         `toml:"api" doc:"The HTTPS API for case systems (/v1/...): request limits, rate limits and idempotency keys (docs/api.md)."`
	Pickup      PickupConfig      `toml:"pickup" doc:"One-time-link notifications and the HTTPS pickup page (under /pickup/ on the HTTPS listener) for recipients without a valid S/MIME certificate: directory password plus a TOTP code."`
	Store       StoreConfig       `toml:"store"`
	Ledger      LedgerConfig      `toml:"ledger" doc:"The tamper-evident ledger: its signing key, signed checkpoints kept outside the database, and an optional witness (docs/ledger.md)."`
	Admin       AdminConfig       `toml:"admin"`
	Trust       TrustConfig       `toml:"trust" doc:"S/MIME certificate validation: trust anchors per agency and revocation checking."`
	Relay       RelayConfig       `toml:"relay" doc:"Outbound delivery: routes per destination domain, retries, delay warnings and failure reports (DSNs)."`
	Directories []DirectoryConfig `toml:"directory" doc:"The practitioner directories, one [[directory]] table each. At least one is required; every mail domain is answered by exactly one directory."`
}

// LogConfig sets the structured log.
type LogConfig struct {
	Level  string `toml:"level" default:"info" doc:"Lowest level written: debug, info, warn or error. No level writes passwords, message content, subject lines or child identifiers."`
	Format string `toml:"format" default:"json" doc:"json (one object per line) or text (logfmt)."`
}

// TLSConfig is the certificate every TLS listener presents.
type TLSConfig struct {
	CertFile   string `toml:"cert_file" default:"" doc:"PEM certificate chain for SMTP submission, IMAP and HTTPS. Required."`
	KeyFile    string `toml:"key_file" default:"" doc:"PEM private key for cert_file; must not be readable by group or others. Required."`
	MinVersion string `toml:"min_version" default:"1.2" doc:"Lowest TLS version accepted: 1.2 or 1.3."`
}

// SMIMEConfig is the gateway's own S/MIME identity.
type SMIMEConfig struct {
	CertFile     string        `toml:"cert_file" default:"" doc:"PEM certificate the gateway signs outgoing packages with (unless sign_cert_file is set) and senders may encrypt submissions to. Optional until S/MIME delivery is enabled."`
	KeyFile      string        `toml:"key_file" default:"" doc:"PEM private key for smime.cert_file."`
	SignCertFile string        `toml:"sign_cert_file" default:"" doc:"PEM certificate of a separate signing key (ECDSA P-256 or P-384, or RSA of 2048 bits or more) the gateway signs outgoing copies with instead of cert_file's; an ECDSA P-256 signature costs a fraction of an RSA one. It must be for cert_file's mail address, allow digitalSignature, and carry emailProtection when it lists extended key usages. Signed copies then also carry cert_file's certificate and name it (SMIMEEncryptionKeyPreference) as the one to encrypt replies to; cert_file (RSA) still decrypts submissions, since clients such as gpgsm 2.2 cannot encrypt to an EC certificate. Empty: the gateway signs with cert_file and key_file."`
	SignKeyFile  string        `toml:"sign_key_file" default:"" doc:"PEM private key for smime.sign_cert_file."`
	CBCFor       []string      `toml:"cbc_for" default:"" doc:"Mail domains and addresses whose copies are encrypted with AES-256-CBC (EnvelopedData, EFAIL-prone) instead of AES-256-GCM, for clients that cannot read GCM. Others get CBC only when the SMIMECapabilities of their own verified signed mail, or else of their certificate, lack AES-GCM; when nothing is known, GCM. Every copy's cipher is recorded in the ledger."`
	Escrow       []SMIMEEscrow `toml:"escrow" doc:"Escrow or archive certificates, one [[smime.escrow]] table each: every sealed copy they cover is also encrypted to them (recorded in the ledger event of the copy)."`
}

// SMIMEEscrow is one escrow or archive certificate.
type SMIMEEscrow struct {
	Name     string   `toml:"name" default:"" doc:"Short name of the escrow, for logs. Required, unique."`
	CertFile string   `toml:"cert_file" default:"" doc:"PEM file of the escrow certificate (the first CERTIFICATE block): an end-entity RSA (2048 bits or more) or P-256 certificate, within its validity dates, whose key usage allows key encipherment (RSA) or key agreement (EC). Required."`
	Agencies []string `toml:"agencies" default:"" doc:"Agencies, as the directory names them, whose practitioners' copies are also encrypted to this certificate (an agency archiving what its staff receive). Empty or \"*\": every copy the gateway seals."`
}

// SMTPConfig is SMTP submission. go-smtp's own defaults are unlimited; every limit here is finite.
type SMTPConfig struct {
	Submission              string   `toml:"submission" default:":587" doc:"Listen address for submission with STARTTLS (AUTH refused before TLS). Empty disables it."`
	Submissions             string   `toml:"submissions" default:":465" doc:"Listen address for submission over implicit TLS. Empty disables it."`
	MaxMessageSize          Size     `toml:"max_message_size" default:"25MiB" doc:"Largest message accepted (552 5.3.4 above it)."`
	MaxRecipients           int      `toml:"max_recipients" default:"100" doc:"Most recipients in one message (452 4.5.3 above it)."`
	MaxLineLength           int      `toml:"max_line_length" default:"2000" doc:"Longest command or data line, in bytes."`
	ReadTimeout             Duration `toml:"read_timeout" default:"5m" doc:"Idle time allowed while waiting for a client's next command or data."`
	WriteTimeout            Duration `toml:"write_timeout" default:"1m" doc:"Time allowed for a reply to reach the client."`
	MaxSessions             int      `toml:"max_sessions" default:"500" doc:"Most simultaneous SMTP sessions; more are answered 421 4.7.0 and closed."`
	MaxSessionsPerIP        int      `toml:"max_sessions_per_ip" default:"20" doc:"Most simultaneous SMTP sessions from one client address."`
	AuthFailuresBeforeDelay int      `toml:"auth_failures_before_delay" default:"3" doc:"Failed sign-ins from one client address, within auth_failure_window, after which each further AUTH answer is delayed."`
	AuthFailuresBeforeBlock int      `toml:"auth_failures_before_block" default:"10" doc:"Failed sign-ins from one client address, within auth_failure_window, after which AUTH is refused (421 4.7.0) until the window passes."`
	AuthFailureWindow       Duration `toml:"auth_failure_window" default:"15m" doc:"How long a failed sign-in counts against its client address."`
}

// HTTPSConfig is the HTTPS front door (upload API, pickup page, admin pages).
type HTTPSConfig struct {
	Listen string `toml:"listen" default:":443" doc:"Listen address for HTTPS. Empty disables it. Only /healthz is served so far; the API and pickup page are not finished."`
}

// StoreConfig is the store of record.
type StoreConfig struct {
	Database       string   `toml:"database" default:"" doc:"SQLite database file (WAL, synchronous=FULL). Empty means data_dir/cafgate.db."`
	ContentKeyFile string   `toml:"content_key_file" default:"" doc:"32-byte key that encrypts message content at rest (AES-256-GCM), kept outside the database; created with mode 0600 on first start. Empty means data_dir/content.key. Back it up apart from the database: without it the content cannot be read."`
	MaxBatch       int      `toml:"max_batch" default:"64" doc:"Most messages committed in one durable transaction (group commit)."`
	MaxDelay       Duration `toml:"max_delay" default:"0s" doc:"How long the writer may wait to fill a batch; 0 commits as soon as the previous commit ends."`
}

// AdminConfig is the local control socket the CLI talks to.
type AdminConfig struct {
	Socket string `toml:"socket" default:"" doc:"Unix socket for the cafgate CLI (mode 0600: file permissions are its guard). Empty means data_dir/admin.sock."`
}

// DirectoryConfig is one practitioner directory.
type DirectoryConfig struct {
	Name    string     `toml:"name" default:"" doc:"Short name of the directory, used in logs and the ledger. Required, unique."`
	Type    string     `toml:"type" default:"file" doc:"file (an LDIF file in the cafgate schema, for development and small agencies) or ldap (an agency's LDAP server or Active Directory, set in [directory.ldap])."`
	Domains []string   `toml:"domains" default:"" doc:"Mail domains this directory answers for. Required; a domain may belong to one directory only."`
	File    string     `toml:"file" default:"" doc:"For type file: the LDIF file (see configs/sample-directory.ldif and configs/cafgate.schema.ldif)."`
	LDAP    LDAPConfig `toml:"ldap" doc:"For type ldap: the server, the service account and the attribute map (configs/README-directory.md)."`
}
