package integration

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafgate/envelope/cms"
	"cafgate/envelope/cms/cmstest"
	"cafgate/envelope/smime"
)

// The S/MIME benchmark against the openssl command line, on the same inputs in the same run:
//
//	CAFGATE_SMIME_BENCH=1 go test -run TestSMIMEBenchVsOpenSSL -v -timeout 30m ./integration/
//
// For 10 KB, 1 MB and 50 MB packages to 1 and 5 RSA-2048 recipients it times
//   - seal: cafgate's smime.Seal (sign as the gateway, SHA-256; AES-256-GCM AuthEnvelopedData,
//     RSA-OAEP-SHA256) in a child process, against `openssl cms -sign | openssl cms -encrypt
//     -aes-256-gcm` with the same key transport;
//   - open: smime.Open (decrypt, verify) against `openssl cms -decrypt | openssl cms -verify`;
//
// whole processes on both sides (start-up and reading keys included; cafgate's in-process time is
// shown too), the median of several runs, and the peak resident memory of each process as GNU time
// reports it (for openssl, the larger of the two in the pipe, and their sum). It ends with `openssl speed` against Go for the
// raw RSA-2048 signature and AES-256-GCM parts. Say the load average when quoting the figures.

const smimeBenchEnv = "CAFGATE_SMIME_BENCH"

// smimeChildEnv makes the test binary a child that runs one cafgate operation and prints its time:
// "seal|open <pki dir> <input> <output> <recipients>".
const smimeChildEnv = "CAFGATE_SMIME_CHILD"

func TestSMIMEBenchChild(t *testing.T) {
	spec := os.Getenv(smimeChildEnv)
	if spec == "" {
		t.Skip("only run as the benchmark's child process")
	}
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[4])
	ids, err := loadBenchIDs(f[1], n)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(f[2])
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(f[3])
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	start := time.Now()
	switch f[0] {
	case "seal":
		var rs []cms.Recipient
		for _, r := range ids.recips {
			rs = append(rs, cms.Recipient{Cert: r.Cert})
		}
		err = smime.Seal(out, in, smime.SealOptions{Signer: &cms.Signer{Cert: ids.gateway.Cert, Key: ids.gateway.Key},
			Encrypt: &cms.EncryptOptions{Recipients: rs}})
	case "open":
		var o *smime.Opened
		roots := x509.NewCertPool()
		roots.AddCert(ids.ca)
		r := ids.recips[len(ids.recips)-1]
		o, err = smime.Open(in, smime.OpenOptions{Decrypter: &cms.Decrypter{Cert: r.Cert, Key: r.Key}, Verify: cms.VerifyOptions{Roots: roots}})
		if err == nil {
			_, err = out.Write(o.Entity)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("CHILD-NS %d\n", time.Since(start).Nanoseconds())
}

type benchIDs struct {
	ca      *x509.Certificate
	gateway cmstest.Leaf
	recips  []cmstest.Leaf
}

func loadBenchIDs(dir string, n int) (*benchIDs, error) {
	load := func(name string) (cmstest.Leaf, error) {
		certPEM, err := os.ReadFile(filepath.Join(dir, name+".pem"))
		if err != nil {
			return cmstest.Leaf{}, err
		}
		keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
		if err != nil {
			return cmstest.Leaf{}, err
		}
		cd, err := pemDER(certPEM)
		if err != nil {
			return cmstest.Leaf{}, err
		}
		kd, err := pemDER(keyPEM)
		if err != nil {
			return cmstest.Leaf{}, err
		}
		c, err := x509.ParseCertificate(cd)
		if err != nil {
			return cmstest.Leaf{}, err
		}
		k, err := x509.ParsePKCS8PrivateKey(kd)
		if err != nil {
			return cmstest.Leaf{}, err
		}
		return cmstest.Leaf{Cert: c, Key: k.(crypto.Signer)}, nil
	}
	ids := &benchIDs{}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	caDER, err := pemDER(caPEM)
	if err != nil {
		return nil, err
	}
	if ids.ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	if ids.gateway, err = load("gateway"); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		r, err := load(fmt.Sprintf("r%d", i))
		if err != nil {
			return nil, err
		}
		ids.recips = append(ids.recips, r)
	}
	return ids, nil
}

// procRun is one timed process tree: wall time, peak RSS of each process (KiB).
type procRun struct {
	wall    time.Duration
	inProc  time.Duration // cafgate only
	maxRSS  int64         // the largest process
	sumRSS  int64         // all processes of the pipe together (an upper bound on the pipe's peak)
	outSize int64
}

