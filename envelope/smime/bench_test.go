package smime

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafgate/envelope/cms"
)

// Benchmarks of the gateway's outbound and inbound work: sign (gateway, RSA-2048 or, sign=p256, a
// separate ECDSA P-256 signing key naming the RSA certificate for replies; SHA-256) then encrypt (AES-256-GCM, RSA-OAEP-SHA256) a package of 10 KB, 1 MB and 50 MB to 1 and 5 recipients,
// and verify+decrypt it. Each reports the peak heap above the input, in bytes and in copies of the
// input. integration/smime_bench_test.go times openssl on the same work.

var benchSizes = []struct {
	name string
	n    int
}{{"10KB", 10 << 10}, {"1MB", 1 << 20}, {"50MB", 50 << 20}}

// BenchMessage returns a package message of about n octets: a short text part and a base64 PDF.
func benchMessage(n int) []byte {
	raw := make([]byte, n*3/4)
	_, _ = rand.Read(raw)
	var b bytes.Buffer
	b.Grow(n + 1024)
	b.WriteString("From: <gateway@cafgate.test>\r\nTo: <r1@a.test>\r\nSubject: CAF episode\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"PKG\"\r\n\r\n--PKG\r\nContent-Type: text/plain\r\n\r\nattached\r\n")
	b.WriteString("--PKG\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--PKG--\r\n")
	return b.Bytes()
}

func benchRecipients(f *fixture, n int) []cms.Recipient {
	var rs []cms.Recipient
	for _, r := range f.recips[:n] {
		rs = append(rs, cms.Recipient{Cert: r.Cert})
	}
	return rs
}

func BenchmarkSealSignEncrypt(b *testing.B) {
	f := getFixture(b)
	for _, size := range benchSizes {
		msg := benchMessage(size.n)
		for _, n := range []int{1, 5} {
			signers := []struct {
				name string
				s    *cms.Signer
			}{{"rsa", f.signer(f.gateway)},
				{"p256", &cms.Signer{Cert: f.gwSign.Cert, Key: f.gwSign.Key, EncryptCert: f.gateway.Cert}}}
			for _, sg := range signers {
				b.Run(fmt.Sprintf("%s/%drcpt/sign=%s", size.name, n, sg.name), func(b *testing.B) {
					opts := SealOptions{Signer: sg.s, Encrypt: &cms.EncryptOptions{Recipients: benchRecipients(f, n)}}
					b.SetBytes(int64(len(msg)))
					b.ReportAllocs()
					var peak uint64
					for b.Loop() {
						p, err := peakHeap(func() error { return Seal(io.Discard, msg, opts) })
						if err != nil {
							b.Fatal(err)
						}
						peak = max(peak, p)
					}
					reportPeak(b, peak, len(msg))
				})
			}
		}
	}
}

func BenchmarkOpenVerifyDecrypt(b *testing.B) {
	f := getFixture(b)
	for _, size := range benchSizes {
		for _, n := range []int{1, 5} {
			b.Run(fmt.Sprintf("%s/%drcpt", size.name, n), func(b *testing.B) {
				var sealed bytes.Buffer
				opts := SealOptions{Signer: f.signer(f.gateway), Encrypt: &cms.EncryptOptions{Recipients: benchRecipients(f, n)}}
				if err := Seal(&sealed, benchMessage(size.n), opts); err != nil {
					b.Fatal(err)
				}
				in := sealed.Bytes()
				open := OpenOptions{Decrypter: f.decrypter(f.recips[n-1]), Verify: cms.VerifyOptions{Roots: f.ca.Roots}}
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				var peak uint64
				for b.Loop() {
					p, err := peakHeap(func() error {
						o, err := Open(in, open)
						if err == nil && len(o.Layers) != 2 {
							err = fmt.Errorf("layers %v", o.Layers)
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					peak = max(peak, p)
				}
				reportPeak(b, peak, len(in))
			})
		}
	}
}

func reportPeak(b *testing.B, peak uint64, input int) {
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peak)/float64(input), "peak/input")
}

// peakHeap runs f and returns the highest live-plus-unswept heap seen above the level before it,
// sampled every 200 µs (an estimate: it includes garbage not yet collected).
func peakHeap(f func() error) (uint64, error) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	err := f()
	if v := read(); v > peak.Load() {
		peak.Store(v)
	}
	close(stop)
	wg.Wait()
	if peak.Load() < base {
		return 0, err
	}
	return peak.Load() - base, err
}