func TestSMIMEBenchVsOpenSSL(t *testing.T) {
	if os.Getenv(smimeBenchEnv) == "" {
		t.Skip("set " + smimeBenchEnv + "=1 to run the S/MIME benchmark against openssl")
	}
	needTool(t, "openssl")
	dir := t.TempDir()
	writeBenchPKI(t, dir)
	runs := 3
	if v, err := strconv.Atoi(os.Getenv(smimeBenchEnv)); err == nil && v > 1 {
		runs = v
	}
	t.Logf("load average at start: %s", loadAvg())
	var report strings.Builder
	fmt.Fprintf(&report, "| work | size | rcpts | cafgate wall | (in-process) | openssl wall | ratio | cafgate peak RSS | openssl peak RSS (max / sum) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, size := range []struct {
		name string
		n    int
	}{{"10 KB", 10 << 10}, {"1 MB", 1 << 20}, {"50 MB", 50 << 20}} {
		msg := benchMIME(size.n)
		msgPath := writeTemp(t, dir, "msg.eml", msg)
		entityPath := writeTemp(t, dir, "entity", msg[bytes.Index(msg, []byte("Content-Type: multipart/mixed")):])
		for _, n := range []int{1, 5} {
			seal := medianRun(t, runs, func() procRun { return cafgateChild(t, "seal", dir, msgPath, filepath.Join(dir, "sealed.eml"), n) })
			oseal := medianRun(t, runs, func() procRun { return opensslSeal(t, dir, entityPath, filepath.Join(dir, "osealed.eml"), n) })
			open := medianRun(t, runs, func() procRun {
				return cafgateChild(t, "open", dir, filepath.Join(dir, "sealed.eml"), filepath.Join(dir, "opened"), n)
			})
			oopen := medianRun(t, runs, func() procRun { return opensslOpen(t, dir, filepath.Join(dir, "sealed.eml"), n) })
			for _, row := range []struct {
				work string
				c, o procRun
			}{{"sign+encrypt", seal, oseal}, {"decrypt+verify", open, oopen}} {
				fmt.Fprintf(&report, "| %s | %s | %d | %v | %v | %v | %.2f | %.1f MB | %.1f / %.1f MB |\n", row.work, size.name, n,
					row.c.wall.Round(time.Millisecond), row.c.inProc.Round(time.Millisecond), row.o.wall.Round(time.Millisecond),
					row.c.wall.Seconds()/row.o.wall.Seconds(), float64(row.c.maxRSS)/1024, float64(row.o.maxRSS)/1024, float64(row.o.sumRSS)/1024)
			}
		}
	}
	report.WriteString(rawComparison(t))
	t.Logf("load average at end: %s\n%s", loadAvg(), report.String())
	if out := os.Getenv("CAFGATE_SMIME_BENCH_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(report.String()), 0o644)
	}
}

func writeBenchPKI(t *testing.T, dir string) {
	ca, err := cmstest.NewCA("bench CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cmstest.WriteCert(filepath.Join(dir, "ca.pem"), ca.Cert); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gateway", "r1", "r2", "r3", "r4", "r5"} {
		l, err := ca.Issue(name+"@bench.cafgate.test", cmstest.RSA2048)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.WritePEM(dir, name); err != nil {
			t.Fatal(err)
		}
	}
}

// benchMIME is a package message of about n octets: a text part and a base64 PDF.
func benchMIME(n int) []byte {
	raw := make([]byte, n*3/4)
	_, _ = rand.Read(raw)
	var b bytes.Buffer
	b.WriteString("From: <gateway@bench.cafgate.test>\r\nTo: <r1@bench.cafgate.test>\r\nSubject: CAF episode\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"PKG\"\r\n\r\n--PKG\r\nContent-Type: text/plain\r\n\r\nattached\r\n")
	b.WriteString("--PKG\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(encodeB64Lines(raw))
	b.WriteString("--PKG--\r\n")
	return b.Bytes()
}

func medianRun(t *testing.T, runs int, f func() procRun) procRun {
	var all []procRun
	for range runs {
		all = append(all, f())
	}
	slices.SortFunc(all, func(a, b procRun) int { return int(a.wall - b.wall) })
	m := all[len(all)/2]
	for _, r := range all {
		m.maxRSS, m.sumRSS = max(m.maxRSS, r.maxRSS), max(m.sumRSS, r.sumRSS)
	}
	return m
}

func cafgateChild(t *testing.T, op, dir, in, out string, n int) procRun {
	cmd, rss := measured(t, os.Args[0], "-test.run", "^TestSMIMEBenchChild$", "-test.count", "1")
	cmd.Env = append(os.Environ(), smimeChildEnv+"="+strings.Join([]string{op, dir, in, out, strconv.Itoa(n)}, " "),
		"CAFGATE_BIN=/nonexistent") // the child needs no gateway binary: skip TestMain's build
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\n%s", op, err, stdout.String())
	}
	r := procRun{wall: time.Since(start), maxRSS: rss(), sumRSS: rss()}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "CHILD-NS "); ok {
			ns, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			r.inProc = time.Duration(ns)
		}
	}
	return r
}

// measured wraps a command in GNU time so that its peak RSS is its own: a process started from Go
// is cloned with the test's address space, and the kernel counts that in the rusage it reports.
func measured(t *testing.T, args ...string) (*exec.Cmd, func() int64) {
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		return exec.Command(args[0], args[1:]...), func() int64 { return 0 }
	}
	f, err := os.CreateTemp(t.TempDir(), "rss-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("/usr/bin/time", append([]string{"-o", f.Name(), "-f", "%M"}, args...)...)
	return cmd, func() int64 {
		b, _ := os.ReadFile(f.Name())
		lines := strings.Fields(string(b))
		if len(lines) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		return v
	}
}

// pipe runs a | b with a reading from in (a file or nil) and b writing to out.
func pipe(t *testing.T, a, b []string, out string) procRun {
	ca, rssA := measured(t, a...)
	cb, rssB := measured(t, b...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errA, errB bytes.Buffer
	ca.Stdout, ca.Stderr = w, &errA
	cb.Stdin, cb.Stdout, cb.Stderr = r, f, &errB
	start := time.Now()
	if err := ca.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close()
	errs := []error{ca.Wait(), cb.Wait()}
	wall := time.Since(start)
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("%v %v: %s %s", errs[0], errs[1], errA.String(), errB.String())
	}
	return procRun{wall: wall, maxRSS: max(rssA(), rssB()), sumRSS: rssA() + rssB()}
}

func opensslSeal(t *testing.T, dir, entity, out string, n int) procRun {
	sign := []string{"openssl", "cms", "-sign", "-binary", "-md", "sha256", "-in", entity,
		"-signer", filepath.Join(dir, "gateway.pem"), "-inkey", filepath.Join(dir, "gateway.key")}
	enc := []string{"openssl", "cms", "-encrypt", "-binary", "-aes-256-gcm"}
	for i := 1; i <= n; i++ {
		enc = append(enc, "-recip", filepath.Join(dir, fmt.Sprintf("r%d.pem", i)),
			"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
	}
	return pipe(t, sign, enc, out)
}

func opensslOpen(t *testing.T, dir, in string, n int) procRun {
	r := fmt.Sprintf("r%d", n)
	dec := []string{"openssl", "cms", "-decrypt", "-binary", "-in", in, "-recip", filepath.Join(dir, r+".pem"), "-inkey", filepath.Join(dir, r+".key")}
	ver := []string{"openssl", "cms", "-verify", "-CAfile", filepath.Join(dir, "ca.pem")}
	return pipe(t, dec, ver, filepath.Join(dir, "oopened"))
}

// rawComparison runs `openssl speed` for RSA-2048 signing and AES-256-GCM on 16 KiB blocks, and the
// same operations in Go, one core each.
func rawComparison(t *testing.T) string {
	out, err := runTool(nil, nil, "openssl", "speed", "-seconds", "2", "rsa2048")
	if err != nil {
		return "\n(openssl speed rsa2048 failed: " + err.Error() + ")\n"
	}
	var osslSign float64
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == "rsa" && f[1] == "2048" {
			osslSign, _ = strconv.ParseFloat(f[5], 64)
		}
	}
	out, err = runTool(nil, nil, "openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", "aes-256-gcm")
	if err != nil {
		return "\n(openssl speed aes-256-gcm failed)\n"
	}
	var osslAES float64 // kB/s as openssl prints it ("12345.67k")
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(line, "AES-256-GCM") {
			osslAES, _ = strconv.ParseFloat(strings.TrimSuffix(f[len(f)-1], "k"), 64)
		}
	}
	goSign, goAES := goRawSpeed(t)
	return fmt.Sprintf("\n| raw (1 core) | openssl speed | Go | Go / openssl |\n|---|---|---|---|\n"+
		"| RSA-2048 sign | %.0f/s | %.0f/s | %.2f |\n| AES-256-GCM 16 KiB | %.0f MB/s | %.0f MB/s | %.2f |\n",
		osslSign, goSign, goSign/osslSign, osslAES/1000, goAES/1e6, goAES/1e6/(osslAES/1000))
}

func goRawSpeed(t *testing.T) (signsPerSec, aesBytesPerSec float64) {
	p := getSMIMEPKI(t)
	key := p.ids["alice"].Key
	digest := sha256.Sum256([]byte("x"))
	start, n := time.Now(), 0
	for time.Since(start) < 2*time.Second {
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		n++
	}
	signsPerSec = float64(n) / time.Since(start).Seconds()
	block, _ := aes.NewCipher(make([]byte, 32))
	gcm, _ := cipher.NewGCM(block)
	buf := make([]byte, 16384, 16384+16)
	nonce := make([]byte, 12)
	start, n = time.Now(), 0
	for time.Since(start) < 2*time.Second {
		gcm.Seal(buf[:0], nonce, buf, nil)
		n++
	}
	return signsPerSec, float64(n*16384) / time.Since(start).Seconds()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
